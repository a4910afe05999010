"""ONNX export and the ONNX Runtime back end.

Parity with torch (FP32 and FP16), shapes never seen at export, TensorRT's operator support,
the metadata, the ``maed export onnx`` command, the back-end choice, the shipped ``rt.onnx``
against the shipped weights, and the acquisition side running without torch.
"""

import dataclasses
import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from maed.cli import main
from maed.data import SIMULATOR_VERSION
from maed.denoise import denoise_array
from maed.engine import load_backend
from maed.engine.onnx_backend import OnnxBackend
from maed.engine.onnx_fp16 import convert_to_fp16
from maed.engine.onnx_model import METADATA_KEYS, shipped_onnx
from maed.engine.tensorrt.onnx_ops import MAX_OPSET, OPERATORS_FILE, supported_operators, tensorrt_problems
from maed.engine.torch_backend import TorchBackend
from maed.export import export_onnx
from maed.model import CONFIGS
from maed.model.checkpoint import load_model, shipped_weights

FP32_TOLERANCE = 1e-4  # of the output range; measured about 1e-6 (docs/engines.md)
FP16_TOLERANCE = 5e-3  # of the output range; measured about 6e-4 on ONNX Runtime's CPU (docs/engines.md)
UNSEEN_SHAPES = [(1, 1, 48, 80), (1, 1, 272, 160), (3, 1, 64, 64)]  # export traced (1, 1, 64, 64)


@pytest.fixture(scope="module")
def exported(random_rt_checkpoint, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("onnx")
    paths = {"fp32": folder / "random_rt.onnx", "fp16": folder / "random_rt.fp16.onnx"}
    export_onnx(str(random_rt_checkpoint), paths["fp32"])
    export_onnx(str(random_rt_checkpoint), paths["fp16"], fp16=True)
    return paths


def _torch(checkpoint: Path, x: np.ndarray) -> np.ndarray:
    model, _ = load_model(str(checkpoint))
    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


def _relative_error(got: np.ndarray, expected: np.ndarray) -> float:
    assert got.shape == expected.shape
    return float(np.abs(got - expected).max() / np.ptp(expected))


def _input(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize(("precision", "tolerance"), [("fp32", FP32_TOLERANCE), ("fp16", FP16_TOLERANCE)])
def test_onnxruntime_matches_torch(exported, random_rt_checkpoint, precision, tolerance):
    x = _input((2, 1, 64, 96))
    expected = _torch(random_rt_checkpoint, x)
    assert np.ptp(expected - x) > 0.1 * np.ptp(x), "the test model must change its input noticeably"
    got = OnnxBackend(exported[precision], threads=1, device="cpu").denoise(x)
    assert got.dtype == np.float32
    assert _relative_error(got, expected) < tolerance


@pytest.mark.parametrize("shape", UNSEEN_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize(("precision", "tolerance"), [("fp32", FP32_TOLERANCE), ("fp16", FP16_TOLERANCE)])
def test_shapes_unseen_at_export(exported, random_rt_checkpoint, shape, precision, tolerance):
    x = _input(shape, seed=1)
    got = OnnxBackend(exported[precision], threads=1, device="cpu").denoise(x)
    assert _relative_error(got, _torch(random_rt_checkpoint, x)) < tolerance


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_graph_is_clean_dynamic_and_parsable_by_tensorrt(exported, precision):
    model = onnx.load(exported[precision])
    onnx.checker.check_model(model, full_check=True)
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
    for value in (model.graph.input[0], model.graph.output[0]):
        dims = value.type.tensor_type.shape.dim
        assert [d.dim_param for d in dims] == ["batch", "", "height", "width"]
        assert dims[1].dim_value == 1
        assert value.type.tensor_type.elem_type == TensorProto.FLOAT
    assert tensorrt_problems(model) == []
    # Folded and simplified: no leftover shape arithmetic, identities or constant nodes.
    assert {n.op_type for n in model.graph.node} <= {
        "Conv",
        "Clip",
        "Relu",
        "Add",
        "Mul",
        "Sigmoid",
        "Concat",
        "Pad",
        "Resize",
        "ReduceMean",
        "Cast",
    }


def test_fp16_graph_keeps_float32_io_and_residual(exported):
    graph = onnx.load(exported["fp16"]).graph
    resize_inputs = {name for n in graph.node if n.op_type == "Resize" for name in n.input[1:]}
    floats = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE}
    weights = {t.name: t.data_type for t in graph.initializer if t.data_type in floats}
    assert {t for name, t in weights.items() if name not in resize_inputs} == {TensorProto.FLOAT16}
    assert [n.op_type for n in graph.node].count("Cast") == 2
    last = graph.node[-1]
    assert last.op_type == "Add" and last.output[0] == graph.output[0].name
    assert graph.input[0].name in last.input  # the scan itself is added back in float32


def _tiny_model(node: onnx.NodeProto, opset: int = 17, **inputs: TensorProto) -> onnx.ModelProto:
    graph = helper.make_graph(
        [node],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=list(inputs.values()),
    )
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(node.domain, 1)] if node.domain else [])
    return helper.make_model(graph, opset_imports=opsets)


def test_tensorrt_check_flags_what_the_parser_rejects():
    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2])
    cubic = _tiny_model(helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="cubic"), scales=scales)
    assert any("mode='cubic'" in p for p in tensorrt_problems(cubic))
    unique = _tiny_model(helper.make_node("Unique", ["x"], ["y"]))
    assert any("Unique" in p and "not supported" in p for p in tensorrt_problems(unique))
    assert any("opset 21" in p for p in tensorrt_problems(_tiny_model(helper.make_node("Relu", ["x"], ["y"]), opset=21)))
    custom = _tiny_model(helper.make_node("SEFusion", ["x"], ["y"], domain="maed"))
    assert tensorrt_problems(custom) and tensorrt_problems(custom, plugins=["SEFusion"]) == []
    nearest = _tiny_model(helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest"), scales=scales)
    assert tensorrt_problems(nearest) == []


def test_operator_list_names_its_source():
    header = [line for line in OPERATORS_FILE.read_text().splitlines() if line.startswith("#")]
    assert any("onnx/onnx-tensorrt" in line and "docs/operators.md" in line for line in header)
    assert any(len(word) == 40 and all(c in "0123456789abcdef" for c in word) for line in header for word in line.split())
    table = supported_operators()
    assert {"FP32", "FP16"} <= table["Conv"] and "Unique" not in table and MAX_OPSET == 20


def test_fp16_conversion_refuses_unknown_operators():
    with pytest.raises(ValueError, match="Unique"):
        convert_to_fp16(_tiny_model(helper.make_node("Unique", ["x"], ["y"])))


def test_metadata_describes_the_model(exported, random_rt_checkpoint):
    for precision, path in exported.items():
        meta = {p.key: p.value for p in onnx.load(path).metadata_props}
        assert set(METADATA_KEYS) <= set(meta)
        assert meta["maed.model"] == "random_rt" and meta["maed.precision"] == precision
        assert json.loads(meta["maed.config"]) == {"name": "rt", **json.loads(json.dumps(dataclasses.asdict(CONFIGS["rt"])))}
        assert meta["maed.size_multiple"] == "16"
        assert meta["maed.weights_sha256"] == hashlib.sha256(random_rt_checkpoint.read_bytes()).hexdigest()
        assert "unit standard deviation" in meta["maed.normalisation"] and "rows aligned" in meta["maed.normalisation"]
        assert meta["maed.levelling"] == "plane+rows"  # a checkpoint that does not say was trained so
        assert json.loads(meta["maed.training_data"])["simulator"] == "unrecorded"  # a bare checkpoint has no card
    backend = OnnxBackend(exported["fp32"], threads=1)
    assert (backend.model, backend.size_multiple, backend.name) == ("random_rt", 16, "onnxruntime-cpu")
    # The checkpoint it came from reads alike: one model, one name, whichever file runs it.
    assert TorchBackend(str(random_rt_checkpoint), device="cpu").model == "random_rt"
    assert backend.levelling == "plane+rows"
    assert backend.session.get_session_options().intra_op_num_threads == 1


def test_cli_export_round_trip(random_rt_checkpoint, tmp_path, capsys):
    dest = tmp_path / "cli.onnx"
    assert main(["export", "onnx", "--model", str(random_rt_checkpoint), "-o", str(dest)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(dest)
    scan = np.random.default_rng(2).standard_normal((100, 130)) * 1e-10  # metres, odd sizes
    via_onnx = load_backend("auto", str(dest), threads=1)
    assert via_onnx.name == "onnxruntime-cpu"
    got = denoise_array(scan, via_onnx)
    expected = denoise_array(scan, load_backend("torch", str(random_rt_checkpoint)))
    assert got.shape == scan.shape and got.dtype == np.float32
    assert _relative_error(got, expected) < FP32_TOLERANCE


def test_cli_export_errors_are_one_line(tmp_path, capsys):
    assert main(["export", "onnx", "--model", "no_such_model", "-o", str(tmp_path / "x.onnx")]) == 2
    assert main(["export", "onnx", "--ship", "--fp16"]) == 2
    (tmp_path / "done.onnx").write_bytes(b"onnx")
    assert main(["export", "onnx", "--model", str(tmp_path / "done.onnx"), "-o", str(tmp_path / "y.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "no_such_model" in err[0] and "--ship" in err[1] and "an ONNX file, not the torch" in err[2]


def test_cli_export_never_writes_over_a_file_or_into_a_missing_folder(random_rt_checkpoint, tmp_path, capsys):
    """An ``-o`` mistyped over a raw scan left an ONNX file where the scan was; a missing folder was created."""
    scan = tmp_path / "victim.sxm"
    scan.write_bytes(b"raw scan bytes")
    model = ["export", "onnx", "--model", str(random_rt_checkpoint)]
    assert main([*model, "-o", str(scan)]) == 2
    assert main([*model, "-o", str(tmp_path / "no_such_folder" / "x.onnx")]) == 2
    assert main([*model, "-o", f"{tmp_path}/"]) == 2
    assert main([*model, "-o", str(scan), "--force"]) == 2  # not an ONNX file's name, whatever --force says
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and "does not exist" in err[1] and "is a folder" in err[2]
    assert "ends in .onnx" in err[0] and "ends in .onnx" in err[3]
    assert scan.read_bytes() == b"raw scan bytes" and not (tmp_path / "no_such_folder").exists()
    earlier = tmp_path / "earlier.onnx"
    earlier.write_bytes(b"an earlier export")
    assert main([*model, "-o", str(earlier)]) == 2
    assert "exists; give --force" in capsys.readouterr().err
    assert main([*model, "-o", str(earlier), "--force"]) == 0  # asked for: replaced
    assert earlier.read_bytes() != b"an earlier export"


def test_cli_export_never_writes_over_the_checkpoint_it_exports_and_names_a_run_by_its_folder(random_rt_checkpoint, tmp_path, capsys):
    """``-o`` the checkpoint itself with ``--force`` replaced the training checkpoint with the ONNX; a run's
    ``last.pt`` exported as ``last`` into the current folder, every run alike."""
    run = tmp_path / "runs" / "mine"
    run.mkdir(parents=True)
    checkpoint = run / "last.pt"
    checkpoint.write_bytes(random_rt_checkpoint.read_bytes())
    assert main(["export", "onnx", "--model", str(checkpoint), "-o", str(checkpoint), "--force"]) == 2
    assert "ends in .onnx" in capsys.readouterr().err and checkpoint.read_bytes() == random_rt_checkpoint.read_bytes()
    assert main(["export", "onnx", "--model", str(checkpoint)]) == 0
    written = run / "last.onnx"
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(written)
    assert OnnxBackend(written, threads=1).model == "mine"


def test_backend_choice(exported, random_rt_checkpoint, tmp_path):
    assert load_backend("auto", str(random_rt_checkpoint)).name.startswith("torch")  # no ONNX file for a .pt
    assert load_backend("onnx", str(exported["fp16"]), threads=1).name == "onnxruntime-cpu"
    with pytest.raises(ValueError, match="no ONNX file"):
        load_backend("onnx", str(random_rt_checkpoint))
    with pytest.raises(ValueError, match="not an ONNX file"):
        load_backend("torch", str(exported["fp32"]))
    with pytest.raises(ValueError, match="no such ONNX model"):
        load_backend("onnx", str(tmp_path / "missing.onnx"))
    with pytest.raises(ValueError, match="multiples of 16"):
        OnnxBackend(exported["fp32"], threads=1).denoise(np.zeros((1, 1, 40, 64), np.float32))


def test_acquisition_side_runs_without_torch(exported):
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        from maed.denoise import denoise_array
        from maed.engine import load_backend
        for name in ("auto", "onnx"):
            backend = load_backend(name, {str(exported["fp32"])!r}, threads=1)
            out = denoise_array(np.random.default_rng(0).standard_normal((70, 90)), backend)
            assert out.shape == (70, 90) and np.isfinite(out).all()
        assert "torch" not in sys.modules, "the ONNX path imported torch"
        print(backend.name)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "onnxruntime-cpu"


def test_shipped_onnx_matches_shipped_weights():
    weights = shipped_weights("rt")
    if not weights.exists():
        pytest.skip("no shipped rt.pt yet (maed train --ship writes it)")
    path = shipped_onnx("rt")
    hint = "run `maed export onnx --model rt --ship`"
    assert path.exists(), f"rt.pt is shipped without rt.onnx; {hint}"
    meta = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert meta["maed.weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest(), (
        f"rt.onnx was exported from other weights than the shipped rt.pt; {hint}"
    )
    # Weights trained on an earlier simulator stay valid; they must say which one.
    recorded = json.loads(meta["maed.training_data"])["simulator"]
    assert recorded.startswith("maed.data ") and int(recorded.split()[-1]) <= int(SIMULATOR_VERSION.split()[-1])
    assert load_backend("auto", "rt", threads=1).name.startswith("onnxruntime")
    for shape in [(1, 1, 64, 96), (1, 1, 48, 80)]:
        x = _input(shape, seed=3)
        got = OnnxBackend(path, threads=1, device="cpu").denoise(x)
        assert _relative_error(got, _torch(weights, x)) < FP32_TOLERANCE
