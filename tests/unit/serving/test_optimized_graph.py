"""The saved optimized graph a replica loads when it wakes (issue 17 item 5): graph and weights
apart, the weights page-aligned so onnxruntime maps them instead of parsing and copying them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.unit.serving.conftest import build_mlp, mlp_reference
from thrifty.errors import ServingError
from thrifty.serving.resolve import _optimized_graph
from thrifty.serving.runner import RunnerConfig, create_session, save_optimized_graph

PAGE_BYTES = 4096


@pytest.fixture(scope="module")
def wide_mlp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # w1 is 512 × 1024 fp32 = 2 MiB: big enough for onnxruntime to page-align it
    return build_mlp(tmp_path_factory.mktemp("wide") / "wide.onnx", in_features=512, hidden=1024)


def _x() -> np.ndarray:
    return np.random.default_rng(7).standard_normal((3, 512)).astype(np.float32)


def test_the_saved_graph_keeps_its_weights_page_aligned_beside_it(wide_mlp: Path, tmp_path: Path) -> None:
    import onnx

    graph = save_optimized_graph(wide_mlp, tmp_path / "abc.opt")
    assert graph == tmp_path / "abc.opt" / "model.onnx"
    data = graph.with_name("model.data")
    assert data.stat().st_size > 2 << 20 and graph.stat().st_size < 64 << 10
    model = onnx.load(str(graph), load_external_data=False)
    external = [{e.key: e.value for e in t.external_data} for t in model.graph.initializer if t.external_data]
    big = [e for e in external if int(e["length"]) >= 1 << 20]
    assert big and all(e["location"] == "model.data" for e in external)
    assert all(int(e["offset"]) % PAGE_BYTES == 0 for e in big)
    assert list(tmp_path.iterdir()) == [tmp_path / "abc.opt"]  # no temporary folder left behind

    session = create_session(wide_mlp, RunnerConfig(optimized_graph_path=graph))
    np.testing.assert_allclose(session.run(None, {"x": _x()})[0], mlp_reference(wide_mlp, _x()), rtol=1e-4)
    before = data.stat().st_mtime_ns
    assert save_optimized_graph(wide_mlp, tmp_path / "abc.opt") == graph  # saved once, then reused
    assert data.stat().st_mtime_ns == before


def test_a_session_maps_the_weights_file_instead_of_copying_it(wide_mlp: Path, tmp_path: Path) -> None:
    graph = save_optimized_graph(wide_mlp, tmp_path / "mapped.opt")
    assert graph is not None
    session = create_session(wide_mlp, RunnerConfig(optimized_graph_path=graph))
    maps = Path("/proc/self/maps").read_text()
    assert str(graph.with_name("model.data")) in maps
    del session


def test_the_flatbuffer_format_is_still_there_on_request(wide_mlp: Path, tmp_path: Path) -> None:
    graph = save_optimized_graph(wide_mlp, tmp_path / "abc.opt.ort")
    assert graph == tmp_path / "abc.opt.ort" and graph.is_file()
    session = create_session(wide_mlp, RunnerConfig(optimized_graph_path=graph))
    np.testing.assert_allclose(session.run(None, {"x": _x()})[0], mlp_reference(wide_mlp, _x()), rtol=1e-4)


@pytest.mark.parametrize(("choice", "name"), [(True, "s.opt"), ("onnx", "s.opt"), ("ort", "s.opt.ort")])
def test_the_serving_option_picks_the_format(
    wide_mlp: Path, tmp_path: Path, choice: object, name: str
) -> None:
    found = _optimized_graph({"optimized_graph": choice}, wide_mlp, tmp_path, "s")
    assert found is not None and found.is_relative_to(tmp_path / "serving" / name)
    assert _optimized_graph({"optimized_graph": False}, wide_mlp, tmp_path / "off", "s") is None


def test_an_unknown_serving_option_is_refused_by_name(wide_mlp: Path, tmp_path: Path) -> None:
    with pytest.raises(ServingError, match=r"serving\.optimized_graph is 'fast'") as info:
        _optimized_graph({"optimized_graph": "fast"}, wide_mlp, tmp_path, "s")
    assert '"ort"' in (info.value.hint or "")
    assert not (tmp_path / "serving").exists()  # bad input changes nothing
