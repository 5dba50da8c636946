"""Benchmark harness (latency, throughput, memory, load time, size; one fresh process per model)
and fidelity metrics (embeddings: cosine and nearest-neighbour agreement; classifiers: top-1;
regressors: abs error) with the accept / reject verdict against a tolerance."""

from __future__ import annotations
