"""A real text model (all-MiniLM-L6-v2 exported to ONNX) served with server-side tokenization:
tritonclient sends strings (BYTES) to the server and through the gateway, and the embeddings match
sentence-transformers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.slow
SENTENCES = ["A cat sits on the mat.", "Serving models cheaply is the whole point.", "短い文"]


@pytest.fixture(scope="module")
def minilm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bench._minilm import export_minilm

    fp32, _ = export_minilm(tmp_path_factory.mktemp("minilm"))
    return fp32


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    import warnings

    from bench._minilm import model_folder

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sentence-transformers/transformers deprecation chatter
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(model_folder()), device="cpu")
        return np.asarray(model.encode(SENTENCES, normalize_embeddings=True))


def _infer_text(client_url: str, model: str) -> np.ndarray:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(client_url)
    tensor = triton.InferInput("text", [len(SENTENCES)], "BYTES")
    tensor.set_data_from_numpy(np.array([s.encode() for s in SENTENCES], dtype=object))
    result = client.infer(model, [tensor])
    client.close()
    vectors = np.asarray(result.as_numpy("sentence_embedding"))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_server_tokenizes_text_like_sentence_transformers(minilm: Path, reference: np.ndarray) -> None:
    from bench._minilm import model_folder
    from thrifty.serving.app import BackgroundServer
    from thrifty.serving.server import InferenceServer

    def make() -> object:
        server = InferenceServer()
        server.load("minilm", minilm, tokenizer_path=model_folder())
        return server.handle

    with BackgroundServer(make) as url:  # type: ignore[arg-type]
        got = _infer_text(url.removeprefix("http://"), "minilm")
    np.testing.assert_allclose(got, reference, atol=2e-4)


@pytest.fixture
def gateway_env(thrifty_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    from thrifty import runtime
    from thrifty.serving import daemon

    port = free_port()
    monkeypatch.setenv("THRIFTY_GATEWAY_PORT", str(port))
    runtime.reset()
    yield port
    daemon.stop_daemon(runtime.get_settings())


def test_gateway_serves_text_from_a_hibernated_deployment(
    minilm: Path, reference: np.ndarray, gateway_env: int
) -> None:
    from bench._minilm import model_folder
    from thrifty import runtime
    from thrifty.providers.local import LocalProvider, spec_for_path

    provider = LocalProvider()
    serving = {"tokenizer_path": str(model_folder())}
    spec = spec_for_path(minilm, "minilm", runtime.store(), replicas=0, serving=serving)
    status = provider.deploy(spec)
    assert (status.state, status.replicas_ready) == ("hibernated", 0)
    got = _infer_text(f"127.0.0.1:{gateway_env}", "minilm")  # wakes it
    np.testing.assert_allclose(got, reference, atol=2e-4)
    assert provider.status("minilm").replicas_ready == 1
