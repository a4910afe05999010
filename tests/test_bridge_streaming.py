"""The streaming denoiser: band updates match a full-frame pass, cost stays bounded, levelling is causal."""

import numpy as np
import pytest
from scipy import ndimage

from maed.bridge.streaming import StreamingDenoiser, fill_skipped, freeze_rows, judge
from maed.data import make_pair
from maed.denoise import denoise_array, denoise_guarded
from maed.normalise import normalise


class BlurBackend:
    """A 5x5 mean filter: a known, local receptive field (radius 2), recording the band heights it sees."""

    name = model = "blur"
    size_multiple = 16

    def __init__(self):
        self.heights = []

    def denoise(self, batch):
        assert batch.shape[-2] % 16 == 0 and batch.shape[-1] % 16 == 0
        self.heights.append(batch.shape[-2])
        return ndimage.uniform_filter(batch, size=(1, 1, 5, 5), mode="reflect")


def stream(raw, slow_axis, chunks, halo=4, refine=4, backend=None, skip=()):
    """Feed ``raw`` (frame orientation) to a streaming denoiser in acquisition order, ``chunks`` rows at a time."""
    rows, cols = raw.shape
    backend = backend or BlurBackend()
    s = StreamingDenoiser(rows, cols, slow_axis, halo, refine)
    frame = np.full_like(raw, np.nan)
    order = list(range(rows)) if slow_axis == "down" else list(range(rows - 1, -1, -1))
    n, k = 0, 0
    while n < rows:
        step = chunks[k % len(chunks)]
        for r in order[n : n + step]:
            if r not in skip:
                frame[r] = raw[r]
        n = min(rows, n + step)
        out = s.update(frame, n, backend)
        k += 1
    return s, out.copy(), frame


def residual_after_plane(a, b):
    d = (a - b).astype(np.float64)
    r, c = np.indices(d.shape)
    design = np.column_stack([np.ones(d.size), r.ravel(), c.ravel()])
    coeffs, *_ = np.linalg.lstsq(design, d.ravel(), rcond=None)
    return np.abs(d.ravel() - design @ coeffs).max()


@pytest.mark.parametrize("slow_axis", ["down", "up"])
@pytest.mark.parametrize("chunks", [[1], [3, 1, 7], [40]])
def test_bands_match_the_full_frame_pass_for_a_local_filter(slow_axis, chunks):
    raw = make_pair(11, 96).noisy.astype(np.float32)
    _, live, _ = stream(raw, slow_axis, chunks)
    acq = raw if slow_axis == "down" else raw[::-1]
    full = denoise_array(acq, BlurBackend())
    full = full if slow_axis == "down" else full[::-1]
    # Halo and refine (4) exceed the filter's radius (2), so away from the frame's borders (where
    # the filter's own edge mode differs from the band's padding) the bands reproduce one pass
    # exactly, up to the plane fitted on the first rows only.
    # (float32 heights carry a 30 nm offset here, so their resolution is ~1e-3 of the relief.)
    assert residual_after_plane(live[2:-2, 2:-2], full[2:-2, 2:-2]) < 1e-3 * np.ptp(full)


def test_update_cost_does_not_grow_with_frame_height():
    for rows in (128, 1024):
        raw = np.random.default_rng(rows).standard_normal((rows, 64)).astype(np.float32)
        backend = BlurBackend()
        s, _, _ = stream(raw, "down", [2], halo=32, refine=16, backend=backend)
        # Once the plane is frozen, a band is halo + refine + 2 new rows, padded to 16.
        assert max(backend.heights[s.freeze_rows // 2 + 1 :]) <= 64


def test_rows_are_not_touched_after_they_left_the_refine_zone():
    raw = make_pair(4, 128).noisy.astype(np.float32)
    rows = raw.shape[0]
    s = StreamingDenoiser(rows, 128, "down", halo=8, refine=8)
    frame = np.full_like(raw, np.nan)
    snapshots = []
    for n in range(4, rows + 1, 4):
        frame[n - 4 : n] = raw[n - 4 : n]
        snapshots.append((n, s.update(frame, n, BlurBackend()).copy()))
    for (n, before), (_, after) in zip(snapshots, snapshots[1:]):
        if n >= freeze_rows(rows):
            # Frozen plane: only the last `refine` rows of the previous update may change.
            np.testing.assert_array_equal(before[: n - 8], after[: n - 8])
        assert np.isnan(before[n:]).all() and np.isfinite(before[:n]).all()


def test_skipped_rows_stay_nan_and_do_not_break_the_band():
    raw = make_pair(5, 64).noisy.astype(np.float32)
    _, live, frame = stream(raw, "down", [3], skip={0, 10, 11, 40})
    assert np.isnan(live[[0, 10, 11, 40]]).all()
    assert np.isfinite(np.delete(live, [0, 10, 11, 40], axis=0)).all()


def test_final_pass_is_maed_denoise_in_acquisition_order():
    raw = make_pair(6, 80).noisy.astype(np.float32)
    s, _, frame = stream(raw, "up", [5])
    final = s.final(frame, 80, BlurBackend())
    expected = denoise_guarded(raw[::-1], BlurBackend())
    np.testing.assert_array_equal(final, expected.data[::-1])
    assert s.trust == {**expected.verdict.as_dict(), "rows_done": 80, "rows_judged": 80}


def test_final_pass_of_an_incomplete_scan_covers_only_scanned_rows():
    raw = make_pair(7, 64).noisy.astype(np.float32)
    frame = np.full_like(raw, np.nan)
    frame[:30] = raw[:30]
    frame[12] = np.nan
    final = StreamingDenoiser(64, 64, "down").final(frame, 30, BlurBackend())
    assert np.isfinite(np.delete(final[:30], 12, axis=0)).all()
    assert np.isnan(final[12]).all() and np.isnan(final[30:]).all()


def test_fill_skipped_takes_the_row_before():
    a = np.array([[np.nan], [1.0], [np.nan], [np.nan], [4.0]])
    np.testing.assert_array_equal(fill_skipped(a)[:, 0], [1.0, 1.0, 1.0, 1.0, 4.0])


class InventingBackend:
    """Answers every input with itself plus a pattern: what a network may say about an all-zero band."""

    name = model = "inventing"
    size_multiple = 16

    def denoise(self, batch):
        return batch + 0.27 * np.sin(np.arange(batch.shape[-1]) / 3.0)


def test_a_flat_scan_streams_back_flat():
    flat = np.zeros((64, 48))  # a channel that reads exactly zero (e.g. an unconnected input): levels to exact zeros
    _, out, _ = stream(flat, "down", [16], backend=InventingBackend())
    np.testing.assert_array_equal(out, flat)


class BandsBackend(BlurBackend):
    """The 5x5 mean plus horizontal bands of period 7 rows: a pattern the surface lacks."""

    def denoise(self, batch):
        rows = np.arange(batch.shape[-2], dtype=np.float32)[:, None]
        return super().denoise(batch) + 0.8 * np.cos(2 * np.pi * rows / 7.0)


def banding(image):
    """How much the row means jump from row to row: bands (in phase with each band's first row) show here."""
    return float(np.std(np.diff(np.nanmean(image, axis=1))))


@pytest.mark.parametrize("slow_axis", ["down", "up"])
def test_the_live_guard_publishes_the_fallback_over_the_rows_it_judged(slow_axis):
    raw = make_pair(12, 96).noisy.astype(np.float32)
    order = np.arange(96) if slow_axis == "down" else np.arange(96)[::-1]  # acquisition order
    s = StreamingDenoiser(96, 96, slow_axis, 8, 8)
    frame = np.full_like(raw, np.nan)
    for n in range(8, 65, 8):
        frame[order[n - 8 : n]] = raw[order[n - 8 : n]]
        s.update(frame, n, BandsBackend())
    assert s.trust is None  # no verdict until the guard runs: the network's bands are published
    np.testing.assert_array_equal(s.denoised, s.network)
    banded = banding(s.network[order[:64]])

    verdict = s.guard()
    assert verdict.output == "fallback" and verdict.reasons
    assert s.trust["output"] == "fallback" and s.trust["rows_done"] == 64
    assert {"whiteness_x", "whiteness_y", "structure", "peaks_kept", "peaks_invented"} <= set(s.trust["figures"])
    assert s.changed == ((0, 64) if slow_axis == "down" else (32, 96))  # every judged row is published again
    assert banding(s.denoised[order[:64]]) < 0.2 * banded

    # Rows scanned after the verdict are the network's until the next one; the judged rows stay guarded.
    frame[order[64:80]] = raw[order[64:80]]
    s.update(frame, 80, BandsBackend())
    np.testing.assert_array_equal(s.denoised[order[64:80]], s.network[order[64:80]])
    assert banding(s.denoised[order[:64]]) < 0.2 * banded and s.trust["rows_done"] == 64
    assert np.isnan(s.denoised[order[80:]]).all()


@pytest.mark.parametrize("slow_axis", ["down", "up"])
def test_the_live_guard_judges_the_latest_rows_and_older_rows_keep_their_verdict(slow_axis):
    """An evaluation's cost must not grow with the frame's height: past ``guard_window`` rows the guard judges
    only the latest, and the rows above keep what the verdict that covered them published."""
    raw = make_pair(12, 160).noisy.astype(np.float32)
    order = np.arange(160) if slow_axis == "down" else np.arange(160)[::-1]
    s = StreamingDenoiser(160, 96, slow_axis, 8, 8, guard_window=64)
    frame = np.full((160, 96), np.nan, dtype=np.float32)

    def scan_to(n):
        frame[order[:n]] = raw[order[:n], :96]
        s.update(frame, n, BandsBackend())

    scan_to(64)
    s.guard()
    banded = banding(s.network[order[:64]])
    guarded_before = s.denoised[order[:64]].copy()
    assert banding(guarded_before) < 0.2 * banded
    scan_to(160)
    job = s.guard_job()
    assert (job.start, job.rows, len(job.x)) == (96, 160, 64)  # the window, not the 160 rows
    s.apply(judge(job))
    assert s.trust["rows_done"] == 160 and s.trust["rows_judged"] == 64 and s.trust["output"] == "fallback"
    assert s.changed == ((56, 160) if slow_axis == "down" else (0, 104))  # the last band's 56.. and the window's 96..
    assert banding(s.denoised[order[96:]]) < 0.2 * banding(s.network[order[96:]])
    np.testing.assert_array_equal(s.denoised[order[:56]], guarded_before[:56])  # above the refine zone: as judged
    assert banding(s.denoised[order[64:96]]) > 0.5 * banding(s.network[order[64:96]])  # never judged: the network's


def test_the_guard_window_covers_the_rows_a_refit_denoises_again():
    s = StreamingDenoiser(2048, 64, "down", guard_window=64)
    assert s.guard_window == freeze_rows(2048) == 256
    with pytest.raises(ValueError, match="guard window"):
        StreamingDenoiser(256, 64, "down", guard_window=8)


def test_rows_a_refit_denoises_again_beyond_the_window_lose_their_old_verdict():
    """A burst of rows refits the levelling and denoises every row again: a verdict on their old output must not
    stay on the new one where the next evaluation will not judge them."""
    raw = make_pair(12, 512).noisy.astype(np.float32)[:, :96]
    s = StreamingDenoiser(512, 96, "down", 8, 8, guard_window=64)
    frame = np.full_like(raw, np.nan)
    frame[:40] = raw[:40]
    s.update(frame, 40, BandsBackend())
    s.guard()
    assert s._weight[:40].any()  # the bands fell back
    frame[:200] = raw[:200]
    s.update(frame, 200, BandsBackend())  # past the freeze (64 rows): one refit, every row denoised again
    np.testing.assert_array_equal(s.denoised[:136], s.network[:136])
    assert s.guard_job().start == 136


def test_a_trusted_verdict_publishes_the_network_output():
    raw = make_pair(13, 64).noisy.astype(np.float32)

    class Identity(BlurBackend):
        """Returns its input: removes nothing, so there is nothing to distrust."""

        def denoise(self, batch):
            return batch

    s, _, _ = stream(raw, "down", [16], backend=Identity())
    verdict = s.guard()
    assert verdict.output == "network" and not verdict.reasons and s.trust["rows_done"] == 64
    np.testing.assert_array_equal(s.denoised, s.network)
    assert s.changed == (44, 64)  # nothing published changed beyond the last band (16 new rows, 4 refined)


def test_the_live_guard_gives_back_a_2d_lattice_the_network_erased():
    """The preview's FFT shows the lattice again once the guard has run, as the final frame will."""
    from test_lattice_keep import EraserBackend, _passes, _peaks_of

    from maed.noreference import peak_power

    trace, _, lattice, _ = _passes(7)
    eraser = EraserBackend()
    eraser.size_multiple = 16
    s, _, _ = stream(trace.astype(np.float32), "down", [32], backend=eraser)
    x, norm = normalise(trace)
    kept = lambda frame: peak_power(x, (frame - norm.plane - norm.centre) / norm.scale, _peaks_of(lattice))["kept"]  # noqa: E731
    assert kept(s.network) < 0.1
    s.guard()
    assert 0.8 <= kept(s.denoised) <= 1.2
    assert s.changed == (0, 128)  # the lattice changed every judged row: all are published again


class PlaneInputs(BlurBackend):
    """A plane-levelled back end that records the best-fit plane's slope across rows in each input."""

    levelling = "plane"

    def __init__(self):
        super().__init__()
        self.row_slopes = []

    def denoise(self, batch):
        x = batch[0, 0].astype(np.float64)
        self.row_slopes.append(abs(np.polyfit(np.arange(len(x)), x.mean(axis=1), 1)[0]) * len(x) / (x.std() or 1.0))
        return super().denoise(batch)


def _walk(step_m, rows=128, cols=64, seed=3):
    """A tilted surface under a random walk of line offsets of ``step_m`` per row."""
    rng = np.random.default_rng(seed)
    r, c = np.indices((rows, cols))
    surface = 30e-12 * np.sin(c / 3.0) * np.cos(r / 5.0) + 5e-12 * r  # the tilt: 640 pm over the frame
    return (surface + np.cumsum(rng.normal(0, step_m, rows))[:, None]).astype(np.float32)


def test_a_plane_levelled_network_gets_bands_with_their_own_plane_when_offsets_are_small():
    backend = PlaneInputs()
    s, _, _ = stream(_walk(0.5e-12), "down", [8], halo=16, refine=8, backend=backend)
    assert not s.rows_aligned
    # The frozen plane is extrapolated down the frame; each band still goes in without a slope of its own.
    assert max(backend.row_slopes[s.freeze_rows // 8 :]) < 0.05


def test_a_plane_levelled_network_gets_aligned_rows_where_the_offsets_dominate():
    s, _, _ = stream(_walk(20e-12), "down", [8], halo=16, refine=8, backend=PlaneInputs())
    assert s.rows_aligned


class Levelled(BlurBackend):
    def __init__(self, levelling):
        super().__init__()
        self.levelling = levelling


@pytest.mark.parametrize("levelling, step_m", [("plane+rows", 20e-12), ("plane", 0.5e-12), ("plane", 20e-12)])
def test_streaming_levels_rows_as_maed_denoise_does(levelling, step_m):
    """One implementation of plane, row alignment and scaling: a frame that arrives in one update reaches the
    network exactly as ``maed.normalise`` prepares it for ``maed denoise`` (rows aligned or not alike)."""
    raw = _walk(step_m)
    s = StreamingDenoiser(*raw.shape, "down")
    s.update(raw, raw.shape[0], Levelled(levelling))
    x, norm = normalise(raw, levelling)
    assert s.rows_aligned == norm.rows_aligned
    np.testing.assert_allclose(s.network_input(), x, atol=1e-5)


@pytest.mark.parametrize("guard_window", [256, 64])
def test_the_live_guard_gives_back_steps_along_the_rows(guard_window):
    """The row alignment before the network takes a step edge along the fast axis for offsets (the terraces become
    one ramp); each verdict gives the steps found in the rows so far back, as ``maed denoise`` does for the final
    frame, continuous across the guard's windows."""
    from test_line_offsets import stairs_under, terrace_error, walk

    surface, noisy = stairs_under(walk)
    raw = (noisy * 1e-10).astype(np.float32)
    s = StreamingDenoiser(*raw.shape, "down", 4, 4, guard_window=guard_window)
    frame = np.full_like(raw, np.nan)
    for n in range(32, len(raw) + 1, 32):
        frame[n - 32 : n] = raw[n - 32 : n]
        s.update(frame, n, BlurBackend())
        s.guard()
    assert terrace_error(s.network / 1e-10, surface) > 0.5
    assert terrace_error(s.denoised / 1e-10, surface) < 0.25


def test_the_steps_given_back_continue_across_a_skipped_row_above_the_guard_s_window():
    """Each verdict's steps continue from those published at the row above its window; where that row was skipped
    (never sent), they came from nothing (0) and every later terrace dropped by about a step."""
    from test_line_offsets import stairs_under, terrace_error, walk

    surface, noisy = stairs_under(walk)
    raw = (noisy * 1e-10).astype(np.float32)
    s = StreamingDenoiser(*raw.shape, "down", 4, 4, guard_window=64)
    frame = np.full_like(raw, np.nan)
    for n in range(32, len(raw) + 1, 32):
        frame[n - 32 : n] = raw[n - 32 : n]
        frame[95] = np.nan  # the row above the window of the verdict at 160 rows
        s.update(frame, n, BlurBackend())
        s.guard()
    shown = s.denoised / 1e-10
    shown[95] = 0.5 * (shown[94] + shown[96])
    assert terrace_error(shown, surface) < 0.25


def test_a_frame_narrower_than_the_strips_streams_and_is_judged():
    """The steps along the rows are searched in strips of columns, one a column where a frame has fewer
    (``maed.line_offsets.row_changes_by_strip``): a 3-column stream is denoised and judged row by row."""
    raw = make_pair(14, 96).noisy.astype(np.float32)[:, :3]
    s, live, _ = stream(raw, "down", [16])
    assert s.guard() is not None
    assert np.isfinite(s.denoised).all() and np.isfinite(live).all()


class PlaneIdentityBackend:
    """A network that levels nothing and removes nothing (levelling ``plane``): what it is given comes back."""

    name = model = "identity"
    levelling = "plane"
    size_multiple = 16

    def denoise(self, batch):
        return batch


@pytest.mark.parametrize("slow_axis", ["down", "up"])
def test_the_live_guard_takes_the_z_creep_off_every_row_so_far(slow_axis):
    rows, cols = 256, 128
    y, x = np.mgrid[0:rows, 0:cols].astype(float)
    surface = 4.0 * (np.cos(2 * np.pi * x / 7.0) + np.cos(2 * np.pi * (0.5 * x + 0.87 * y) / 7.0))
    creep = 12.0 * np.exp(-np.arange(rows) / 35.0)[:, None]  # acquisition order: from the first row scanned
    noise = np.random.default_rng(3).normal(0, 0.05, (rows, cols))
    scanned = surface + creep + noise
    raw = (scanned if slow_axis == "down" else scanned[::-1]).astype(np.float32)
    s = StreamingDenoiser(rows, cols, slow_axis, 8, 8)
    frame = np.full_like(raw, np.nan)
    order = np.arange(rows) if slow_axis == "down" else np.arange(rows)[::-1]
    for n in range(32, rows + 1, 32):
        frame[order[n - 32 : n]] = raw[order[n - 32 : n]]
        s.update(frame, n, PlaneIdentityBackend())
    live = s.acquisition_order(s.denoised).astype(float)

    def creep_left(published):
        error = (published - surface).mean(axis=1)
        return np.std(error - np.polyval(np.polyfit(np.arange(rows), error, 1), np.arange(rows)))

    assert creep_left(live) > 0.2 * 12.0 / 4  # the network kept it: nothing judged yet
    s.guard()
    assert s.changed == (0, rows)  # every row is published again
    assert creep_left(s.acquisition_order(s.denoised).astype(float)) < 0.05 * 12.0


def test_the_final_frame_names_a_tip_change_taken_off_in_frame_rows():
    """A scan run up: the tip change at the 150th row scanned lies at frame row 105, and the rows scanned after it are
    the frame's top rows; ``meta.json``'s ``line_jumps`` names them as framed (``maed.line_jumps``)."""
    rows, cols = 256, 128
    y, x = np.mgrid[0:rows, 0:cols].astype(float)
    scanned = 0.2 * (np.cos(2 * np.pi * x / 7.0) + np.cos(2 * np.pi * (0.5 * x + 0.87 * y) / 7.0))  # acquisition order
    scanned += np.random.default_rng(5).normal(0, 0.05, (rows, cols))
    scanned[150, 40:] += 0.6
    scanned[151:] += 0.6
    raw = scanned[::-1].astype(np.float32)
    s = StreamingDenoiser(rows, cols, "up", 8, 8)
    final = s.final(raw, rows, PlaneIdentityBackend())
    expected = denoise_guarded(raw[::-1], PlaneIdentityBackend())
    np.testing.assert_array_equal(final, expected.data[::-1])
    (jump,) = expected.line_jumps
    assert (jump.start, jump.stop) == (150, rows)  # acquisition rows: those scanned from the change on
    assert s.line_jumps == [{"rows_moved": [0, rows - 150], "height": pytest.approx(0.6, rel=0.05), "both_passes": False}]
    assert abs(final[: rows - 160].mean() - final[rows - 140 :].mean()) < 0.05  # the frame holds the jump no more
