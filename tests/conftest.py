"""Suite-wide hooks and fixtures: tests marked ``gpu`` are skipped, with the reason, where no CUDA
device is present; ``reference`` is the kernels' host reference library, built once."""

from __future__ import annotations

import pytest

from maed.engine.kernels_lib import HostReference, NativeBuildError


def _no_gpu_reason() -> str | None:
    try:
        import torch
    except ModuleNotFoundError:
        return "needs a CUDA GPU: torch is not installed"
    if not torch.cuda.is_available():
        return "needs a CUDA GPU: torch sees no CUDA device here"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    reason = _no_gpu_reason() if gpu_items else None
    if reason:
        for item in gpu_items:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="module")
def reference() -> HostReference:
    try:
        return HostReference.build()
    except NativeBuildError as exc:
        pytest.skip(f"the host reference library could not be built: {exc}")
