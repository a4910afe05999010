"""``maed denoise`` on instrument files: every real scan through the shipped rt model (ONNX back end)
into .npy and a .gwy that Gwyddion's format reader gets back to scale; incomplete scans stay empty
where never measured; channel and pass choice (and the deprecated --direction); bad instrument files
among good ones."""

import hashlib
import io
import json
import os
import re
import time
from pathlib import Path

import gwyfile
import numpy as np
import pytest
from scanfile_helpers import REAL_DIR, REAL_SCANS, needs_real, stored_plane, write_sxm

from maed import progress
from maed.cli import main
from maed.data import make_pair
from maed.denoise import denoise_guarded
from maed.denoise_files import denoise_file, denoise_files, record_notes, trace_retrace_note
from maed.engine import load_backend
from maed.normalise import denormalise, normalise
from maed.scanfiles import read_channel, read_file
from maed.trust import conservative
from maed.zoo import PRODUCT


class Halve:
    """A back end that halves its input: known output, no network."""

    name = "halve"
    model = "halve"
    size_multiple = 8
    weights_sha256 = "0" * 64  # what a record names
    adapted_from = None

    def denoise(self, batch: np.ndarray) -> np.ndarray:
        return batch * 0.5


def test_only_measured_rows_are_denoised():
    scan = np.random.default_rng(0).standard_normal((40, 32))
    scan[30:] = np.nan
    scan[12, 5] = np.nan  # a row measured in part counts as not measured
    out = denoise_guarded(scan, Halve()).data
    measured = np.ones(40, bool)
    measured[30:] = measured[12] = False
    assert out.dtype == np.float32 and np.isnan(out[~measured]).all() and np.isfinite(out[measured]).all()


@needs_real
def test_every_real_scan_denoises_into_npy_and_a_gwy_to_scale(tmp_path, capsys):
    inputs = [str(REAL_DIR / name) for name in REAL_SCANS]
    assert main(["denoise", *inputs, "-o", str(tmp_path), "--backend", "onnx", "--model", "rt", "--threads", "1"]) == 0
    printed = capsys.readouterr().out.split()
    for name in REAL_SCANS:
        image = read_channel(REAL_DIR / name)
        stem = name.rsplit(".", 1)[0]
        out = np.load(tmp_path / f"{stem}.npy")
        assert out.dtype == np.float32 and out.shape == image.data.shape
        measured = image.measured_rows
        assert np.isfinite(out[measured]).all() and np.isnan(out[~measured]).all()
        # Same units as the input: metres in, metres out, near the input's heights.
        spread = np.ptp(image.data[measured])
        assert abs(np.median(out[measured]) - np.median(image.data[measured])) < spread + 1e-15
        fields = gwyfile.util.get_datafields(gwyfile.load(str(tmp_path / f"{stem}.gwy")))
        # The published frame's title names the model, or the conservative result where the guard did not trust it.
        (published,) = [k for k in fields if k.startswith(f"{image.name} trace (") and " rt" in k and "weight" not in k]
        raw, denoised = fields[f"{image.name} trace (raw)"], fields[published]
        for field in (raw, denoised):
            assert field.data.shape == image.data.shape
            assert (field.xreal, field.yreal) == pytest.approx(image.scan_range)
            assert field["si_unit_xy"]["unitstr"] == "m" and field["si_unit_z"]["unitstr"] == image.unit
        np.testing.assert_array_equal(raw.data[measured], image.data[measured])  # raw data are never lost
        np.testing.assert_allclose(denoised.data[measured], out[measured], rtol=1e-6)
        assert {f"{tmp_path}/{stem}.npy", f"{tmp_path}/{stem}.gwy"} <= set(printed)


@needs_real
def test_createc_step_scan_stays_empty_where_never_measured(tmp_path):
    name = "createc_scan_step_20nm.dat"
    assert main(["denoise", str(REAL_DIR / name), "-o", str(tmp_path), "--backend", "onnx", "--model", "rt"]) == 0
    out = np.load(tmp_path / "createc_scan_step_20nm.npy")
    assert np.isfinite(out[:330]).all() and np.isnan(out[330:]).all()
    container = gwyfile.load(str(tmp_path / "createc_scan_step_20nm.gwy"))
    for i in (0, 1):
        mask = container[f"/{i}/mask"].data
        assert mask[330:].all() and not mask[:330].any()
        assert np.isfinite(container[f"/{i}/data"].data).all()


def test_a_scan_stopped_early_says_how_many_rows_were_measured(tmp_path, capsys):
    scan = np.random.default_rng(4).standard_normal((64, 48)) * 1e-11
    scan[40:] = np.nan  # never measured: the bridge saves a stopped scan so
    np.save(tmp_path / "stopped.npy", scan)
    assert main(["denoise", str(tmp_path / "stopped.npy"), "-o", str(tmp_path / "o"), "--backend", "onnx"]) == 0
    assert "stopped.npy: 40 of 64 rows measured; the rest stay empty (NaN) in every output" in capsys.readouterr().err
    record = json.loads((tmp_path / "o" / "stopped.json").read_text())
    assert (record["rows"], record["rows_measured"]) == (64, 40)
    assert np.isnan(np.load(tmp_path / "o" / "stopped.npy")[40:]).all()


def test_channel_and_pass_options(tmp_path, capsys):
    stored = write_sxm(tmp_path / "s.sxm", channels=(("Z", "m", "both"), ("Current", "A", "both")), rows=24, cols=24)
    onnx = ["--backend", "onnx", "--model", "rt"]
    assert main(["denoise", str(tmp_path / "s.sxm"), "-o", str(tmp_path / "o"), "--channel", "Current", "--pass", "retrace", *onnx]) == 0
    out = np.load(tmp_path / "o" / "s.npy")
    fields = gwyfile.util.get_datafields(gwyfile.load(str(tmp_path / "o" / "s.gwy")))
    # The retrace is the file's backward image (stored right to left), not the trace.
    np.testing.assert_array_equal(fields["Current retrace (raw)"].data, stored[3][:, ::-1])
    assert not np.array_equal(stored[3][:, ::-1], stored[2])
    assert fields["Current retrace (raw)"]["si_unit_z"]["unitstr"] == "A" and out.shape == (24, 24)
    assert "deprecated" not in capsys.readouterr().err

    capsys.readouterr()
    (tmp_path / "broken.sxm").write_bytes((tmp_path / "s.sxm").read_bytes()[:-500])
    code = main(["denoise", str(tmp_path / "broken.sxm"), str(tmp_path / "s.sxm"), "-o", str(tmp_path / "p"), "--channel", "Bias", *onnx])
    err = capsys.readouterr().err.strip().splitlines()[1:]
    assert code == 1 and len(err) == 2
    assert "broken.sxm: truncated" in err[0] and "s.sxm: no channel 'Bias'; channels: Z, Current" in err[1]
    write_sxm(tmp_path / "later.sxm", rows=24, cols=24)
    assert main(["denoise", str(tmp_path / "broken.sxm"), str(tmp_path / "later.sxm"), "-o", str(tmp_path / "q"), *onnx]) == 1
    assert sorted(p.name for p in (tmp_path / "q").iterdir()) == ["later.gwy", "later.json", "later.npy"]


@pytest.mark.parametrize(
    "option",
    [
        ["--pass", "trace"],
        ["--pass", "forward"],
        [],
        ["--direction", "forward"],
        ["--pass", "retrace"],
        ["--pass", "backward"],
        ["--direction", "backward"],
    ],
)
def test_each_way_of_naming_a_pass_reads_that_pass(tmp_path, capsys, option):
    stored = write_sxm(tmp_path / "s.sxm", channels=(("Z", "m", "both"),), rows=24, cols=24)
    retrace = option[-1:] in (["retrace"], ["backward"])
    assert main(["denoise", str(tmp_path / "s.sxm"), "-o", str(tmp_path / "o"), "--backend", "onnx", *option]) == 0
    fields = gwyfile.util.get_datafields(gwyfile.load(str(tmp_path / "o" / "s.gwy")))
    label = "Z retrace (raw)" if retrace else "Z trace (raw)"
    np.testing.assert_array_equal(fields[label].data, stored[1][:, ::-1] if retrace else stored[0])
    deprecation = [line for line in capsys.readouterr().err.splitlines() if "deprecated" in line]
    if option[:1] == ["--direction"]:  # still works, and says what to use instead
        assert deprecation == [
            f"maed: warning: --direction is deprecated; use --pass {'retrace' if retrace else 'trace'} "
            "(forward is the trace, backward the retrace)"
        ]
    else:
        assert deprecation == []


def test_pass_and_direction_that_disagree_are_an_error(tmp_path, capsys):
    write_sxm(tmp_path / "s.sxm", channels=(("Z", "m", "both"),), rows=24, cols=24)
    assert main(["denoise", str(tmp_path / "s.sxm"), "-o", str(tmp_path / "o"), "--pass", "trace", "--direction", "backward"]) == 2
    assert "disagree" in capsys.readouterr().err


def test_too_few_measured_rows_is_an_error(tmp_path, capsys):
    planes = [stored_plane(i, 16, 16) for i in range(3)]
    for p in planes:
        p[5:] = np.nan
    write_sxm(tmp_path / "s.sxm", rows=16, cols=16, planes=planes)
    assert main(["denoise", str(tmp_path / "s.sxm"), "-o", str(tmp_path / "o"), "--backend", "onnx"]) == 1
    assert "s.sxm: only 5 of 16 rows were measured; at least 8 are needed" in capsys.readouterr().err


def test_onnx_rt_is_the_back_end_used():
    assert load_backend("onnx", "rt").name.startswith("onnxruntime")


class Biased(Halve):
    """A back end whose answer to zeros is not zero, like a network's biases."""

    def denoise(self, batch: np.ndarray) -> np.ndarray:
        return batch + 0.3


def test_a_flat_scan_comes_back_unchanged():
    # Constant-height scans record a constant Z; the network's answer to zeros must not come back as metres.
    flat = np.full((256, 256), 1.7e-11)  # levels to exact zeros, as the real constant-height Z does
    np.testing.assert_array_equal(denoise_guarded(flat, Biased()).data, flat.astype(np.float32))


class Inventing:
    """The shipped network forced to invent: its output gains horizontal bands the surface lacks."""

    def __init__(self) -> None:
        self.inner = load_backend("onnx", "rt")
        self.name, self.model, self.size_multiple = "inventing", "rt", self.inner.size_multiple
        self.weights_sha256, self.levelling = self.inner.weights_sha256, self.inner.levelling
        self.adapted_from = self.inner.adapted_from

    def denoise(self, batch: np.ndarray) -> np.ndarray:
        rows = np.arange(batch.shape[-2], dtype=np.float32)[:, None]
        return self.inner.denoise(batch) + 0.8 * np.cos(2 * np.pi * rows / 7.0)


def test_every_output_names_its_model_weights_and_trust(tmp_path):
    write_sxm(tmp_path / "s.sxm", rows=64, cols=64)
    assert main(["denoise", str(tmp_path / "s.sxm"), "-o", str(tmp_path / "o"), "--backend", "onnx"]) == 0
    record = json.loads((tmp_path / "o" / "s.json").read_text())
    backend = load_backend("onnx", PRODUCT)
    assert record["model"] == PRODUCT and record["weights_sha256"] == backend.weights_sha256
    assert record["pass"] == "trace" and record["channel"] == "Z" and record["output"] == "s.npy"
    trust = record["trust"]
    assert trust["output"] in ("network", "blend", "fallback")
    assert {"whiteness_x", "whiteness_y", "structure", "peaks_kept", "peaks_invented"} <= set(trust["figures"])
    assert record["input_sha256"] == hashlib.sha256((tmp_path / "s.sxm").read_bytes()).hexdigest()
    assert record["model_file"] == str(backend.path.resolve())
    assert record["model_file_sha256"] == hashlib.sha256(backend.path.read_bytes()).hexdigest()


def test_a_model_file_changed_after_export_is_named_by_its_own_hash(tmp_path):
    """An ONNX file carries the hash of the weights it was exported from in its metadata, which cannot vouch for
    the file: one weight zeroed after export still named the shipped weights. The record names the file that ran."""
    import onnx
    from onnx import numpy_helper

    shipped = load_backend("onnx", PRODUCT).path
    graph = onnx.load(shipped)
    weight = max(graph.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    weight.CopyFrom(numpy_helper.from_array(np.zeros_like(numpy_helper.to_array(weight)), weight.name))
    onnx.save(graph, tmp_path / "edited.onnx")
    write_sxm(tmp_path / "s.sxm", rows=64, cols=64)
    assert main(["denoise", str(tmp_path / "s.sxm"), "-o", str(tmp_path / "o"), "--model", str(tmp_path / "edited.onnx")]) == 0
    record = json.loads((tmp_path / "o" / "s.json").read_text())
    assert record["weights_sha256"] == load_backend("onnx", PRODUCT).weights_sha256  # what the metadata claims
    assert record["model_file"] == str((tmp_path / "edited.onnx").resolve())
    assert record["model_file_sha256"] == hashlib.sha256((tmp_path / "edited.onnx").read_bytes()).hexdigest()
    assert record["model_file_sha256"] != hashlib.sha256(shipped.read_bytes()).hexdigest()


def test_a_network_that_invents_bands_is_not_published(tmp_path):
    write_sxm(tmp_path / "s.sxm", rows=64, cols=64)
    image = read_channel(tmp_path / "s.sxm")
    result = denoise_guarded(image.data, Inventing())
    assert result.verdict.output == "fallback" and result.verdict.reasons
    # What is published holds no bands: its row means vary no more than the conservative result's.
    x, norm = normalise(image.data)
    conservative_rows = (denormalise(conservative(x), norm)).mean(axis=1)
    assert np.abs(result.data.mean(axis=1) - conservative_rows).max() < 1e-3 * np.ptp(image.data)
    assert (result.fallback == 1).all()


def _pair_sxm(path, noise_m: float, seed: int = 0) -> float:
    """A Nanonis file of one lattice in both passes, each with its own white noise of ``noise_m``; the lattice's rms."""
    rows = cols = 96
    y, x = np.indices((rows, cols), dtype=float)
    surface = 20e-12 * (np.cos(2 * np.pi * x / 6.0) + np.cos(2 * np.pi * (0.5 * x + 0.866 * y) / 6.0))
    rng = np.random.default_rng(seed)
    trace, retrace = (surface + rng.normal(0, noise_m, surface.shape) for _ in range(2))
    write_sxm(path, channels=(("Z", "m", "both"),), rows=rows, cols=cols, planes=[trace, retrace[:, ::-1]])
    return float(surface.std())


def test_the_trace_retrace_error_is_figured_and_said_for_a_file_with_both_passes(tmp_path, capsys):
    """``maed denoise --trace-retrace``: each pass denoised alone against the other raw pass, in <stem>.json and told
    to the user. Raw's error is sqrt(2) times the noise of one pass; on a noisy lattice the model is below raw's and
    the classical pipeline's, and no warning is given."""
    noise = 8e-12
    _pair_sxm(tmp_path / "noisy.sxm", noise)
    assert main(["denoise", str(tmp_path / "noisy.sxm"), "-o", str(tmp_path / "o"), "--backend", "onnx", "--trace-retrace"]) == 0
    figures = json.loads((tmp_path / "o" / "noisy.json").read_text())["trace_retrace"]
    assert figures["unit"] == "m" and figures["rows"] == 96 and figures["slow_shift"] == 0.0
    assert figures["raw"]["value"] == pytest.approx(np.sqrt(2) * noise, rel=0.1)
    assert figures["model"]["value"] < min(figures["raw"]["value"], figures["classical"]["value"])
    err = capsys.readouterr().err
    told = [line for line in err.splitlines() if "trace/retrace error over 96 rows, pm" in line]
    assert len(told) == 1 and f"raw {figures['raw']['value'] * 1e12:.3g} (" in told[0]
    assert "further from the other raw pass" not in err


def test_a_model_further_from_the_other_pass_than_raw_is_warned_of(tmp_path, capsys):
    """A clean lattice, barely noisy: a back end that halves its input publishes (after its guard) something further
    from the other pass than the raw pass is, and the user is told so in plain words."""
    _pair_sxm(tmp_path / "quiet.sxm", 0.2e-12)
    written = denoise_files([tmp_path / "quiet.sxm"], tmp_path / "o", Halve(), print, on_note=print, trace_retrace=True)
    assert tmp_path / "o" / "quiet.json" in written
    figures = json.loads((tmp_path / "o" / "quiet.json").read_text())["trace_retrace"]
    assert figures["model"]["value"] > figures["raw"]["value"]
    assert "further from the other raw pass than the raw pass does" in capsys.readouterr().out


def test_the_trace_retrace_error_is_the_same_whichever_pass_is_published(tmp_path):
    _pair_sxm(tmp_path / "scan.sxm", 8e-12)
    for pass_ in ("trace", "retrace"):
        out = ["-o", str(tmp_path / pass_), "--backend", "onnx", "--trace-retrace", "--pass", pass_]
        assert main(["denoise", str(tmp_path / "scan.sxm"), *out]) == 0
    trace, retrace = (json.loads((tmp_path / p / "scan.json").read_text())["trace_retrace"] for p in ("trace", "retrace"))
    assert "raw" in trace and retrace == trace  # both passes denoised alone either way, the retrace registered onto the trace


@pytest.mark.parametrize(
    ("rows", "cols", "channels", "why"),
    [
        (24, 24, (("Z", "m", "forward"),), "the file holds one pass only"),
        (24, 8, (("Z", "m", "both"),), "the passes cannot be compared: registration leaves fewer than 4 columns"),
        (12, 48, (("Z", "m", "both"),), "fewer than 16 rows measured in both passes"),
    ],
)
def test_where_there_is_no_trace_retrace_error_the_file_is_denoised_and_says_why(tmp_path, capsys, rows, cols, channels, why):
    write_sxm(tmp_path / "s.sxm", channels=channels, rows=rows, cols=cols)
    assert main(["denoise", str(tmp_path / "s.sxm"), "-o", str(tmp_path / "o"), "--backend", "onnx", "--trace-retrace"]) == 0
    figures = json.loads((tmp_path / "o" / "s.json").read_text())["trace_retrace"]
    assert why in figures["skipped"] and (tmp_path / "o" / "s.npy").is_file()
    assert f"s.sxm: no trace/retrace error: {why}" in capsys.readouterr().err


def test_the_two_pass_model_has_no_trace_retrace_error_and_says_why(tmp_path, capsys):
    _pair_sxm(tmp_path / "scan.sxm", 8e-12)
    args = ["-o", str(tmp_path / "o"), "--backend", "onnx", "--pass", "both", "--trace-retrace"]
    assert main(["denoise", str(tmp_path / "scan.sxm"), *args]) == 0
    assert "no pass is left to compare it with" in json.loads((tmp_path / "o" / "scan.json").read_text())["trace_retrace"]["skipped"]


def test_an_archive_run_asks_for_the_trace_retrace_error_once_and_counts_the_warnings(tmp_path, capsys):
    """A run without the figures is redone with them; one with them is done for a run that does not ask; the summary
    counts the files whose model output lies further from the other pass than raw, and each file's line is said."""
    (tmp_path / "in").mkdir()
    _pair_sxm(tmp_path / "in" / "scan.sxm", 8e-12)
    args = ["denoise", "-r", str(tmp_path / "in"), "-o", str(tmp_path / "o"), "--backend", "onnx", "--jobs", "1"]
    assert main(args) == 0
    assert "trace_retrace" not in json.loads((tmp_path / "o" / "scan.sxm.json").read_text())
    capsys.readouterr()
    assert main([*args, "--trace-retrace"]) == 0
    assert "raw" in json.loads((tmp_path / "o" / "scan.sxm.json").read_text())["trace_retrace"]
    captured = capsys.readouterr()
    assert "scan.sxm: trace/retrace error over 96 rows" in captured.err
    assert re.search(r"trace/retrace error figured\s+1\b", captured.out)
    assert re.search(r"further from the other pass than raw\s+0\b", captured.out)
    for again in ([*args, "--trace-retrace"], args):  # done with the figures: skipped either way
        assert main(again) == 0
        assert re.search(r"already done \(skipped\)\s+1\b", capsys.readouterr().out)


def test_the_published_pass_is_not_denoised_again_for_its_trace_retrace_error(tmp_path):
    """``file_trace_retrace`` reuses the pass ``maed denoise`` published (where both passes measured every row): the
    figures are those of denoising it again, to the last digit."""
    from maed.denoise_files import file_trace_retrace
    from maed.io import read_scan

    _pair_sxm(tmp_path / "scan.sxm", 8e-12)
    backend = load_backend("onnx", PRODUCT)
    for pass_ in ("trace", "retrace"):
        scan = read_scan(tmp_path / "scan.sxm", None, pass_)
        published = denoise_guarded(scan.data, backend, other_pass=scan.other_pass).data
        reused = file_trace_retrace(scan, backend, pass_, published=published)
        assert reused == file_trace_retrace(scan, backend, pass_)
        # and it is what is compared: the raw pass given as published scores worse than the network's
        assert file_trace_retrace(scan, backend, pass_, published=scan.data)["model"]["value"] > reused["model"]["value"]


def test_nothing_in_the_output_folder_is_overwritten_but_a_rerun_of_the_same_input(tmp_path, capsys):
    write_sxm(tmp_path / "s.sxm", channels=(("Z", "m", "both"), ("Current", "A", "both")), rows=24, cols=24)
    np.save(tmp_path / "mine.npy", np.eye(24))
    write_sxm(tmp_path / "mine.sxm", rows=24, cols=24)
    out = tmp_path / "o"
    out.mkdir()
    export = np.arange(9.0).reshape(3, 3)
    np.save(out / "mine.npy", export)  # the user's own file, named as an output would be
    onnx = ["--backend", "onnx", "--threads", "1"]

    assert main(["denoise", str(tmp_path / "s.sxm"), str(tmp_path / "mine.sxm"), "-o", str(out), *onnx]) == 1
    err = capsys.readouterr().err
    assert "mine.npy exists and is not maed's output of this file; it is never overwritten" in err
    np.testing.assert_array_equal(np.load(out / "mine.npy"), export)
    first = np.load(out / "s.npy")
    assert json.loads((out / "s.json").read_text())["input"] == str((tmp_path / "s.sxm").resolve())

    # Another channel or pass of the same file would replace the result there: refused, the result kept.
    for option, asked in ((["--channel", "Current"], "Current trace"), (["--pass", "retrace"], "Z retrace")):
        assert main(["denoise", str(tmp_path / "s.sxm"), "-o", str(out), *option, *onnx]) == 1
        assert f"holds its Z trace; this run ({asked}) would overwrite it" in capsys.readouterr().err
        np.testing.assert_array_equal(np.load(out / "s.npy"), first)
    # Another file of the same stem, in a run of its own: refused too.
    np.save(tmp_path / "s.npy", np.random.default_rng(0).standard_normal((24, 24)))
    assert main(["denoise", str(tmp_path / "s.npy"), "-o", str(out), *onnx]) == 1
    assert "s.npy exists and is not maed's output of this file" in capsys.readouterr().err
    # The same file and options again: a rerun, which replaces its own outputs.
    (out / "s.npy").write_bytes(b"stale")
    assert main(["denoise", str(tmp_path / "s.sxm"), "-o", str(out), *onnx]) == 0
    np.testing.assert_array_equal(np.load(out / "s.npy"), first)
    assert "s.sxm: replaced the outputs of an earlier run of the same file and model" in capsys.readouterr().err
    # A new scan saved under the old name: replaced, and said.
    write_sxm(
        tmp_path / "s.sxm", channels=(("Z", "m", "both"), ("Current", "A", "both")), rows=24, cols=24, extra_header=":REC_TEMP:\n4.2\n"
    )
    assert main(["denoise", str(tmp_path / "s.sxm"), "-o", str(out), *onnx]) == 0
    assert "replaced the outputs of an earlier run of other bytes: the file changed since" in capsys.readouterr().err
    assert json.loads((out / "s.json").read_text())["input_sha256"] == hashlib.sha256((tmp_path / "s.sxm").read_bytes()).hexdigest()
    first = np.load(out / "s.npy")
    # The same channel asked for by name (--channel Z, the signal of a topograph) is a rerun too, either way round.
    for option in (["--channel", "Z"], [], ["--channel", "z"]):
        (out / "s.npy").write_bytes(b"stale")
        assert main(["denoise", str(tmp_path / "s.sxm"), "-o", str(out), *option, *onnx]) == 0, capsys.readouterr().err
        np.testing.assert_array_equal(np.load(out / "s.npy"), first)


def test_an_array_file_is_refused_a_channel_or_a_retrace_it_does_not_hold(tmp_path, capsys):
    np.save(tmp_path / "a.npy", np.random.default_rng(1).standard_normal((24, 24)))
    for option, said in (
        (["--channel", "Current"], "no channels; --channel Current"),
        (["--pass", "retrace"], "no retrace; --pass retrace"),
    ):
        assert main(["denoise", str(tmp_path / "a.npy"), "-o", str(tmp_path / "o"), "--backend", "onnx", *option]) == 1
        assert f"a.npy: an array file holds one image and {said} applies to instrument files" in capsys.readouterr().err
    assert not (tmp_path / "o" / "a.npy").exists()


def test_an_output_folder_that_is_a_file_is_one_line_before_anything_is_read(tmp_path, capsys):
    np.save(tmp_path / "a.npy", np.zeros((24, 24)))
    (tmp_path / "taken").write_text("notes")
    for recursive in ([], ["-r"]):
        assert main(["denoise", str(tmp_path / "a.npy"), "-o", str(tmp_path / "taken" / "sub"), *recursive]) == 2
        assert (
            capsys.readouterr()
            .err.strip()
            .endswith(f"output folder {tmp_path / 'taken' / 'sub'}: {tmp_path / 'taken'} is a file, not a folder; give another -o")
        )
    assert (tmp_path / "taken").read_text() == "notes"


def test_a_folder_that_cannot_be_written_and_an_input_that_is_no_file_are_one_line(tmp_path, capsys):
    """Files cannot be made under /proc, even by root: a read-only output folder gave a traceback at the first output.
    A device (/dev/zero) or a FIFO was 'no such file'; the other inputs are still denoised."""
    write_sxm(tmp_path / "s.sxm", rows=24, cols=24)
    assert main(["denoise", str(tmp_path / "s.sxm"), "-o", "/proc/maed-no-such-folder"]) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if "error" in line]
    assert len(err) == 1 and "output folder /proc/maed-no-such-folder: cannot write there" in err[0]
    os.mkfifo(tmp_path / "fifo.sxm")
    assert main(["denoise", "/dev/zero", str(tmp_path / "fifo.sxm"), str(tmp_path / "s.sxm"), "-o", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "/dev/zero: not a regular file (a device, a FIFO or a socket)" in err
    assert "fifo.sxm: not a regular file" in err and (tmp_path / "o" / "s.npy").is_file()
    # Where every input failed, the output folder the run made is not left behind, empty.
    assert main(["denoise", "/dev/zero", "-o", str(tmp_path / "none")]) == 1
    assert not (tmp_path / "none").exists()


def test_a_frame_the_guard_did_not_trust_is_said_on_the_terminal(tmp_path, capsys):
    write_sxm(tmp_path / "s.sxm", rows=64, cols=64)
    denoise_files([tmp_path / "s.sxm"], tmp_path / "o", Inventing(), on_error=pytest.fail, on_note=print)
    said = capsys.readouterr().out
    record = json.loads((tmp_path / "o" / "s.json").read_text())
    assert record["trust"]["output"] == "fallback"
    assert "s.sxm: the trust guard did not publish the network's output over the whole frame" in said
    assert record["trust"]["reasons"][0] in said
    # In Gwyddion too the published frame is not called the model's.
    fields = gwyfile.util.get_datafields(gwyfile.load(str(tmp_path / "o" / "s.gwy")))
    assert "Z trace (conservative result: the guard did not trust rt)" in fields
    assert not any("denoised" in name for name in fields)


def test_a_model_file_that_is_no_checkpoint_is_one_line(tmp_path, capsys):
    np.save(tmp_path / "a.npy", np.zeros((24, 24)))
    (tmp_path / "noise.pt").write_bytes(np.random.default_rng(2).bytes(300))
    (tmp_path / "notes.pt").write_text("weights from the lab wiki")
    for name in ("noise.pt", "notes.pt"):
        model = tmp_path / name
        assert main(["denoise", str(tmp_path / "a.npy"), "-o", str(tmp_path / "o"), "--backend", "torch", "--model", str(model)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"maed: error: {model}: not a model checkpoint that maed can read (damaged, or not a file torch saved)"]
    (tmp_path / "weights.pt").mkdir()  # a folder where a file was meant (found by fuzzing: a traceback from torch)
    assert main(["denoise", str(tmp_path / "a.npy"), "-o", str(tmp_path / "o"), "--model", str(tmp_path / "weights.pt")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"maed: error: {tmp_path / 'weights.pt'}: a folder, not a model checkpoint"]


def test_more_threads_than_the_machine_can_run_are_refused(tmp_path, capsys):
    """Found by fuzzing: --threads 100000 took 3 GB and a minute, and denoised nothing."""
    np.save(tmp_path / "a.npy", np.zeros((24, 24)))
    assert main(["denoise", str(tmp_path / "a.npy"), "-o", str(tmp_path / "o"), "--threads", "100000"]) == 2
    most = 4 * (os.cpu_count() or 1)
    assert f"maed: error: threads must be 1 to {most} (4 per core of this machine), got 100000" in capsys.readouterr().err


def test_an_empty_file_is_said_to_be_empty(tmp_path, capsys):
    (tmp_path / "e.sxm").write_bytes(b"")
    assert main(["denoise", str(tmp_path / "e.sxm"), "-o", str(tmp_path / "o"), "--backend", "onnx"]) == 1
    assert f"maed: error: {tmp_path / 'e.sxm'}: empty file (0 bytes)" in capsys.readouterr().err


def test_an_array_beyond_float32_or_flat_is_refused_in_one_line(tmp_path, capsys):
    """Values beyond float32's range came back as NaN in every pixel, with exit status 0; an array of zeros was
    denoised, its guard's reasons nonsense (texture 1000 times the input's)."""
    np.save(tmp_path / "huge.npy", np.random.default_rng(0).standard_normal((32, 32)) * 1e300)
    np.save(tmp_path / "zeros.npy", np.zeros((32, 32)))
    np.save(tmp_path / "tiny.npy", np.random.default_rng(2).standard_normal((32, 32)) * 1e-320)  # came back all 0
    np.save(tmp_path / "fine.npy", np.random.default_rng(1).standard_normal((32, 32)) * 1e-11)
    paths = [str(tmp_path / name) for name in ("huge.npy", "zeros.npy", "tiny.npy", "fine.npy")]
    assert main(["denoise", *paths, "-o", str(tmp_path / "o"), "--backend", "onnx"]) == 1
    err = capsys.readouterr().err
    assert "huge.npy: values up to" in err and "beyond float32's range" in err
    assert "tiny.npy: values of at most" in err and "below float32's smallest normal number" in err
    assert "zeros.npy: flat (a plane, nothing to denoise)" in err and "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["fine.json", "fine.npy"]


def test_a_truncated_array_and_jobs_without_r_are_named(tmp_path, capsys):
    np.save(tmp_path / "whole.npy", np.zeros((64, 64)))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "whole.npy").read_bytes()[:1000])
    assert main(["denoise", str(tmp_path / "cut.npy"), "-o", str(tmp_path / "o")]) == 1
    assert "cut.npy: truncated: its header announces a 64 x 64 float64 array, 32768 bytes; 872 follow" in capsys.readouterr().err
    assert main(["denoise", str(tmp_path / "whole.npy"), "-o", str(tmp_path / "o"), "--jobs", "2"]) == 2
    assert "--jobs sets the worker processes of -r" in capsys.readouterr().err


def test_each_stage_of_a_file_is_told_in_order(tmp_path):
    """What ``maed denoise``'s bar shows beside the file at work: its stages as they start."""
    _pair_sxm(tmp_path / "scan.sxm", 8e-12)
    stages: list[str] = []
    denoise_file(tmp_path / "scan.sxm", tmp_path / "scan", Halve(), trace_retrace=True, on_stage=stages.append)
    assert stages == ["reading", "denoising", "writing", "trace/retrace error"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bar_keeps_moving_while_one_file_takes_long(monkeypatch):
    """A 3000 x 3000 scan takes a minute and more: the bar's elapsed time and the file's stage are redrawn meanwhile,
    with no file finished, so a user can tell work from a hang; nothing is drawn where the output is no terminal."""
    monkeypatch.setattr(progress, "TICK_S", 0.02)
    screen = _Terminal()
    with progress.FileProgress(1, file=screen) as bar:
        bar.stage("big.sxm", "denoising")
        drawn = screen.getvalue().count("big.sxm: denoising")
        time.sleep(0.3)
        assert screen.getvalue().count("big.sxm: denoising") >= drawn + 5
    assert "1/1" not in screen.getvalue()
    quiet = io.StringIO()
    with progress.FileProgress(1, file=quiet) as bar:
        bar.stage("big.sxm", "denoising")
        time.sleep(0.1)
        bar.done()
    assert quiet.getvalue() == ""


def test_the_record_says_whether_the_rows_were_aligned_before_the_network(tmp_path):
    """A scan whose line offsets dominate has its rows aligned, and its slow profile across the rows with them (a
    second reading saw a bow of 172 pm taken off a real scan whose record said nothing of it)."""
    rng = np.random.default_rng(5)
    clean = make_pair(11, 64).clean
    quiet = clean + rng.normal(0, 0.05 * np.std(clean), clean.shape)  # white noise alone
    offsets = quiet + np.cumsum(rng.normal(0, 5 * np.std(quiet), 64))[:, None]
    for name, scan in (("quiet", quiet), ("offsets", offsets)):
        np.save(tmp_path / f"{name}.npy", scan)
    assert main(["denoise", str(tmp_path / "quiet.npy"), str(tmp_path / "offsets.npy"), "-o", str(tmp_path / "out")]) == 0
    aligned = {name: json.loads((tmp_path / "out" / f"{name}.json").read_text())["rows_aligned"] for name in ("quiet", "offsets")}
    assert aligned == {"quiet": False, "offsets": True}


def test_trace_retrace_figures_are_said_without_a_bare_decimal_point():
    figures = {
        "unit": "A",
        "rows": 256,
        "slow_shift": 0.0,
        **{
            name: {"value": value, "low": value * 0.63, "high": value * 1.33}
            for name, value in (("model", 135e-12), ("classical", 134e-12), ("raw", 144e-12))
        },
    }
    said = trace_retrace_note(figures)
    assert "model 135 (85.1 to 180)" in said and "135." not in said and "180." not in said


def test_outputs_a_failure_left_half_replaced_are_never_taken_for_done(tmp_path, monkeypatch, capsys):
    """A rerun with another model that fails after replacing the .npy leaves a record that says so, not the earlier
    run's: the next run with the first model does the file again instead of skipping it as done, which had left the
    other model's .npy under the first model's record."""
    import maed.denoise_files as files

    scans = tmp_path / "in"
    scans.mkdir()
    noisy = make_pair(7, 64).noisy
    write_sxm(scans / "s.sxm", channels=(("Z", "m", "forward"),), rows=64, cols=64, planes=[noisy])
    out = tmp_path / "out"
    assert main(["denoise", "-r", str(scans), "-o", str(out)]) == 0
    first = np.load(out / "s.sxm.npy")
    real_write_gwy = files.write_gwy

    def failing(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(out / "s.sxm.gwy"))

    monkeypatch.setattr(files, "write_gwy", failing)
    assert main(["denoise", "-r", str(scans), "-o", str(out), "--model", "rt"]) == 1
    err = capsys.readouterr().err
    assert "cannot write" in err and "Traceback" not in err and "PermissionError" not in err
    assert not np.array_equal(np.load(out / "s.sxm.npy"), first)  # rt's output replaced it before the failure
    assert json.loads((out / "s.sxm.json").read_text())["incomplete"] is True
    monkeypatch.setattr(files, "write_gwy", real_write_gwy)
    assert main(["denoise", "-r", str(scans), "-o", str(out)]) == 0
    record = json.loads((out / "s.sxm.json").read_text())
    assert record["model"] == PRODUCT and "incomplete" not in record
    np.testing.assert_array_equal(np.load(out / "s.sxm.npy"), first)


def test_heights_taken_off_are_said_in_the_file_s_unit_and_an_array_s_as_they_are():
    record = {
        "channel": "Z",
        "channel_why": None,
        "trust": {"output": "network"},
        "lattice": {},
        "features": {"spike_pixels": 0},
        "z_creep": {"taken_off": True, "from_row": "first", "amplitude": -4.164e-10, "tau_rows": 12.0},
        "line_jumps": [{"rows_moved": (10, 40), "height": 2.5e-11, "both_passes": True}],
        "unit": "m",
    }
    said = " ".join(record_notes(Path("s.sxm"), record, "trace"))
    assert "-416 pm there, relaxing over 12 rows" in said and "moved by -25 pm." in said
    said = " ".join(record_notes(Path("s.npy"), record | {"unit": None}, "trace"))
    assert "-4.164e-10 (the scan's unit) there" in said and "-2.5e-11 (the scan's unit)." in said


def test_a_scan_the_bridge_saved_is_denoised_as_one_scan_of_two_passes(tmp_path, capsys):
    from maed.bridge.store import save_scan

    onnx = ["--backend", "onnx", "--threads", "1"]
    saved = []
    for i in range(2):
        pair = make_pair(40 + i, 64, both_passes=True)
        start = {"channel": "Z", "unit": "m", "range": [2e-8, 2e-8], "slow_axis": "down"}
        arrays = {"raw_trace": pair.noisy, "raw_retrace": pair.retrace, "denoised": pair.noisy}  # as the bridge writes them
        saved.append(save_scan(tmp_path / "scans", f"scan-{i}", arrays, {"start": start, "complete": True}))
    # One folder, without -r: one scan, both passes read (the trace/retrace error needs the retrace), its range kept.
    out = tmp_path / "one"
    assert main(["denoise", str(saved[0]), "-o", str(out), "--trace-retrace", *onnx]) == 0, capsys.readouterr().err
    record = json.loads((out / f"{saved[0].name}.json").read_text())
    assert record["channel"] == "Z" and record["unit"] == "m" and record["trace_retrace"]["rows"] > 0
    assert (out / f"{saved[0].name}.gwy").is_file()
    assert main(["denoise", str(saved[0]), "-o", str(tmp_path / "both"), "--pass", "both", *onnx]) == 0
    # A tree of saved scans with -r: one output per scan, not one per array inside them.
    assert main(["denoise", "-r", str(tmp_path / "scans"), "-o", str(tmp_path / "tree"), *onnx]) == 0
    assert sorted(p.name for p in (tmp_path / "tree").glob("*.npy")) == [f"{s.name}.npy" for s in saved]
    assert read_file(saved[0]).channel(None).scan_range == (2e-8, 2e-8)  # the range the bridge saved, in the .gwy too
    # What was read names the input: the passes and meta.json, not what else lies in the folder.
    capsys.readouterr()
    np.save(saved[1] / "denoised.npy", np.ones((64, 64), np.float32))
    assert main(["denoise", str(saved[1]), "-o", str(tmp_path / "tree"), *onnx]) == 0
    assert "replaced the outputs of an earlier run of the same file and model" in capsys.readouterr().err
    np.save(saved[1] / "raw_retrace.npy", np.load(saved[1] / "raw_retrace.npy")[::-1])
    assert main(["denoise", str(saved[1]), "-o", str(tmp_path / "tree"), *onnx]) == 0
    assert "replaced the outputs of an earlier run of other bytes" in capsys.readouterr().err
    # A scan id with a dot is the folder's whole name: two such scans are two outputs, with or without -r.
    dotted = [save_scan(tmp_path / "dots", f"run.{i}", arrays, {"start": start}) for i in (1, 2)]
    assert main(["denoise", *map(str, dotted), "-o", str(tmp_path / "dotted"), *onnx]) == 0, capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "dotted").glob("*.npy")) == sorted(f"{d.name}.npy" for d in dotted)
    # A pass that cannot be read is one line, not a traceback.
    (dotted[0] / "raw_trace.npy").write_bytes(b"")
    assert main(["denoise", str(dotted[0]), "-o", str(tmp_path / "dotted"), *onnx]) == 1
    assert "raw_trace.npy: not a saved pass" in capsys.readouterr().err
