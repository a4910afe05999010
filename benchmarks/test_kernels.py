"""Kernel benchmark: MAED-CNN's fused kernels against torch's layers and a device-to-device copy.

    pytest benchmarks/test_kernels.py --benchmark-columns=median,iqr,rounds --benchmark-group-by=param:layer

The layers are those of the ``rt`` model on one 512x512 scan: the SE fusion at full resolution and
the four decoder blocks at their own resolutions, in FP32 and FP16. Each case times 20 launches
per round (one synchronisation per round) and records in ``extra_info`` the time per launch and
the achieved bandwidth over the compulsory traffic (input read once, output written once; the SE
fusion reads its input twice by design, which is counted). The copy of the layer's input gives
the device's practical bandwidth, torch (cuDNN, ``cudnn.benchmark``) the time to beat. Needs a
CUDA GPU; skips without one.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import pytest
import torch
from pytest_benchmark.fixture import BenchmarkFixture
from torch import nn

if not torch.cuda.is_available():
    pytest.skip("the kernel benchmark needs a CUDA GPU: torch sees none", allow_module_level=True)

from maed.engine.fold import ds_block_weights, se_weights  # noqa: E402
from maed.engine.ops.library import CudaKernels, LibraryNotFound  # noqa: E402
from maed.model import build_model  # noqa: E402
from maed.model.blocks import DSResidualBlock, SEFusion  # noqa: E402

LAUNCHES = 20
SCAN = 512


def _rt_layers() -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    """The rt model's kernel layers and their input shapes on one SCAN x SCAN scan."""
    model = build_model("rt").eval()
    shapes: dict[nn.Module, tuple[int, ...]] = {}

    def record(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        shapes[module] = tuple(inputs[0].shape)

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, (DSResidualBlock, SEFusion))]
    with torch.no_grad():
        model(torch.zeros(1, 1, SCAN, SCAN))
    for h in hooks:
        h.remove()
    return {_name(m, s): (m, s) for m, s in shapes.items()}


def _name(module: nn.Module, shape: tuple[int, ...]) -> str:
    out = module.conv_pw.out_channels if isinstance(module, DSResidualBlock) else shape[1]
    return f"{type(module).__name__} {shape[1]}->{out} @{shape[2]}x{shape[3]}"


LAYERS = _rt_layers()


@pytest.fixture(scope="module")
def kernels() -> CudaKernels:
    try:
        return CudaKernels.load()
    except LibraryNotFound as exc:
        pytest.skip(str(exc))


def _time(benchmark: BenchmarkFixture, fn: Callable[[], None], traffic_bytes: int, **info: object) -> None:
    def rounds() -> None:
        for _ in range(LAUNCHES):
            fn()
        torch.cuda.synchronize()

    rounds()  # warm-up: cuDNN's algorithm search, lazy module loading
    benchmark.pedantic(rounds, rounds=30, warmup_rounds=2)
    per_launch = benchmark.stats.stats.median / LAUNCHES
    benchmark.extra_info.update(info, us_per_launch=round(per_launch * 1e6, 2), gb_per_s=round(traffic_bytes / per_launch / 1e9, 1))


def _our_launch(kernels: CudaKernels, module: nn.Module, x: torch.Tensor) -> tuple[Callable[[], None], int, list]:
    """The launch of our kernel on x, its compulsory traffic, and the device buffers to keep alive."""
    n, c, h, w = x.shape
    dtype = np.dtype(str(x.dtype).removeprefix("torch."))
    stream = torch.cuda.current_stream().cuda_stream
    if isinstance(module, SEFusion):
        wts = se_weights(module)
        arrays = [torch.from_numpy(a).cuda() for a in (wts.fc1_weight, wts.fc1_bias, wts.fc2_weight, wts.fc2_bias)]
        y = torch.empty_like(x)
        workspace = torch.empty(kernels.se_workspace_bytes(n, c, h, w), dtype=torch.uint8, device="cuda")
        addresses = tuple(a.data_ptr() for a in arrays)

        def launch() -> None:
            kernels.se_fusion(x.data_ptr(), y.data_ptr(), dtype, (n, h, w), c, wts.reduced, addresses, workspace.data_ptr(), stream)

        return launch, 3 * x.numel() * x.element_size(), [*arrays, y, workspace]
    wts = ds_block_weights(module)
    parts = (wts.dw_weight, wts.dw_bias, wts.pw_weight, wts.shortcut_weight, wts.bias)
    arrays = [None if a is None else torch.from_numpy(a).cuda() for a in parts]
    y = torch.empty((n, wts.cout, h, w), dtype=x.dtype, device="cuda")
    addresses = tuple(0 if a is None else a.data_ptr() for a in arrays)

    def launch() -> None:
        kernels.ds_block(x.data_ptr(), y.data_ptr(), dtype, (n, h, w), wts.cin, wts.cout, wts.ksize, addresses, stream)

    return launch, (x.numel() + y.numel()) * x.element_size(), [*arrays, y]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.parametrize("impl", ["maed", "torch", "copy"])
def test_kernel_speed(benchmark: BenchmarkFixture, kernels: CudaKernels, impl: str, layer: str, dtype: torch.dtype) -> None:
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False  # FP32 means FP32 for torch too
    module, shape = LAYERS[layer]
    x = torch.randn(shape, device="cuda").to(dtype)
    # case and backend: the keys maed bench's results page reads from every benchmark.
    info = {"case": f"kernel {layer} {str(dtype).removeprefix('torch.')}", "backend": impl, "device": torch.cuda.get_device_name()}
    if impl == "maed":
        launch, traffic, keep = _our_launch(kernels, module, x)
        _time(benchmark, launch, traffic, **info)
        del keep
    elif impl == "torch":
        layer_module = copy.deepcopy(module).cuda().to(dtype)
        with torch.inference_mode():
            out_elems = layer_module(x).numel()
            _time(benchmark, lambda: layer_module(x), (x.numel() + out_elems) * x.element_size(), **info)
    else:
        y = torch.empty_like(x)
        _time(benchmark, lambda: y.copy_(x), 2 * x.numel() * x.element_size(), **info)
