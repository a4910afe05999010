"""Suite-wide hooks and fixtures: tests marked ``gpu`` are skipped, with the reason, where no CUDA
device is present; ``reference`` is the kernels' host reference library, loaded once where it is
built (``make test`` builds it first; otherwise the tests that need it skip, saying how to build it);
``random_rt_checkpoint`` is an rt model with random weights, for export and engine parity."""

from __future__ import annotations

import pytest

from maed.engine.ops.library import HostReference, LibraryNotFound


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
        return HostReference.load()
    except LibraryNotFound as exc:  # make test builds it first; a bare pytest run may not have
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def random_rt_checkpoint(tmp_path_factory):
    """An rt checkpoint (``random_rt.pt``) with every weight and BatchNorm statistic drawn at random.

    An untrained model is the identity (its head starts at zero), against which any export would
    pass; random BatchNorm statistics also exercise their folding into the convolutions.
    """
    import torch
    from torch import nn

    from maed.model import build_model
    from maed.model.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = build_model("rt")
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
        nn.init.normal_(model.head.weight, std=0.5)
    path = tmp_path_factory.mktemp("random_rt") / "random_rt.pt"
    save_checkpoint(path, model, "rt")
    return path
