"""Serving: an Open Inference Protocol v2 server on onnxruntime, the gateway that wakes hibernated
models, and the warm pool of replica workers.

    http.py      asyncio HTTP/1.1 server + keep-alive upstream client (no framework in the hot path)
    oip.py       OIP v2 tensors ⇄ JSON / binary extension, validation against the signature
    runner.py    one onnxruntime session: tokenization, dynamic batching, saved optimized graph
    server.py    the OIP routes, auth, /metrics
    gateway.py   one port for all models: least-outstanding routing, wake-on-request, retries, request log
    pool.py      replica worker processes and the warm pool
    worker.py    the replica process
    daemon.py    `thrifty up` / `down`: the supervised gateway daemon
    resolve.py   a deployment's files (ONNX graph, tokenizer, optimized graph) from the artifact store
"""
