"""Image faults with the real podman: a Containerfile step that fails and a registry that does not
answer each give an ImageError that names the cause and the fix; the image built before stays.

Uses the offline base image this machine already made (``thrifty image build`` makes it once);
skipped, saying so, where podman or that base is missing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import free_port
from thrifty.image import BASE_REF, ImageError, image_exists, podman, push_image

pytestmark = pytest.mark.slow


@pytest.fixture
def base() -> str:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (apt-get install podman runc)")
    if not image_exists(BASE_REF):
        pytest.skip(f"the offline base image {BASE_REF} is not built on this machine (`thrifty image build`)")
    return BASE_REF


def test_a_containerfile_step_that_fails_names_the_step_and_keeps_the_earlier_image(
    base: str, tmp_path: Path
) -> None:
    (tmp_path / "Containerfile").write_text(f"FROM {base}\nRUN echo broken-step && exit 3\n")
    with pytest.raises(ImageError, match="podman build") as info:
        podman("build", "--network", "host", "-f", str(tmp_path / "Containerfile"),
               "-t", "localhost/thrifty-fault-test:never", str(tmp_path))  # fmt: skip
    assert "exit 3" in info.value.message or "exit status 3" in info.value.message
    assert info.value.hint and "Containerfile failed" in info.value.hint and "stays tagged" in info.value.hint
    assert not image_exists("localhost/thrifty-fault-test:never")
    assert image_exists(base), "what was built before is still there"


def test_a_registry_that_does_not_answer_is_named_with_the_fix(base: str) -> None:
    registry = f"127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(ImageError, match="podman push") as info:
        push_image(base, registry, tls_verify=False)
    assert info.value.hint and "registry does not answer" in info.value.hint
