"""The TensorRT back end and ``maed engine build``.

Everything that needs no TensorRT is checked everywhere: the optimisation profiles, the engine
cache's key and when an engine is stale, argument checks, the one-line messages where TensorRT,
cuda-python or a GPU is missing, and the ``auto`` order. Tests marked ``gpu`` build and run real
engines; they are skipped, with the reason, where there is no CUDA GPU or no TensorRT.
"""

import json
import types

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from maed.cli import main
from maed.engine import load_backend
from maed.engine.onnx_model import KEY_MODEL, KEY_PRECISION, KEY_SIZE_MULTIPLE, KEY_WEIGHTS_SHA256
from maed.engine.tensorrt import available as trt_available
from maed.engine.tensorrt.build import BuildSettings, OnnxSource, _graph_bytes, strongly_typed_flags
from maed.engine.tensorrt.cache import (
    EngineKey,
    cache_dir,
    engine_path,
    key_path,
    read_record,
    stale_reason,
    timing_cache_path,
    write_record,
)
from maed.engine.tensorrt.commands import profiles_from_args
from maed.engine.tensorrt.cuda import gpu_count, import_cudart
from maed.engine.tensorrt.profiles import (
    CONTEXT_ROWS,
    Profile,
    check_profile,
    choose_profile,
    default_profiles,
    parse_profile,
    parse_shape,
)

KEY = EngineKey("NVIDIA H100 80GB HBM3", "10.3.0", "ab" * 32, "fp16")


@pytest.fixture
def tiny_onnx(tmp_path):
    """A two-node graph (Conv, residual Add) carrying the metadata ``maed export onnx`` writes."""
    weight = numpy_helper.from_array(np.full((1, 1, 3, 3), 0.1, np.float32), "w")
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["n", 1, "h", "w"]) for n in ("input", "output")]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Add", ["input", "c"], ["output"])],
        "tiny",
        io[:1],
        io[1:],
        [weight],
    )
    # IR 8, as maed export writes: the installed onnx's newest IR can be past what the installed ONNX Runtime
    # reads (onnx 1.23 writes IR 14, ONNX Runtime 1.30 reads up to 13: seen on the GPU machine, 2026-12-04).
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    helper.set_model_props(model, {KEY_MODEL: "tiny", KEY_SIZE_MULTIPLE: "16", KEY_PRECISION: "fp32", KEY_WEIGHTS_SHA256: "cd" * 32})
    path = tmp_path / "tiny.onnx"
    onnx.save(model, path)
    return path


# --- profiles ------------------------------------------------------------------------------------


def test_context_rows_are_the_streaming_denoisers_halo_and_refine():
    from maed.bridge.streaming import HALO, REFINE

    assert CONTEXT_ROWS == HALO + REFINE


def _up(n, multiple=16):
    return -(-n // multiple) * multiple


def test_default_profiles_cover_bands_and_frames_up_to_512():
    band, frame = default_profiles(16)
    tall = _up(32 + CONTEXT_ROWS)  # 32 new rows and the context above them
    assert (band.name, band.min, band.opt, band.max) == ("band", (16, 16), (tall, 256), (min(2 * tall, 512), 512))
    assert (frame.name, frame.min, frame.opt, frame.max) == ("frame", (16, 16), (256, 256), (512, 512))
    assert band.shapes() == ((1, 1, 16, 16), (1, 1, tall, 256), (1, 1, min(2 * tall, 512), 512))
    # a two-pass model's input is two channels deep: both passes in one frame
    assert band.shapes(2) == ((1, 2, 16, 16), (1, 2, tall, 256), (1, 2, min(2 * tall, 512), 512))


def test_default_profiles_round_to_the_size_multiple_and_follow_the_scan():
    band, frame = default_profiles(32)  # paper: sides are multiples of 32
    assert band.opt == (_up(32 + CONTEXT_ROWS, 32), 256) and band.min == (32, 32)
    band, frame = default_profiles(16, band=(16, 1024), frame=(128, 128), max_batch=4)
    tall = _up(16 + CONTEXT_ROWS)
    assert band.opt == (tall, 1024) and band.max[1] == 1024  # the band is wider than the frame
    assert frame.max == (max(tall, 128), 1024) and frame.max_batch == 4  # and the frame one band high
    for profile in (band, frame):
        check_profile(profile, 16)


def test_the_profile_tuned_nearest_the_input_runs_it():
    profiles = default_profiles(16)
    assert choose_profile(profiles, 1, _up(32 + CONTEXT_ROWS), 256) == 0
    assert choose_profile(profiles, 1, 16, 16) == 0
    assert choose_profile(profiles, 1, 256, 256) == 1
    assert choose_profile(profiles, 1, 512, 512) == 1  # only the frame profile takes it


@pytest.mark.parametrize("shape", [(1, 1024, 256), (1, 256, 1024), (2, 64, 64), (1, 8, 64)])
def test_an_input_outside_every_profile_is_a_one_line_error(shape):
    with pytest.raises(ValueError, match="outside the engine's profiles") as err:
        choose_profile(default_profiles(16), *shape)
    assert "\n" not in str(err.value) and "maed engine build" in str(err.value)


def test_shapes_and_profiles_are_parsed_and_checked():
    assert parse_shape("80x256") == (80, 256)
    assert parse_profile("16x16:80x256:160x512", "band", 16) == Profile("band", (16, 16), (80, 256), (160, 512))
    for bad, message in [
        ("16x16:80by256:160x512", "HEIGHTxWIDTH"),
        ("16x16:80x256", "MIN:OPT:MAX"),
        ("16x16:80x250:160x512", "multiples of 16"),
        ("16x16:208x256:160x512", "min <= opt <= max"),
        ("0x16:80x256:160x512", "multiples of 16"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_profile(bad, "p", 16)
    with pytest.raises(ValueError, match="at least 1"):
        parse_profile("16x16:80x256:160x512", "p", 16, max_batch=0)


# --- engine cache --------------------------------------------------------------------------------


def test_an_engine_loads_only_for_its_own_gpu_tensorrt_weights_and_precision(tmp_path):
    engine = tmp_path / "rt.fp16.engine"
    assert "no engine" in stale_reason(engine, KEY)
    engine.write_bytes(b"plan")
    assert "no engine" in stale_reason(engine, KEY)  # an engine without its record is never trusted
    write_record(engine, KEY, {"model": "rt"})
    assert stale_reason(engine, KEY) is None
    assert read_record(engine) == (KEY, {"model": "rt"})
    for field, value in [("gpu", "Orin (nvgpu)"), ("tensorrt", "11.4.0"), ("weights_sha256", "ef" * 32), ("precision", "fp32")]:
        reason = stale_reason(engine, EngineKey(**{**KEY.__dict__, field: value}))
        assert reason and field in reason and value in reason


def test_a_damaged_record_means_rebuild(tmp_path):
    engine = tmp_path / "rt.fp16.engine"
    engine.write_bytes(b"plan")
    for text in ("{not json", json.dumps({"key": {"gpu": "x"}}), json.dumps([1])):
        key_path(engine).write_text(text)
        assert read_record(engine) is None and stale_reason(engine, KEY)


def test_cache_locations(monkeypatch, tmp_path):
    monkeypatch.delenv("MAED_ENGINE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "maed" / "engines"
    monkeypatch.setenv("MAED_ENGINE_CACHE", str(tmp_path / "engines"))
    assert engine_path("rt", "fp16") == tmp_path / "engines" / "rt.fp16.engine"
    assert key_path(engine_path("rt", "fp16")).name == "rt.fp16.json"
    assert timing_cache_path("NVIDIA GeForce RTX 4090", "10.3.0").name == "timing.nvidia-geforce-rtx-4090.trt10.3.0.cache"
    with pytest.raises(ValueError, match="precision"):
        EngineKey("gpu", "10.3.0", "ab", "int8")


# --- build settings and the command line -----------------------------------------------------------


def _args(**kw):
    from maed.engine.tensorrt.profiles import BAND, FRAME

    return types.SimpleNamespace(**{"shapes": None, "band": BAND, "frame": FRAME, "max_batch": 1, **kw})


def test_profiles_from_arguments():
    assert [p.name for p in profiles_from_args(_args(), 16)] == ["band", "frame"]
    given = profiles_from_args(_args(shapes=["16x16:64x64:128x128", "32x32:256x256:512x512"]), 16)
    assert [(p.name, p.opt) for p in given] == [("profile0", (64, 64)), ("profile1", (256, 256))]
    with pytest.raises(ValueError, match="--shapes"):
        profiles_from_args(_args(shapes=["16x16:64x64:128x128"], band=(16, 128)), 16)
    with pytest.raises(ValueError, match="multiples of 32"):
        profiles_from_args(_args(shapes=["16x16:64x64:128x128"]), 32)


def test_build_settings_are_checked():
    profiles = tuple(default_profiles(16))
    for kw, message in [
        ({"precision": "int8"}, "precision"),
        ({"workspace_mb": 0}, "workspace"),
        ({"opt_level": 6}, "optimisation level"),
        ({"profiles": ()}, "at least one"),
        ({"profiles": profiles[:1] * 2}, "names must differ"),
    ]:
        with pytest.raises(ValueError, match=message):
            BuildSettings(**{"profiles": profiles, **kw})


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--opt-level", "6"], "optimisation level must be 0 to 5"),
        (["--workspace-mb", "0"], "workspace must be at least 1 MB"),
        (["--shapes", "16x16:80x256:160x512", "--frame", "256x256"], "it takes neither --band nor --frame"),
        (["--shapes", "16x16:512x512:160x512"], "min <= opt <= max"),
        (["--max-batch", "0"], "at least 1"),
    ],
)
def test_engine_build_argument_mistakes_are_one_line_errors(argv, message, capsys):
    assert main(["engine", "build", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_engine_build_rejects_a_malformed_shape(capsys):
    with pytest.raises(SystemExit):
        main(["engine", "build", "--band", "32by256"])
    assert "HEIGHTxWIDTH" in capsys.readouterr().err


def test_the_onnx_metadata_names_the_engine(tiny_onnx):
    source = OnnxSource.find(str(tiny_onnx))
    assert (source.model, source.size_multiple, source.precision, source.weights_sha256) == ("tiny", 16, "fp32", "cd" * 32)
    with pytest.raises(ValueError, match="no ONNX file"):
        OnnxSource.find(str(tiny_onnx.with_suffix(".pt")))
    assert source.plugin_ops == ()
    model = onnx.load(tiny_onnx)
    model.graph.node[0].domain, model.graph.node[0].op_type = "maed", "MaedDSBlock"
    onnx.save(model, tiny_onnx)
    assert OnnxSource.find(str(tiny_onnx)).plugin_ops == ("MaedDSBlock",)  # needs our plugin library


def test_a_strongly_typed_fp16_engine_is_built_from_the_fp16_graph(tiny_onnx):
    source = OnnxSource.find(str(tiny_onnx))
    fp16 = onnx.load_from_string(_graph_bytes(source, "fp16", strongly_typed=True))
    assert [t.data_type for t in fp16.graph.initializer] == [TensorProto.FLOAT16]
    assert fp16.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT  # float32 in and out
    # without strong typing the FP32 graph goes in as it is, for the FP16 builder flag
    assert _graph_bytes(source, "fp16", strongly_typed=False) == tiny_onnx.read_bytes()
    assert _graph_bytes(source, "fp32", strongly_typed=True) == tiny_onnx.read_bytes()
    with pytest.raises(ValueError, match="FP32 ONNX"):
        _graph_bytes(OnnxSource(**{**source.__dict__, "precision": "fp16"}), "fp32", strongly_typed=True)


def test_strong_typing_by_tensorrt_version():
    flags = types.SimpleNamespace(STRONGLY_TYPED=1)
    assert strongly_typed_flags(types.SimpleNamespace(__version__="10.3.0", NetworkDefinitionCreationFlag=flags)) == 2
    assert strongly_typed_flags(types.SimpleNamespace(__version__="11.4.0", NetworkDefinitionCreationFlag=flags)) == 0
    old = types.SimpleNamespace(__version__="8.6.1", NetworkDefinitionCreationFlag=types.SimpleNamespace())
    assert strongly_typed_flags(old) is None


# --- where TensorRT cannot run ----------------------------------------------------------------------


@pytest.fixture
def fresh_reason():
    real = trt_available.unavailable_reason  # tests replace it; its cache belongs to the real one
    real.cache_clear()
    yield
    real.cache_clear()


def test_cuda_python_imports_without_a_gpu():
    cudart = import_cudart()
    assert hasattr(cudart, "cudaMallocHost") and hasattr(cudart, "cudaMemcpyAsync")
    count, why = gpu_count()
    assert count > 0 or why  # no GPU: says why (no driver, no device)


def test_each_missing_piece_is_named_in_one_line(monkeypatch, fresh_reason):
    monkeypatch.setattr(trt_available, "find_spec", lambda name: None)
    assert trt_available.unavailable_reason().startswith("TensorRT is not installed: no Python module 'tensorrt'")
    trt_available.unavailable_reason.cache_clear()
    monkeypatch.setattr(trt_available, "find_spec", lambda name: object())
    monkeypatch.setattr("maed.engine.tensorrt.cuda.gpu_count", lambda: (0, "cudaErrorNoDevice"))
    assert trt_available.unavailable_reason() == "TensorRT is not available: no CUDA GPU (cudaErrorNoDevice)"
    trt_available.unavailable_reason.cache_clear()

    def no_cuda_python():
        raise ImportError("No module named 'cuda'")

    monkeypatch.setattr("maed.engine.tensorrt.cuda.gpu_count", no_cuda_python)
    assert "cuda-python is missing" in trt_available.unavailable_reason()


@pytest.fixture
def tensorrt_absent():
    reason = trt_available.unavailable_reason()
    if reason is None:
        pytest.skip("TensorRT runs here")
    return reason


def test_backend_tensorrt_says_why_it_cannot_run(tensorrt_absent, tiny_onnx, capsys):
    with pytest.raises(ValueError) as err:
        load_backend("tensorrt", str(tiny_onnx))
    assert str(err.value) == tensorrt_absent and "\n" not in tensorrt_absent
    scan = tiny_onnx.parent / "scan.npy"
    np.save(scan, np.zeros((32, 32)))
    assert main(["denoise", str(scan), "-o", str(tiny_onnx.parent / "out"), "--backend", "tensorrt"]) == 2
    assert capsys.readouterr().err == f"maed: error: {tensorrt_absent}\n"
    assert main(["engine", "build", "--model", str(tiny_onnx)]) == 2
    assert capsys.readouterr().err == f"maed: error: {tensorrt_absent}\n"


def test_auto_moves_on_silently_where_tensorrt_cannot_run(tensorrt_absent, tiny_onnx, capsys):
    backend = load_backend("auto", str(tiny_onnx))
    assert backend.name.startswith("onnxruntime")
    assert "TensorRT" not in capsys.readouterr().err
    with pytest.raises(ValueError, match="TensorRT"):  # an engine file can only run on TensorRT
        load_backend("auto", str(tiny_onnx.with_suffix(".engine")))


def test_auto_takes_tensorrt_first_where_it_runs(monkeypatch, tiny_onnx, tmp_path, fresh_reason):
    chosen = []
    monkeypatch.setattr(trt_available, "unavailable_reason", lambda: None)
    monkeypatch.setattr("maed.engine.tensorrt.backend.load_tensorrt", lambda model: chosen.append(model) or "trt")
    assert load_backend("auto", str(tiny_onnx)) == "trt" and chosen == [str(tiny_onnx)]
    # a checkpoint has nothing to build an engine from: auto goes on to torch
    with pytest.raises(ValueError, match="no such checkpoint"):
        load_backend("auto", str(tmp_path / "missing.pt"))
    assert chosen == [str(tiny_onnx)]


# --- on a GPU with TensorRT ------------------------------------------------------------------------


@pytest.fixture
def tensorrt_here(monkeypatch, tmp_path):
    reason = trt_available.unavailable_reason()
    if reason:
        pytest.skip(reason)
    monkeypatch.setenv("MAED_ENGINE_CACHE", str(tmp_path / "engines"))


@pytest.fixture(scope="module")
def random_rt(random_rt_checkpoint, tmp_path_factory):
    """The rt model with random weights and BatchNorm statistics, exported to FP32 ONNX."""
    from maed.export import export_onnx

    path = tmp_path_factory.mktemp("trt") / "random_rt.onnx"
    export_onnx(str(random_rt_checkpoint), path)
    return path


def _relative_error(got, expected):
    return float(np.abs(got - expected).max() / np.ptp(expected))


@pytest.mark.gpu
@pytest.mark.parametrize("precision, tolerance", [("fp16", 5e-3), ("fp32", 1e-4)])
def test_an_engine_matches_onnx_runtime_at_band_and_frame_sizes(tensorrt_here, random_rt, precision, tolerance):
    from maed.engine.onnx_backend import OnnxBackend
    from maed.engine.tensorrt.backend import load_tensorrt

    backend = load_tensorrt(str(random_rt), precision)
    reference = OnnxBackend(random_rt, device="cpu")
    assert backend.name == f"tensorrt-{precision}" and backend.size_multiple == 16
    assert [p.name for p in backend.profiles] == ["band", "frame"]
    rng = np.random.default_rng(0)
    for shape in [(1, 1, _up(32 + CONTEXT_ROWS), 256), (1, 1, 256, 256), (1, 1, 512, 512), (1, 1, 48, 96), (3, 1, 64, 64)]:
        x = rng.standard_normal(shape).astype(np.float32)
        assert _relative_error(backend.denoise(x), reference.denoise(x)) < tolerance, shape
    with pytest.raises(ValueError, match="outside the engine's profiles"):
        backend.denoise(np.zeros((1, 1, 1024, 1024), np.float32))
    backend.close()


@pytest.mark.gpu
def test_a_stale_engine_is_rebuilt_and_the_timing_cache_reused(tensorrt_here, random_rt, capsys):
    from maed.engine.tensorrt.backend import load_tensorrt

    load_tensorrt(str(random_rt)).close()
    assert "building the TensorRT fp16 engine" in capsys.readouterr().err
    engine = engine_path("random_rt", "fp16")
    timing = next(engine.parent.glob("timing.*.cache"))
    assert timing.stat().st_size > 0
    load_tensorrt(str(random_rt)).close()
    assert "building" not in capsys.readouterr().err  # cached: loaded as it is
    key, settings = read_record(engine)
    write_record(engine, EngineKey(**{**key.__dict__, "weights_sha256": "00" * 32}), settings)
    load_tensorrt(str(random_rt)).close()
    assert "weights_sha256" in capsys.readouterr().err  # other weights: rebuilt, not loaded
    assert read_record(engine)[0] == key


@pytest.mark.gpu
def test_engine_build_command_and_auto(tensorrt_here, random_rt, tmp_path, capsys):
    dest = tmp_path / "custom.engine"
    assert (
        main(["engine", "build", "--model", str(random_rt), "--band", "16x128", "--frame", "256x256", "--opt-level", "1", "-o", str(dest)])
        == 0
    )
    assert capsys.readouterr().out.strip() == str(dest)
    backend = load_backend("auto", str(dest))
    assert backend.name == "tensorrt-fp16"
    tall = _up(16 + CONTEXT_ROWS)
    assert [(p.opt, p.max) for p in backend.profiles] == [((tall, 128), (min(2 * tall, 256), 256)), ((256, 256), (256, 256))]
    assert backend.denoise(np.zeros((1, 1, tall, 128), np.float32)).shape == (1, 1, tall, 128)
