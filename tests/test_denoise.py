"""``maed denoise``: tiling, units and shape round trip, bad inputs, and the shipped model's quality."""

import numpy as np
import pytest
import tifffile
from PIL import Image
from scanfile_helpers import REAL_DIR, needs_real
from scipy import ndimage

from maed.cli import main
from maed.data import evaluation_set, make_pair
from maed.denoise import PLANE_TILE, denoise_array, run_network, run_padded, run_tiled
from maed.engine import load_backend
from maed.metrics import psnr
from maed.model.checkpoint import shipped_weights
from maed.normalise import normalise
from maed.scanfiles import read_channel
from maed.zoo import BASELINE_NAMES, PRODUCT


class BlurBackend:
    """A local 5x5 mean filter: a known receptive field to check the tiling arithmetic against."""

    name = "blur"
    model = "blur"
    size_multiple = 16

    def denoise(self, batch: np.ndarray) -> np.ndarray:
        assert batch.shape[-2] % 16 == 0 and batch.shape[-1] % 16 == 0
        return ndimage.uniform_filter(batch, size=(1, 1, 5, 5), mode="reflect")


def test_tiles_blend_into_the_full_frame_result():
    x = np.random.default_rng(0).standard_normal((300, 520)).astype(np.float32)
    whole = run_padded(x, BlurBackend())
    tiled = run_tiled(x, BlurBackend(), tile=128, overlap=32)
    assert tiled.shape == x.shape
    # Away from the scan border, a local filter through overlapping tiles equals one pass.
    np.testing.assert_allclose(tiled[4:-4, 4:-4], whole[4:-4, 4:-4], atol=1e-5)


def test_odd_sizes_are_padded_and_cropped():
    x = np.random.default_rng(1).standard_normal((37, 61)).astype(np.float32)
    out = run_padded(x, BlurBackend())
    assert out.shape == (37, 61)
    np.testing.assert_allclose(out[5:-5, 5:-5], ndimage.uniform_filter(x, 5)[5:-5, 5:-5], atol=1e-5)


@pytest.fixture(scope="module")
def untrained(tmp_path_factory) -> str:
    """A real checkpoint of an untrained rt model (the identity, as its head starts at zero)."""
    from maed.model import build_model
    from maed.model.checkpoint import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "untrained.pt"
    save_checkpoint(path, build_model("rt"), "rt")
    return str(path)


def test_cli_round_trip_keeps_shape_and_units(tmp_path, untrained):
    scan = make_pair(5, 96).noisy[:, :80]  # metres, not square, not a multiple of 16
    np.save(tmp_path / "scan.npy", scan)
    assert main(["denoise", str(tmp_path / "scan.npy"), "-o", str(tmp_path / "out"), "--model", untrained]) == 0
    out = np.load(tmp_path / "out" / "scan.npy")
    assert out.dtype == np.float32 and out.shape == scan.shape
    # Still metres and still where the scan was: the plane is restored, only row offsets go.
    assert abs(np.median(out) - np.median(scan)) < 0.1 * np.ptp(scan)
    assert 0.5 < np.ptp(out) / np.ptp(scan) < 2.0


def test_png_and_tif_inputs(tmp_path, untrained):
    grey = (np.random.default_rng(2).random((40, 48)) * 255).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "a.png")
    tifffile.imwrite(tmp_path / "b.tif", grey.astype(np.float32) * 1e-11)
    assert main(["denoise", str(tmp_path / "a.png"), str(tmp_path / "b.tif"), "-o", str(tmp_path / "o"), "--model", untrained]) == 0
    assert np.load(tmp_path / "o" / "a.npy").shape == (40, 48)
    b = np.load(tmp_path / "o" / "b.npy")
    assert b.shape == (40, 48) and np.ptp(b) < 1e-8  # metres in, metres out


BAD_INPUTS = {
    "empty.npy": (np.zeros((0, 5)), "empty"),
    "line.npy": (np.zeros(64), "2-D"),
    "cube.npy": (np.zeros((4, 32, 32)), "2-D"),
    "holes.npy": (np.where(np.eye(32) > 0, np.nan, 1.0), "non-finite"),
    "text.npy": (np.array([["a"] * 16] * 16), "data type"),
}


def test_each_bad_input_is_one_line_and_the_rest_still_processed(tmp_path, capsys, untrained):
    for name, (array, _) in BAD_INPUTS.items():
        np.save(tmp_path / name, array)
    (tmp_path / "junk.npy").write_bytes(b"not numpy at all")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    (tmp_path / "scan.xyz").write_text("1 2 3")
    Image.fromarray(np.zeros((20, 20, 3), np.uint8) + np.array([255, 0, 0], np.uint8)).save(tmp_path / "colour.png")
    np.save(tmp_path / "good.npy", make_pair(1, 64).noisy)
    names = [*BAD_INPUTS, "junk.npy", "objects.npy", "scan.xyz", "colour.png", "missing.npy", "good.npy"]
    code = main(["denoise", *(str(tmp_path / n) for n in names), "-o", str(tmp_path / "out"), "--model", untrained])
    err = capsys.readouterr().err.strip().splitlines()[1:]  # first line says which back end runs
    assert code == 1
    assert len(err) == len(names) - 1  # one line per bad file, no traceback
    for line, name in zip(err, names):
        assert line.startswith("maed: error: ") and name in line
    for line, (name, (_, word)) in zip(err, BAD_INPUTS.items()):
        assert word in line
    assert "not a NumPy .npy array" in err[5] and "Python objects" in err[6]
    assert "allow_pickle" not in err[5] + err[6]  # NumPy's own advice would be to unpickle
    assert "unsupported" in err[7] and "colour" in err[8] and "no such file" in err[9]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.json", "good.npy"]


def test_a_stopped_scan_saved_with_rows_of_nan_is_denoised_as_the_rows_it_measured(tmp_path, untrained):
    # The bridge saves a scan stopped early (or with lines lost) at its full size, NaN where never scanned.
    scan = make_pair(3, 64).noisy
    stopped = np.vstack([scan[:40], np.full((24, 64), np.nan)])
    np.save(tmp_path / "raw_trace.npy", stopped)
    np.save(tmp_path / "measured.npy", scan[:40])
    assert (
        main(["denoise", str(tmp_path / "raw_trace.npy"), str(tmp_path / "measured.npy"), "-o", str(tmp_path / "o"), "--model", untrained])
        == 0
    )
    out = np.load(tmp_path / "o" / "raw_trace.npy")
    assert out.shape == (64, 64) and np.isnan(out[40:]).all()
    np.testing.assert_array_equal(out[:40], np.load(tmp_path / "o" / "measured.npy"))


def test_raw_input_is_never_overwritten(tmp_path, capsys, untrained):
    scan = make_pair(2, 32).noisy
    np.save(tmp_path / "scan.npy", scan)
    assert main(["denoise", str(tmp_path / "scan.npy"), "-o", str(tmp_path), "--model", untrained]) == 1
    np.testing.assert_array_equal(np.load(tmp_path / "scan.npy"), scan)
    assert "overwrite" in capsys.readouterr().err


def test_an_output_never_overwrites_another_input(tmp_path, capsys, untrained):
    # scan.png's output scan.npy would land on the raw scan.npy beside it: refused, raw kept, and the
    # refusal comes before anything is written.
    scan = make_pair(2, 32).noisy
    np.save(tmp_path / "scan.npy", scan)
    Image.fromarray((np.random.default_rng(0).random((32, 32)) * 255).astype(np.uint8)).save(tmp_path / "scan.png")
    code = main(["denoise", str(tmp_path / "scan.npy"), str(tmp_path / "scan.png"), "-o", str(tmp_path), "--model", untrained])
    assert code == 1
    np.testing.assert_array_equal(np.load(tmp_path / "scan.npy"), scan)
    err = capsys.readouterr().err.strip().splitlines()
    assert sum("would overwrite an input" in line for line in err) == 2
    assert not (tmp_path / "scan.json").exists()


def test_a_file_given_twice_is_denoised_once_and_said(tmp_path, capsys, untrained):
    """Its second run said it replaced the outputs of an earlier run, the same run's."""
    np.save(tmp_path / "s.npy", make_pair(3, 32).noisy)
    assert main(["denoise", str(tmp_path / "s.npy"), str(tmp_path / "s.npy"), "-o", str(tmp_path / "out"), "--model", untrained]) == 0
    captured = capsys.readouterr()
    assert captured.out.split() == [str(tmp_path / "out" / "s.npy"), str(tmp_path / "out" / "s.json")]
    assert "1 file(s) given more than once: each denoised once" in captured.err and "replaced" not in captured.err


def test_two_inputs_never_write_one_output(tmp_path, capsys, untrained):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        np.save(tmp_path / folder / "s.npy", make_pair(3, 32).noisy)
    np.save(tmp_path / "a" / "t.npy", make_pair(4, 32).noisy)
    inputs = [str(tmp_path / "a" / "s.npy"), str(tmp_path / "b" / "s.npy"), str(tmp_path / "a" / "t.npy")]
    assert main(["denoise", *inputs, "-o", str(tmp_path / "out"), "--model", untrained]) == 1
    err = capsys.readouterr().err
    assert err.count("would write the same s.npy") == 2
    # Neither s is written (no output silently replaces the other); t, which clashes with nothing, is.
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["t.json", "t.npy"]


def test_an_image_declaring_a_huge_size_is_refused_before_decoding(tmp_path, capsys, untrained):
    Image.new("1", (12000, 12000)).save(tmp_path / "bomb.png")  # a few kB declaring 144 Mpx
    np.save(tmp_path / "good.npy", make_pair(1, 32).noisy)
    assert (tmp_path / "bomb.png").stat().st_size < 100_000
    code = main(["denoise", str(tmp_path / "bomb.png"), str(tmp_path / "good.npy"), "-o", str(tmp_path / "o"), "--model", untrained])
    err = capsys.readouterr().err
    assert code == 1 and "bomb.png: the header declares 12000x12000 pixels, over the budget" in err
    assert (tmp_path / "o" / "good.npy").exists()


def test_unknown_model_is_a_one_line_error(tmp_path, capsys):
    np.save(tmp_path / "s.npy", np.zeros((16, 16)))
    assert main(["denoise", str(tmp_path / "s.npy"), "-o", str(tmp_path / "o"), "--model", "nonesuch"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("maed: error: no shipped weights for model 'nonesuch'; the shipped models: ")
    assert "rt-plane" in err and len(err.splitlines()) == 1


needs_weights = pytest.mark.skipif(not shipped_weights("rt").exists(), reason="shipped rt weights not trained yet")


@needs_weights
def test_shipped_model_denoises_unseen_scans():
    backend = load_backend("torch", "rt")
    pairs = evaluation_set(6, 128)
    gain = [psnr(denoise_array(p.noisy, backend), p.clean) - psnr(p.noisy, p.clean) for p in pairs]
    # Much better on average, and never worse than the raw scan, even where the noise wins.
    assert np.mean(gain) > 8.0 and min(gain) > -0.5, gain


@needs_weights
def test_large_scan_tiled_matches_one_pass():
    # A scan larger than the default tile: tiles agree with one pass to a small share of what is removed.
    backend = load_backend("onnx", "rt")
    x, _ = normalise(make_pair(3, 640).noisy)
    one = run_padded(x, backend)
    tiled = run_tiled(x, backend)
    assert (tiled - one).std() < 0.05 * (x - one).std()


@needs_weights
@needs_real
def test_tiling_does_not_change_the_answer_on_a_real_scan():
    # A streaky real 512 x 512 scan: 256-pixel tiles (with the default overlap) against one whole-frame
    # pass differ by less than a tenth of what the network removes.
    backend = load_backend("onnx", "rt")
    x, _ = normalise(read_channel(REAL_DIR / "createc_scan_atomic_11nm.dat").data)
    whole = run_padded(x, backend)
    tiled = run_tiled(x, backend, tile=256)
    assert x.shape == (512, 512)
    assert (tiled - whole).std() < 0.1 * (x - whole).std()


class LevelPerCall(BlurBackend):
    """A local filter whose output sits at a level of its own on every call, as a network that takes line
    offsets out itself may set them differently on each tile."""

    def __init__(self):
        self.rng = np.random.default_rng(0)

    def denoise(self, batch):
        return super().denoise(batch) + self.rng.normal(0, 5.0)


def test_tiles_of_their_own_plane_meet_without_seams():
    x = np.random.default_rng(1).standard_normal((300, 400)).astype(np.float32)
    whole = run_padded(x, BlurBackend())
    tiled = run_tiled(x, LevelPerCall(), tile=128, overlap=32, own_plane=True)
    # One level for the whole scan, as one pass gives: no tile stands out as a block.
    assert (tiled - whole)[4:-4, 4:-4].std() < 0.05 * (x - whole).std()


@needs_weights
@needs_real
def test_where_the_product_tiles_fall_does_not_change_the_answer_on_a_real_scan():
    """The product's network runs on 144-pixel tiles of their own plane: moving the tile grid by 40 pixels
    (the scan cropped) changes the output, line offsets aside, by less than a tenth of what it removes."""
    backend = load_backend("onnx", PRODUCT)
    x, norm = normalise(read_channel(REAL_DIR / "createc_scan_molecular_30nm_pos.dat").data, backend.levelling)
    assert x.shape == (512, 512) and not norm.rows_aligned
    y = run_network(x, norm, backend)
    shifted = run_network(x[40:, 40:], norm, backend)
    diff = y[40:, 40:] - shifted
    diff -= np.median(diff, axis=1, keepdims=True)  # each row's level is the line offsets' convention
    assert diff.std() < 0.1 * (x - y).std()


@needs_weights
def test_rt_plane_leaves_a_quiet_scan_nearly_as_it_is():
    """On surfaces under faint white noise only, the row alignment before ``rt`` draws bands and shifts rows
    (below the raw scan); ``rt-plane``, which takes line offsets out itself, keeps closer to the surface."""
    plane, rows = load_backend("onnx", "rt-plane"), load_backend("onnx", "rt")
    assert plane.levelling == "plane" and rows.levelling == "plane+rows"
    rng = np.random.default_rng(0)
    gains = []
    for k in range(6):
        clean = make_pair(5_000_000 + k, 128).clean
        noisy = clean + rng.normal(0, 0.05 * clean.std(), clean.shape)
        gains.append(psnr(denoise_array(noisy, plane), clean) - psnr(denoise_array(noisy, rows), clean))
    assert np.mean(gains) > 2.0, gains


@pytest.mark.parametrize("name", ["maed", "rt-plane", *BASELINE_NAMES])
def test_every_shipped_model_denoises_from_the_command_line(tmp_path, name):
    pair = evaluation_set(1, 96)[0]  # test-set seeds: never trained on
    np.save(tmp_path / "scan.npy", pair.noisy)
    assert main(["denoise", str(tmp_path / "scan.npy"), "-o", str(tmp_path / "out"), "--model", name]) == 0
    out = np.load(tmp_path / "out" / "scan.npy")
    assert out.shape == pair.noisy.shape
    # Trained weights, not an identity or a random network: clearly closer to the clean surface.
    assert psnr(out, pair.clean) > psnr(pair.noisy, pair.clean) + 2.0


class PlaneTiles(BlurBackend):
    """A plane-levelled back end that records the size and the residual tilt of each input."""

    levelling = "plane"

    def __init__(self):
        self.inputs = []

    def denoise(self, batch):
        for x in batch[:, 0].astype(np.float64):
            r, c = np.indices(x.shape)
            design = np.column_stack([np.ones(x.size), r.ravel(), c.ravel()])
            coeffs, *_ = np.linalg.lstsq(design, x.ravel(), rcond=None)
            self.inputs.append((x.shape, float(np.hypot(*coeffs[1:]) * max(x.shape))))
        return super().denoise(batch)


def test_a_plane_levelled_network_sees_tiles_near_its_training_size_each_without_a_plane():
    r, c = np.indices((300, 260))
    scan = 1e-10 * np.sin(c / 4.0) * np.cos(r / 7.0) + 1e-12 * (r - c) ** 2 / 50  # a bowl: tilted locally
    scan += np.random.default_rng(0).normal(0, 1e-11, scan.shape)
    backend = PlaneTiles()
    out = denoise_array(scan, backend)
    assert out.shape == scan.shape and len(backend.inputs) > 4
    assert all(shape[0] <= PLANE_TILE and shape[1] <= PLANE_TILE for shape, _ in backend.inputs)
    # Padding to the size multiple adds a little; the bowl's local tilt (several times the relief) is gone.
    assert max(tilt for _, tilt in backend.inputs) < 0.1


class BatchingBlur(BlurBackend):
    """A back end that takes ``max_batch`` tiles a call and records each call's batch."""

    def __init__(self, max_batch: int, levelling: str):
        self.max_batch, self.levelling, self.batches = max_batch, levelling, []

    def denoise(self, batch):
        self.batches.append(len(batch))
        return super().denoise(batch)


@pytest.mark.parametrize("levelling, largest", [("plane", 4), ("plane+rows", 1)])
def test_tiles_go_to_the_back_end_in_batches_of_its_size_with_the_same_result(levelling, largest):
    """144-pixel tiles (rows not aligned) go four at a time to a back end that takes four; 512-pixel tiles (rows
    aligned) one at a time whatever it takes, so memory stays that of one tile."""
    r, c = np.indices((700, 600))
    scan = np.sin(c / 5.0) * np.cos(r / 9.0) + 0.01 * (r - c) + np.random.default_rng(1).normal(0, 0.3, r.shape)
    one, four = BatchingBlur(1, levelling), BatchingBlur(4, levelling)
    np.testing.assert_allclose(denoise_array(scan, four), denoise_array(scan, one), rtol=0, atol=1e-6)
    assert set(one.batches) == {1} and sum(four.batches) == len(one.batches) > 1
    assert max(four.batches) == largest
