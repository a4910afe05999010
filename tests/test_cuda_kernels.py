"""MAED-CNN's fused kernels against the torch modules they replace.

Without a GPU: the host reference (``libmaed_kernels_ref``, the kernels' own arithmetic in host
loops) against ``DSResidualBlock`` and ``SEFusion`` in eval mode, with random weights and random
BatchNorm statistics, on several shapes including odd ones, through ctypes. The libraries are found
where ``make test`` (or cmake) built them, never built here; the tests skip, saying how to build
them, only where they are not built.

On a GPU (``gpu`` marker): the CUDA kernels against the same modules run by torch on the GPU, with
the output poisoned with NaN before each launch so that an element left unwritten fails.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from kernel_helpers import error_of_range, randomise
from torch import nn

from maed.engine.fold import ds_block_weights, se_weights
from maed.engine.ops.library import LIB_DIR_VARIABLE, CudaKernels, HostReference, LibraryNotFound, find_library
from maed.model import build_model
from maed.model.blocks import DSResidualBlock, SEFusion

# (N, cin, cout, H, W, k): both shortcuts, odd sizes, one pixel, one column, a kernel larger than
# the image, two input-channel chunks (cin > 32), several output tiles (cout > 16), rt's widest block.
DS_CASES = [
    (1, 8, 8, 7, 9, 3),
    (2, 12, 20, 5, 11, 3),
    (1, 5, 5, 1, 1, 5),
    (1, 33, 17, 13, 1, 7),
    (1, 3, 3, 2, 3, 9),
    (1, 152, 64, 9, 10, 3),
]
# (N, C, reduction, H, W): the paper's 40 channels, a 1x1 image, planes split into 2 and 5 pool slices.
SE_CASES = [
    (1, 40, 4, 16, 16),
    (2, 40, 4, 7, 13),
    (1, 8, 4, 1, 1),
    (1, 20, 4, 129, 65),
    (1, 12, 3, 100, 100),
]


def random_input(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def torch_eval(module: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return module(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize(("n", "cin", "cout", "h", "w", "k"), DS_CASES)
def test_ds_block_reference_matches_torch(reference: HostReference, n: int, cin: int, cout: int, h: int, w: int, k: int) -> None:
    block = randomise(DSResidualBlock(cin, cout, dw_kernel_size=k), seed=cin * 100 + cout)
    x = random_input((n, cin, h, w), seed=h * w)
    weights = ds_block_weights(block)
    assert error_of_range(reference.ds_block(x, weights), torch_eval(block, x)) < 1e-5
    # FP16 in and out, FP32 inside: torch in FP32 on the same rounded input.
    x16 = x.astype(np.float16)
    assert error_of_range(reference.ds_block(x16, weights), torch_eval(block, x16.astype(np.float32))) < 1e-2


@pytest.mark.parametrize(("n", "c", "r", "h", "w"), SE_CASES)
def test_se_fusion_reference_matches_torch(reference: HostReference, n: int, c: int, r: int, h: int, w: int) -> None:
    se = randomise(SEFusion(c, reduction=r), seed=c * 10 + r)
    x = random_input((n, c, h, w), seed=h + w)
    weights = se_weights(se)
    assert error_of_range(reference.se_fusion(x, weights), torch_eval(se, x)) < 1e-5
    x16 = x.astype(np.float16)
    assert error_of_range(reference.se_fusion(x16, weights), torch_eval(se, x16.astype(np.float32))) < 1e-2


@pytest.mark.parametrize("config", ["rt", "paper"])
def test_every_kernel_layer_of_the_model_matches(reference: HostReference, config: str) -> None:
    """Each DSResidualBlock and the SEFusion of a whole model, as the plugins would replace them."""
    model = randomise(build_model(config), seed=3)
    layers = [m for m in model.modules() if isinstance(m, (DSResidualBlock, SEFusion))]
    assert any(isinstance(m, SEFusion) for m in layers)
    for i, layer in enumerate(layers):
        if isinstance(layer, SEFusion):
            x = random_input((1, layer.fc1.in_channels, 11, 14), seed=i)
            got = reference.se_fusion(x, se_weights(layer))
        else:
            x = random_input((1, layer.conv_dw.in_channels, 6, 9), seed=i)
            got = reference.ds_block(x, ds_block_weights(layer))
        assert error_of_range(got, torch_eval(layer, x)) < 1e-5, f"layer {i} ({type(layer).__name__})"


def test_unsupported_layers_are_refused() -> None:
    with pytest.raises(ValueError, match="ReLU only"):
        ds_block_weights(DSResidualBlock(4, 4, act_layer="silu"))
    with pytest.raises(ValueError, match="pads with zeros"):
        ds_block_weights(DSResidualBlock(4, 4, padding_mode="reflect"))
    with pytest.raises(ValueError, match="odd depthwise kernels up to 9"):
        ds_block_weights(DSResidualBlock(4, 4, dw_kernel_size=11))


def test_reference_checks_its_input(reference: HostReference) -> None:
    weights = ds_block_weights(randomise(DSResidualBlock(4, 6), seed=0))
    with pytest.raises(ValueError, match=r"expected \(N, 4, H, W\)"):
        reference.ds_block(np.zeros((1, 5, 3, 3), np.float32), weights)
    with pytest.raises(ValueError, match="float32 or float16"):
        reference.ds_block(np.zeros((1, 4, 3, 3), np.float64), weights)


def test_the_libraries_are_found_never_built(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No cmake at run time: a missing library is one line saying how to build it; a built one is found where
    cmake puts it, or in $MAED_KERNELS_LIB_DIR first."""
    monkeypatch.delenv(LIB_DIR_VARIABLE, raising=False)
    monkeypatch.setattr(subprocess, "run", lambda *args, **kwargs: pytest.fail(f"ran {args}"))
    with pytest.raises(LibraryNotFound) as missing:
        find_library("libmaed_kernels.so", "maed_kernels", tmp_path)
    message = str(missing.value)
    assert "\n" not in message and f"cmake --build {tmp_path} --target maed_kernels" in message and LIB_DIR_VARIABLE in message
    built = tmp_path / "cuda_kernels" / "libmaed_kernels.so"
    built.parent.mkdir()
    built.touch()
    assert find_library("libmaed_kernels.so", "maed_kernels", tmp_path) == built
    installed = tmp_path / "lib" / "libmaed_kernels.so"
    installed.parent.mkdir()
    installed.touch()
    monkeypatch.setenv(LIB_DIR_VARIABLE, str(installed.parent))
    assert find_library("libmaed_kernels.so", "maed_kernels", tmp_path) == installed


# --- on a GPU ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cuda_kernels() -> CudaKernels:
    try:
        return CudaKernels.load()
    except LibraryNotFound as exc:  # not built (make test builds it where nvcc is)
        pytest.skip(str(exc))


def test_launchers_check_their_arguments_and_report_launch_errors(cuda_kernels: CudaKernels) -> None:
    """Without touching the (dummy) pointers: refused arguments, and on a GPU-less machine the launch error."""
    f32 = np.dtype(np.float32)
    with pytest.raises(RuntimeError, match="invalid argument"):  # even depthwise kernel
        cuda_kernels.ds_block(1, 2, f32, (1, 8, 8), 4, 4, 4, (3, 4, 5, 0, 6))
    with pytest.raises(RuntimeError, match="invalid argument"):  # identity shortcut with cin != cout
        cuda_kernels.ds_block(1, 2, f32, (1, 8, 8), 4, 6, 3, (3, 4, 5, 0, 6))
    with pytest.raises(RuntimeError, match="invalid argument"):  # no workspace
        cuda_kernels.se_fusion(1, 2, f32, (1, 8, 8), 4, 1, (3, 4, 5, 6), 0)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA kernel launch failed"):
            cuda_kernels.ds_block(1, 2, f32, (1, 8, 8), 4, 4, 3, (3, 4, 5, 0, 6))


@pytest.fixture(autouse=True)
def _no_tf32() -> Iterator[None]:
    """cuDNN's TF32 convolutions would make torch, not the kernels, miss the FP32 tolerance."""
    previous = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = previous


def _device_arrays(*arrays: np.ndarray | None) -> tuple[list[torch.Tensor], tuple[int, ...]]:
    """Device copies (kept alive by the caller) and their addresses, 0 for None."""
    tensors = [torch.from_numpy(a).cuda() for a in arrays if a is not None]
    it = iter(tensors)
    return tensors, tuple(0 if a is None else next(it).data_ptr() for a in arrays)


def _poisoned(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    return torch.full(shape, float("nan"), dtype=dtype, device="cuda")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize(("n", "cin", "cout", "h", "w", "k"), [*DS_CASES, (1, 64, 16, 512, 512, 3)])
def test_ds_block_kernel_matches_torch_on_gpu(
    cuda_kernels: CudaKernels, dtype: torch.dtype, n: int, cin: int, cout: int, h: int, w: int, k: int
) -> None:
    block = randomise(DSResidualBlock(cin, cout, dw_kernel_size=k), seed=cin + cout)
    wts = ds_block_weights(block)
    keep, addresses = _device_arrays(wts.dw_weight, wts.dw_bias, wts.pw_weight, wts.shortcut_weight, wts.bias)
    x = torch.from_numpy(random_input((n, cin, h, w), seed=k)).cuda().to(dtype)
    y = _poisoned((n, cout, h, w), dtype)
    stream = torch.cuda.current_stream()
    cuda_kernels.ds_block(
        x.data_ptr(), y.data_ptr(), np.dtype(str(dtype).removeprefix("torch.")), (n, h, w), cin, cout, k, addresses, stream.cuda_stream
    )
    with torch.inference_mode():
        want = block.cuda().to(dtype)(x)
    stream.synchronize()
    tolerance = 1e-5 if dtype == torch.float32 else 1e-2
    assert error_of_range(y.float().cpu().numpy(), want.float().cpu().numpy()) < tolerance
    del keep


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize(("n", "c", "r", "h", "w"), [*SE_CASES, (1, 40, 4, 512, 512), (2, 40, 4, 511, 257)])
def test_se_fusion_kernel_matches_torch_on_gpu(
    cuda_kernels: CudaKernels, dtype: torch.dtype, n: int, c: int, r: int, h: int, w: int
) -> None:
    se = randomise(SEFusion(c, reduction=r), seed=c + r)
    wts = se_weights(se)
    keep, addresses = _device_arrays(wts.fc1_weight, wts.fc1_bias, wts.fc2_weight, wts.fc2_bias)
    workspace = torch.empty(cuda_kernels.se_workspace_bytes(n, c, h, w), dtype=torch.uint8, device="cuda")
    x = torch.from_numpy(random_input((n, c, h, w), seed=h)).cuda().to(dtype)
    y = _poisoned(x.shape, dtype)
    stream = torch.cuda.current_stream()
    cuda_kernels.se_fusion(
        x.data_ptr(),
        y.data_ptr(),
        np.dtype(str(dtype).removeprefix("torch.")),
        (n, h, w),
        c,
        wts.reduced,
        addresses,
        workspace.data_ptr(),
        stream.cuda_stream,
    )
    with torch.inference_mode():
        want = se.cuda().to(dtype)(x)
    stream.synchronize()
    tolerance = 1e-5 if dtype == torch.float32 else 1e-2
    assert error_of_range(y.float().cpu().numpy(), want.float().cpu().numpy()) < tolerance
    del keep
