"""Scores the scan-health alerts (``maed.bridge.alerts``) and writes ``docs/results/alerts.md``.

- Simulated scans with known events (``maed.data.scan_events``; the simulator's own random tip jumps
  and scars off, so every event is on the list): precision and recall of tip changes and scars
  against the event's size over the scan's line noise, trace only and both passes; the other kinds
  at one size; the rows between an event and the line whose arrival raised its alert.
- Clean scans (no event): false alerts per 256-line frame.
- The real scans of ``../shared/data/real-stm/``: every alert, with its row (figures of each scan
  with its alerts marked go to ``--figures``, outside the repository: the scans are not ours).

An alert matches an event of its kind within one row; each event is matched at most once.

    python benchmarks/alerts_score.py [--scans 24] [--clean 100] [--real-dir DIR] [--figures DIR] [--cache FILE]

The detectors' one calibrated constant, ``GUMBEL_Q``, is set by ``alerts_calibrate.py`` on seeds apart from these.
"""

from __future__ import annotations

import argparse
import pickle
import time
from collections import Counter
from pathlib import Path

import numpy as np
from alerts_ceiling import STANDS_OUT, stands_out

from maed.bridge.alerts import scan_findings
from maed.data import TEST_SEED_BASE, EventSpec, make_pair
from maed.data.scan_noise import NoiseRanges

ROOT = Path(__file__).resolve().parents[1]
QUIET = NoiseRanges(tip_jump_rate=(0.0, 0.0), scar_rate=(0.0, 0.0))
"""The training ranges of every artefact but the simulator's own (unlisted) tip jumps and scars."""
WHITE = NoiseRanges(
    tip_jump_rate=(0.0, 0.0),
    scar_rate=(0.0, 0.0),
    white_corr_px=(0.0, 0.0),
    line_walk_m=(0.0, 0.0),
    drift_m=(0.0, 0.0),
    mains_m=(0.0, 0.0),
    resonance_m=(0.0, 0.0),
    ringing_gain=(0.0, 0.0),
    dac_lsb_m=(0.0, 0.0),
)
"""White noise alone: what the detectors reach where the line noise is all the noise there is."""
SIZES = (1.5, 2.0, 3.0, 4.0, 5.0, 7.0, 10.0)
TARGET = {"size": 3.0, "precision": 0.95, "recall": 0.9, "false_per_frame": 0.1}
"""The issue's bar: tip changes and scars of 3 line noise and more found with these, under this many false
alerts per clean 256-line frame."""
JUDGED = """How judged (2026-12-05): by a helper session that had not seen this page, the detectors' code or their
scores, acting as an STM scientist: each scan drawn with its best-fit plane removed (rows not levelled, which
hides tip changes), both passes side by side, every alert marked at its row (`--figures DIR`, kept out of the
repository), plus its own views (trace less retrace, row differences, per-row medians, pixels around each
alert). It listed the tip changes and scars it could see itself, then judged each alert: true (an event of that
kind within 2 rows), wrong kind, or false. It judged the alerts of the detectors before this page's last two
changes (whole-line scars, the other-pass check of ringing and of noise changes) and before `20201111--4_1` was
fed in its own order (a MATRIX up frame: its last row first; it had been fed top first); the alerts above are counted against its list of
events. Re-judge when the alerts change.

- Alerts: 49; **34 true, 3 of the wrong kind, 10 false, 2 not on the helper's list** (by its verdicts on the
  alerts before: 26 true, 7 wrong kind, 17 false of 50). Two came after the helper's look and are counted by its
  list: `hopg_300k_...` 32 (whole-line offsets judged from the 24th line on, `monitor.offset_bar`) and
  `A200622.190818` 72 r (2026-12-06: a tip change below the height bar where its split stands twice the scan's bar
  and the other pass confirms it, `steps.MIN_HEIGHT_CONFIRMED`; the tip changed within the retrace of row 72, at
  column 164, before the trace of row 73 the helper named).
  - True: `20201111--4_1` 7 (scars 50, 99 beside the streak of 97, 116 r, 158, 159 r, 261 r, 335 r),
    `createc_scan_atomic_11nm` 6 of 6 short dashes, `createc_scan_close_100nm` 6 (the tip changes that open and
    close its band of instability, 86 r and 107; the scars 87, 92 r, 96, 102), `hopg_300k_...` 8 (its level
    jumps at 32, 96, 160, 224 and scars 30 r, 101, 148, 188), `pySPM_test` 5 of 6 (retrace spikes at grains' edges),
    `A200727.214101` the 6-pixel retrace dip at 503.
  - Wrong kind: `createc_scan_close_100nm` 101 r (a one-line streak of r101 and t102, called a tip change);
    `hopg_300k_...` 96 r (the mid-line part of the row's level jump, called a scar); `20201111--4_1` 387 (the level
    jump at 388 in both passes, called a scar: its next line in time, 386, is partly back).
  - Not on the helper's list: `20201111--4_1` 235 r and 236, whole-line bumps of 40 to 80 pm against the lines
    either side, in a file whose streaks are 20 to 40 pm.
  - False: a surface edge along the rows, the same in both passes (`pySPM_test` 235: a grain edge jittering by a
    pixel); excursions of a scan's ordinary line noise on the noisiest Createc scans (`createc_scan_step_20nm` 22 r
    and 29, `createc_scan_molecular_30nm_pos` 18 r and 20 r, `createc_scan_close_100nm` 204 r, and 205 and 221
    there, two whole-line offsets of 3-4 pm that came after the helper's look and are counted false by its reading
    of those rows), `A200727.214101` 161 r (a noise drop of 3 lines), `A200306.161609` 298 r (ringing: the helper
    saw a weak ripple over the whole frame, no oscillation). The three false alerts on `20201111--4_1` fed top
    first (31 r at a step edge entering the frame, 32, 40 r) are gone in its own order.
- Visible tip changes: **7 of 8 found** (`createc_scan_close_100nm` 86 and 107, `hopg_300k_...` 32, 96, 160, 224,
  `A200622.190818` 73, as its retrace's row 72 above; `20201111--4_1` 388 as a scar, above). `A200622.190818`'s was
  missed until 2026-12-06: 2.3 pm against 1.3 pm of line-to-line change on a slope, under `steps.MIN_HEIGHT`.
  The four jumps of the HOPG scan are 64 lines apart with a drift between them: more likely a periodic reset of
  the instrument's z than tip changes; their form is a tip change's.
- Visible scars: **21 of the 37 the helper listed found** (`FeSe_topography` 0 of 9: 20 pm streaks of 12 to 35
  pixels on an atomic lattice with strong line offsets; `20201111--4_1` 7 of 12; `createc_scan_close_100nm` 3 of
  5; `createc_scan_atomic_11nm` 6 of 6; `hopg_300k_...` 4 of 4; `A200727.214101` 1 of 1), and 5 of `pySPM_test`'s
  many retrace spikes (all in the first 40 lines, before its own bar is fitted). Weak streaks of 1-3 pm on
  `example_TOPO` and one of 9 pm on `createc_scan_molecular_30nm_pos` (145) are missed too.
- `CO_img_0050` (the uploader's "band of abrupt Z offsets / tip-change streaks through the molecule"): the helper
  saw no band; at most a 1-2 pixel kink on the molecule's edge near row 38 (trace); the substrate is clean. No
  alert there now; the page before called 34 t and 61 r this band's ends: noise changes at the molecule's edges
  along the rows, the same in both passes (false, as were its three ringing alerts).
- No alert where none was expected: `unnamed0001` (reference-grade clean), `FeSe`'s lattice, `example_TOPO`,
  `example_LineProfile2`, `img_0071`, `TR_img_0253`, `STM_nanonis_generic_4_5`, six Createc `A2006..` scans, and
  `Au_mica_2023_Y_A_diPAMY_195` (Z held still, the feedback off)."""
CEILING = """**How far the scars stand out where they are** (the last column; `benchmarks/alerts_ceiling.py`, 2026-12-07):
each scar measured on the residual the detectors search (its row less the mean of the rows either side), over its own
columns, told rather than sought, against the same figure at the same columns on the scan's ordinary rows. A detector
that must also find the run needs about 5 of those spreads to keep ordinary lines under one candidate in 10^4 (the
floors `Z_STEP` and `Z_SCAR`), and a scar is one line's, so no later line adds to it: the column bounds the recall of
any detector that judges a line by the lines around it, at the issue's false-alarm bar, from above, and generously (it
knows the columns). At 3 line noise about a third of the scars stand 5 spreads out where they are; with white noise
alone nearly all do. The coloured parts of the noise (the offsets' walk, the 1/f drift along a line, pick-up, noise
correlated along the fast axis) add far more to a run's mean than to the line noise the sizes are counted in (the rms
of single pixels), so recall >= 0.9 for scars of 3 line noise is out of reach of such detectors on these scans. Tip
changes have no such column: they last, and the lines after them and the other pass add evidence (the detectors find
more of them at 5 line noise than one line shows). Two tries on development seeds (TEST_SEED_BASE + 794 000, not built,
`docs/tried.md`): a scar as a run between two sharp edges of opposite sign (both edges' statistics together lift a
scar's about sqrt 2, and the scan's bar as much: 12 of 48 scars over it against 14), and each column's statistics over
their own recent spread there (ordinary lines over the bar 58 -> 25 of 3744, the scars unchanged, 11 of 32 either
way)."""

CALIBRATION = """## How the false-alarm rate is set

A line is judged by its **scan statistic**: the largest, over positions and window lengths (3 to 64 pixels),
of the window statistics of its residual (the line less the mean of the lines either side; a window against
its flanks, and a window against the one before it), each over that window length's spread on the pass's
recent lines (`maed.bridge.alerts.segments`). On white noise that statistic follows one law everywhere, and
one threshold (`Z_STEP` 5, `Z_SCAR` 5.5) gives about one false candidate in 10^4 lines. On real surfaces it
does not: a terrace edge that jitters from line to line, or molecules in some rows and not in others, give
a scan's lines a much wider law, and one global threshold passed their tails (the steps family made most of
the 0.2 false alerts per frame before). Each pass now keeps the statistics of its last 64 lines, fits a
Gumbel law to them (the law of a maximum of many near-normal statistics; location and scale from their
median and interquartile range), and a line must clear that scan's own bar, `GUMBEL_Q` = 6 scales above
the location (a chance of 2.5e-3 per line on the scan's own law, before the next line and the other pass
veto), or the floors where the law is narrow (most scans). `GUMBEL_Q` was set by
`benchmarks/alerts_calibrate.py` on 100 clean frames per mode from seeds held apart from this page's
(from TEST_SEED_BASE + 315 000): on simulator 5 with the noise change of 2026-12-05, 0.04 false alerts per
frame trace only and 0.10 with both passes at q = 6 (0.10 at q = 5, 0.08 at q = 7, both passes; on simulator 2
it was 0.03 and 0.07 at q = 6; with whole lines' offsets judged from the 24th line on, `monitor.offset_bar`,
0.05 trace only, 0.10 with both passes); the clean frames below are another seed block, so their rate is the
held-out check. Each tip change and scar alert carries the bar it cleared (`evidence.bar`).

**Noise changes judged on the residual's steps from pixel to pixel (2026-12-05, thirty-first session).** On
simulator 5 the page had stopped meeting the false-alarm bar (0.07 per clean frame trace only, 0.12 with both
passes): simulators 3 and 4 drew step edges nearly along the rows, and a line that crosses one over much of its
length holds a level against the lines before, so the robust rms of its residual doubled for two lines, as a
noisier tip's does (6 of the 16 false alerts on the calibration frames with both passes; `GUMBEL_Q` 6 to 9 did
not reach them). A noise change is now judged on `pixel_noise.pixel_noise`: the noise from the residual's
differences between neighbouring pixels, the smallest 80 % of them (a level over a run adds two large differences,
at its ends; a mean of squares, since on a quantised channel a median difference jumps between whole DAC steps from
line to line), and it must be abrupt: the line's
noise beyond the bar against the three lines just before it too, not only against the recent median (the noise of
`A200622.190818` swells and fades by 3 over some 25 lines, which the median lags; judged on the differences alone it raised
eight noise changes there). Measured: noise-change false alerts on the 100 calibration frames with both passes 6
-> 0, all false alerts 0.16 -> 0.10 per frame (trace only 0.08 -> 0.04; `GUMBEL_Q` 5, 6, 7: 0.10, 0.10, 0.08 with
both passes, so it stays at 6); on this page's own clean frames 0.07 -> 0.04 trace only and 0.12 -> 0.06 with both
passes. Tip changes found more often at every size (at 3 line noise 0.21 -> 0.33 trace only, 0.23 -> 0.35 with
both passes; precision 0.62 -> 0.89 and 0.73 -> 1.00): a noisier tip's white noise stands out more on the steps
from pixel to pixel, where the noise correlated along the fast axis weighs less. On the real scans 15 alerts
fewer (whole-row tip changes on terrace edges at a shallow angle, molecules' edges and lattices:
`A200619.213320`, `STM_nanonis_generic_4_5`, `TR_img_0253`, `img_0071`, `example_LineProfile2`, `example_FFT`,
two on `createc_scan_atomic_11nm`), two more (`A200727.214101` row 161, `CO_img_0050` row 70), and
`CO_img_0050`'s row 34 (trace) no longer flagged (the judgement below). Two tries of 2026-12-04 on the same false
alerts, not kept: a noise change required to show as well on the line less the mean of the lines either side
(0.16 -> 0.14 per frame with both passes: a step crossing a line leaves half its height there), and the noise
judged per part of the line (32 pixels; 0.08 per frame with both passes, but new noise changes on real molecules
and terraces that fill some parts of a line: `A200622.190818` 0 -> 2 or 6 alerts).

**Whole-line streaks, and tones both passes carry (the same day, after the independent judgement below).** A whole
line off the lines before it (their pixel median, so a wandering offset does not count) and the next line back at
their level is now a scar the width of the line (`steps.judge_offset`); it was no alert, and the line after it,
which steps back, was called a tip change (6 of the 7 wrong kinds the judge found, on `20201111--4_1` and
`createc_scan_close_100nm`). A tip change at a line's start must now stand as far from the lines before as from the
line before. And a ringing alert needs the other pass's same row not to carry the tone in place
(`feedback.tone_shared`: the two rows registered on the surface around them, `other_pass.warp`, then their tones'
correlation within the band, at most 0.5): the surface's periodic structure along a row (pores at an island's edge,
a molecule's lobes) is in both passes, the feedback's ringing follows each pass's own edge, and an oscillation in
time has no reason to keep its phase from pass to pass. A noise change, likewise, where the other pass is at hand,
must not be what both passes show at the same place (the differences between neighbouring pixels of the two rows
less their lines before correlating above 0.5 at that registered shift): a noisier tip adds noise each pass draws anew. On the simulated
scans none of the three changed a count; on the real scans 3 of the 4 ringing alerts (all false) went, and
`CO_img_0050`'s two noise changes at the molecule's edges; the wrong kinds fell from 7 to 2, and the visible
streaks found as scars rose from 15 to 21.

**Ringing judged in windows along the line (2026-12-07, fifty-sixth session).** A feedback oscillation dies out
within some 15 to 40 pixels of the edge that set it off; judged on the whole line's spectrum its tone was diluted in
the noise of the rest, and ringing of 5 line noise was found 8 and 5 times in 24 (trace only, both passes). Each
line's residual is now judged in half-overlapping windows of 64 pixels (`feedback.RingWindows`), each against the
recent lines' spectra at that window: a 3-bin band (periods 3 to 16 pixels, from the window's bin 4 on) 25 times
their level and 10 times the bands 3 to 6 bins beside it; the window's two lowest bins may gain at most 0.2 of the
band's power (`RING_LOW`: features that appear a period apart, as two adsorbates' tops do, or an edge that moved);
the line is judged by the strongest window that passes every test. The next line must carry the band against the same
lines before, and the line must hold the tone more than its lines before (an episode's end shows it too, and was a
second alert); ringing within 12 rows in either pass is one alert; not for 24 lines after a noise change (the history
it clears rang on noise that had grown threefold). The other pass's row is registered on the lines before where they
show the surface, else by the scan's last such shift (`other_pass.sure`): a tone that fills the row drew the
registration onto itself, which called two passes' oscillations of unrelated phases the surface. The alert names the
run of windows where the tone rose, and its period read between the window's bins. Set on development seeds
(TEST_SEED_BASE + 900 000 and 910 000: 20 and 28 of 48 episodes found, one of 200 clean frames' alerts left) and
mended after a review that ran mutants of each test against it. On this page's seeds: ringing found 12 and 16 times
in 24; false alerts per clean frame 0.04 -> 0.06 trace only and 0.01 -> 0.02 with both passes (ringing 3 and 1 of
them: at step edges of one scan whose simulated feedback does ring, the noise's own `ringing_gain` 0.2 and period
13.9 pixels, not an event the simulator lists, and one where nothing rings). 0.40 ms of CPU per line against 0.38
measured alongside. On the real scans the ringing alert on `A200306.161609` (row 298, judged false) is gone and one
on `createc_scan_close_100nm` (row 39, trace, columns 64 to 160, a period of 18 pixels: a step edge that moves along
the row from line to line, its low bins' gain 0.20, at the bar; nothing rings there) came. A rise of 20 rang on a
granular film's line of `pySPM_test` (22.9), one of 30 missed an oscillation of twice the noise that fills 140 pixels
of a line (26 to 27); a narrowness of 8 rang on three real scans where nothing rings (two pits appearing a period
apart on `A200622.190818`, a groove on `pySPM_test`, a flat stretch of `createc_scan_close_100nm`, at 8.1 to 9.8).
Periods longer than a quarter of a window (16 pixels; on lines narrower than 64 pixels, a quarter of the line) are no
longer looked at.

What was tried and not kept, measured on development seeds (TEST_SEED_BASE + 900 000, apart from both):
whitening the residual with an autoregressive model of the recent lines (a matched filter of a run in
coloured noise) raised the events' statistics by about a third at 3 line noise, but raised the clean
lines' tails more (terrace edges are sharp, and whitening weighs edges): at equal false alerts per frame
it found no more scars (6 of 48 against 8 of 48 at 3 line noise, both passes). A lower floor (`Z_STEP`
4.5) under the scan's bar doubled the false alerts for 3 more scars of 48. A tip-state check (a double
tip's ghosts as a side peak of the frame's autocorrelation within 2.5 to 8.5 pixels, above the radial
mean there) told 40 simulated double-tip frames (`make_pair(double_tip=True)`) from the same seeds' single-tip
frames no better than chance (AUC 0.50: lattices and multi-atom surfaces have side peaks of their own), so
no tip-state alert was built. Tried again on 2026-12-04, each no better: the same check on the frame with its
lattice peaks notched out (AUC 0.47-0.51, clean frames 0.50-0.51); a ghost as the antisymmetric part of the median
of the frame's isolated features, each cut out around its extremum (0.54 on 30 frames of adsorbates, standing
waves and steps; clean 0.51); and from frame to frame, the imaging kernel (a regularised deconvolution of a frame
by the last of its area) or the ratio of the two frames' spectra, where a double tip would show a second apex and
a blunt one a loss at high frequencies (0.41-0.65 on 24 pairs per kind under the training ranges' noise: the two
frames' noise, not the tip, sets both). Part of why: this simulator's double tip (the surface or its copy 2 to 6
pixels away and 0.1 to 0.5 of its range lower, whichever is higher) changes most frames little (a 0.04 rms share on
standing waves, nothing on a molecular crystal) and turns a lattice into another lattice, which one frame cannot
tell from a surface. Tried on 2026-12-04 as well: runs sought in the two passes' difference, line by line (the
trace less the retrace, shifted by the whole scan's cross-correlation, less the median of the three rows before:
the surface cancels). On 12 scans at 3 line noise the scars' statistic at their own place had a median of 3.9
there against 5.6 on one pass's residual, and the clean rows' tail was as wide (99.9th percentile 18 against
19): the registration's residue at edges and two passes' noise outweigh the surface it takes off.
Drift is judged from frame to frame instead (a `drift` alert where a complete
scan's features stand 2 % of the frame or more from the last complete scan of its area, `bridge/alerts/drift.py`);
it is not scored here, as the simulator's event lists hold one frame each: its docstring and tests do.

Tried on 2026-12-05 (a local branch, `tip-state`, not merged): a blunter tip as a lattice's contrast falling from a row on.
The lattice's peaks sought in the first 64 lines of each pass and kept where both passes show them (pick-up,
periodic in time, lands elsewhere in a pass scanned the other way; in one simulated pass it was most of the peaks);
every 8 lines, the power at those peaks in the last 32 lines' spectrum less its local background, in the row's left
and right halves apart; an alert where both halves fell to 0.35 of the bands before (or rose as far) in two bands
in a row, the bands before standing 5 noise deviations above the noise under the peaks. On 48 simulated lattice
scans in both passes with a blunter tip from a random row on (`EventSpec.blunting` on the branch: the surface
smoothed by a Gaussian of 0.7 to 2.5 pixels, no step) it found 4 of the 6 judgeable changes that keep under 0.35
of the lattice's power (4 of the 4 whose lattice stood out of the noise in both passes), none of the 14 milder
ones, with 1 alert elsewhere, and none on 64 clean frames. On the 26 real scans it raised 9 alerts, where a
helper session that looked at every scan without the detector's output saw no change of tip state in any:
lattices that end along the rows at an island's edge (`example_LineProfile2` 144, `example_FFT` 223), peaks near
2 pixels (`Au_mica_2023_Y_A_diPAMY_195`, `createc_scan_molecular_30nm_pos` twice), periods near the band's
height along the slow axis (`A200621.160730` twice, `A200809.232915`) and `A200622.190818` 207. A lattice's
contrast changes with the surface as often as with the tip: not kept.

Tried the same day, not kept: the periodic components along the rows (bins where the mean spectrum of the
first 64 lines stands 8 times above its median-filtered background) notched out of every line before the
detectors, so that a lattice no longer hides runs in the residual: `FeSe_topography` 0 -> 2 of its 9 streaks
found, `A200727.214101`'s false noise drop gone, but three new alerts on scans where no event was seen
(`A200518.231315` 284 r and 401 r, `createc_scan_molecular_30nm_pos` 11) and, on 24 simulated scans per size (dev
seeds), recall and precision at 3 and 5 line noise and false alerts on 48 clean frames within one event of the
detectors' own: this simulator's lattices are too weak to hide runs, FeSe's streaks are too many (they raise the
scan's own bar).

Why 3 line noise stays out of reach here: on the development seeds at 3 line noise (both passes, 24 scans,
96 scars), 16 scars were found, 15 stood out but were vetoed (the next line still showed part of them, or
the other pass did), and 65 never stood out: in 39 of those the largest statistic of the event's lines was
under 5, the level that ordinary lines reach about once per 10^4 (34 of them between 4 and 5). The line
noise this page measures sizes in holds the surface's own change from line to line and the drift along a
line, both coloured, so an event of 3 of it is, for most window lengths, 4 to 5 spreads of the statistic:
where the issue's false-alarm bar must hold, half of them cannot be told from the noise by one line and its
neighbours. More lines after the event would tell more (a tip change lasts), at the cost of the issue's
two-line-period latency.

Which artefact bounds recall at 3 line noise (2026-12-02; 16 scans per row, 32 tip changes and 64 scars each, seeds
from TEST_SEED_BASE + 792 000, apart from this page's; one artefact group of the training ranges off at a time;
recall of tip changes / scars, trace only and both passes):

| artefacts | tip changes, trace | tip changes, both | scars, trace | scars, both |
|---|---|---|---|---|
| all of them | 2/32 | 5/32 | 11/64 | 11/64 |
| no random walk of the line offsets | 8/32 | 8/32 | 11/64 | 11/64 |
| no 1/f drift | 4/32 | 9/32 | 15/64 | 23/64 |
| no noise correlated along the fast axis | 5/32 | 6/32 | 12/64 | 13/64 |
| no pick-up | 1/32 | 7/32 | 11/64 | 11/64 |
| white noise alone | 19/32 | 22/32 | 30/64 | 30/64 |

Without the offsets' walk, tip-change recall rises from 2 to 8 of 32 trace only and from 5 to 8 with both passes (a
tip change at a line's start is a step among the walk's steps); scars do not change; the drift costs scars most; no
single group explains the gap, and with none of them the detectors still find 0.6-0.7 of tip changes and under half
of the scars: the surface's own change from line to line, which the line noise holds, bounds them as much as the
artefacts do.

Looked at on 2026-12-06 (development seeds from TEST_SEED_BASE + 900 000, white noise alone, 3 line noise, both
passes): 32 of 48 scars missed, with no alert of any kind within 2 rows, long ones among them (17 of the 28 scars over
30 pixels: a 78-pixel scar of 13 pm where the line noise was 4.4 pm). There the residual (the line less the mean of
the lines either side) holds 5.4 pm of the surface's own change (the clean surface's lines differ by 6.3 pm rms:
atoms along the slow axis), correlated along the row, so a long window gains little over a short one. A better
prediction of the line from its neighbours would lower that clutter: a least-squares fit of the line on the three
lines before it and the one after (each shifted by -2 to 2 pixels), fitted on the 30 lines before, lowered the
residual's robust spread only 1.12 to 1.21 times on 8 scans, and a line two after would break the two-line-period
latency. Not built.
"""
SEED = TEST_SEED_BASE + 15_000
SIZE = 256


def match(events, found) -> tuple[list[bool], list[bool], list[int]]:
    """(event matched, finding matched, rows of delay of each matched finding)."""
    taken = [False] * len(found)
    hit, delays = [], []
    for event in events:
        best = next((i for i, (f, _) in enumerate(found) if not taken[i] and f.kind == event.kind and abs(f.row - event.row) <= 1), None)
        hit.append(best is not None)
        if best is not None:
            taken[best] = True
            delays.append(abs(found[best][1] - event.row))
    return hit, taken, delays


def score(sizes: tuple[float, ...], scans: int, both: bool, seed: int, ranges: NoiseRanges = QUIET) -> dict:
    """Per size: events and hits per kind, alerts and correct alerts per kind, delays, and the events that stand
    ``STANDS_OUT`` spreads out where they are (scars, ``alerts_ceiling``)."""
    out = {}
    for k, size in enumerate(sizes):
        tally = {"events": Counter(), "hits": Counter(), "alerts": Counter(), "correct": Counter(), "delays": [], "ceiling": Counter()}
        for i in range(scans):
            pair = make_pair(
                seed + 1000 * k + i, SIZE, ranges, both_passes=both, events=EventSpec(tip_changes=2, scars=4, size=size, gap_rows=12)
            )
            found = scan_findings(pair.noisy, pair.retrace)
            hit, correct, delays = match(pair.events, found)
            tally["delays"] += delays
            _count(tally, pair.events, hit, found, correct)
            passes = {"trace": pair.noisy} | ({} if pair.retrace is None else {"retrace": pair.retrace})
            for event, spreads in stands_out(list(pair.events), passes):
                tally["ceiling"][event.kind] += spreads >= STANDS_OUT
        out[size] = tally
    return out


def _count(tally: dict, events: list, hit: list, found: list, correct: list) -> None:
    """Add one scan's events (found or not) and alerts (right or not) to ``tally``, by kind."""
    for event, h in zip(events, hit):
        tally["events"][event.kind] += 1
        tally["hits"][event.kind] += h
    for (f, _), c in zip(found, correct):
        tally["alerts"][f.kind] += 1
        tally["correct"][f.kind] += c


def other_kinds(scans: int, both: bool, seed: int) -> dict:
    """Recall of ringing, crashes, missing and repeated lines at 5 line noise, and all alerts raised."""
    spec = EventSpec(tip_changes=0, scars=0, ringing=1, crashes=1, missing=1, repeated=1, size=5.0, gap_rows=12)
    tally = {"events": Counter(), "hits": Counter(), "alerts": Counter(), "correct": Counter()}
    for i in range(scans):
        pair = make_pair(seed + i, SIZE, QUIET, both_passes=both, events=spec)
        found = scan_findings(pair.noisy, pair.retrace)
        hit, correct, _ = match(pair.events, found)
        _count(tally, pair.events, hit, found, correct)
    return tally


def clean(count: int, both: bool, seed: int) -> tuple[Counter, list[str]]:
    """False alerts by kind on ``count`` clean frames, and the surface family of each."""
    alerts: Counter = Counter()
    families = []
    for i in range(count):
        pair = make_pair(seed + i, SIZE, QUIET, both_passes=both)
        for f, _ in scan_findings(pair.noisy, pair.retrace):
            alerts[f.kind] += 1
            families.append(pair.surface["family"])
    return alerts, families


def real_scans(folder: Path, figures: Path | None) -> list[tuple[str, str, int, list]]:
    """(file, slow axis, rows, findings) of the topograph of every real scan in ``folder``."""
    from maed.scanfiles import ScanFileError, read_file, scanned_upwards

    out = []
    for path in sorted(folder.iterdir()):
        try:
            scan = read_file(path)
            trace = scan.channel(None, "trace")
        except (ScanFileError, ValueError, KeyError):
            continue
        try:
            retrace = scan.channel(None, "retrace").data
        except (ScanFileError, ValueError, KeyError):
            retrace = None
        slow_axis = "up" if scanned_upwards(trace) else "down"
        found = [f for f, _ in scan_findings(trace.data, retrace, slow_axis)]
        out.append((path.name, slow_axis, trace.data.shape[0], found))
        if figures is not None:
            _figure(figures / f"{path.stem}.png", trace.data, retrace, found, path.name)
    return out


def _figure(path: Path, trace: np.ndarray, retrace: np.ndarray | None, found: list, title: str) -> None:
    """The scan's passes less their best-fit plane (not rows levelled: that would hide a tip change), each
    alert marked in the margin at its row, for a person to judge."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = [trace] + ([retrace] if retrace is not None else [])
    fig, axes = plt.subplots(1, len(images), figsize=(6 * len(images), 6), squeeze=False)
    colours = {
        "tip_change": "red",
        "scar": "orange",
        "ringing": "magenta",
        "crash": "black",
        "line_missing": "blue",
        "line_repeated": "cyan",
    }
    for ax, image, name in zip(axes[0], images, ("trace", "retrace")):
        rows, cols = np.nonzero(np.isfinite(image))
        fit = np.linalg.lstsq(np.column_stack([np.ones(rows.size), rows, cols]), image[rows, cols], rcond=None)[0]
        levelled = image - (fit[0] + fit[1] * np.arange(image.shape[0])[:, None] + fit[2] * np.arange(image.shape[1]))
        lo, hi = np.nanpercentile(levelled, [1, 99])
        ax.imshow(levelled, cmap="afmhot", vmin=lo, vmax=hi, interpolation="nearest")
        for f in found:
            if f.pass_ == name:
                ax.plot([f.columns[0], f.columns[1] - 1], [f.row, f.row], color=colours[f.kind], lw=1)
                ax.annotate(
                    f.kind,
                    (0, f.row),
                    xytext=(-4, 0),
                    textcoords="offset points",
                    ha="right",
                    va="center",
                    fontsize=7,
                    color=colours[f.kind],
                    annotation_clip=False,
                )
        ax.set_title(f"{title} {name}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot(results: dict, path: Path) -> None:
    """Precision and recall of tip changes and scars against size, trace only and both passes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), sharey=True)
    for ax, kind in zip(axes, ("tip_change", "scar")):
        for mode, style in (("trace", "-"), ("both", "--")):
            sizes = sorted(results[mode])
            recall = [_ratio(results[mode][s]["hits"][kind], results[mode][s]["events"][kind]) for s in sizes]
            precision = [_ratio(results[mode][s]["correct"][kind], results[mode][s]["alerts"][kind]) for s in sizes]
            ax.plot(sizes, recall, "o" + style, color="C0", label=f"recall ({mode})", ms=3)
            ax.plot(sizes, precision, "s" + style, color="C3", label=f"precision ({mode})", ms=3)
        ax.axvline(3, color="grey", lw=0.5)
        ax.set_xscale("log")
        ax.set_xticks(sorted(results["trace"]), [f"{s:g}" for s in sorted(results["trace"])])
        ax.set_xlabel("event size / line noise")
        ax.set_title(kind)
        ax.set_ylim(0, 1.02)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _ratio(a: int, b: int) -> float:
    return a / b if b else float("nan")


def _pct(a: int, b: int) -> str:
    return f"{a / b:.2f} ({a}/{b})" if b else "–"


def report(results: dict, white: dict, others: dict, false: dict, real: list, args, seconds: float) -> str:
    lines = [
        "# Scan-health alerts: scores",
        "",
        "Generated by `python benchmarks/alerts_score.py` (`maed.bridge.alerts`, issue 15); do not edit by hand.",
        f"{args.scans} simulated {SIZE} x {SIZE} scans per size and mode, each with 2 tip changes and 4 scars "
        f"(`EventSpec`; seeds from {SEED}), {args.clean} clean frames per mode; {seconds:.0f} s.",
        "",
        "**Line noise** is the scan's robust rms of a line's pixels about the line before, offsets aside "
        "(`maed.data.scan_events.line_noise`): the white and feedback noise along the fast axis, and whatever "
        "the surface changes from one line to the next. The scans draw every other artefact of the training "
        "ranges (line offsets' random walk, 1/f drift, pick-up, noise correlated along the fast axis over "
        "up to 1.5 pixels, ringing after edges, quantisation), so the detectors meet what they would live. "
        "An alert counts when its kind and row (within one row) match an event's; "
        "precision is the share of a kind's alerts that match an event of that kind.",
        "",
        "![precision and recall against event size](alerts.png)",
        "",
    ]
    for kind in ("tip_change", "scar"):
        lines += [
            f"## {kind}",
            "",
            "| size / line noise | recall, trace only | precision, trace only | recall, both passes | precision, both passes "
            + (f"| standing {STANDS_OUT:g} spreads out where they are: trace only, both passes |" if kind == "scar" else "|"),
            "|---|---|---|---|---|" + ("---|" if kind == "scar" else ""),
        ]
        for size in sorted(results["trace"]):
            t, b = results["trace"][size], results["both"][size]
            lines.append(
                f"| {size:g} | {_pct(t['hits'][kind], t['events'][kind])} "
                f"| {_pct(t['correct'][kind], t['alerts'][kind])} "
                f"| {_pct(b['hits'][kind], b['events'][kind])} | {_pct(b['correct'][kind], b['alerts'][kind])} |"
                + (
                    f" {_ratio(t['ceiling'][kind], t['events'][kind]):.2f}, {_ratio(b['ceiling'][kind], b['events'][kind]):.2f} |"
                    if kind == "scar"
                    else ""
                )
            )
        lines.append("")
    lines += [CEILING, ""]
    delays = [d for mode in results.values() for t in mode.values() for d in t["delays"]]
    lines += [
        "## Delay",
        "",
        f"Rows between an event's row and the row whose line's arrival raised its alert, over every matched "
        f"alert: median {np.median(delays):.0f}, max {max(delays)} (a line is judged when the next line of its "
        "pass arrives; a line period is the trace and the retrace of one row).",
        "",
        "## Other kinds (5 line noise for ringing)",
        "",
        "| kind | recall, trace only | recall, both passes |",
        "|---|---|---|",
    ]
    for kind in ("ringing", "crash", "line_missing", "line_repeated"):
        t, b = others["trace"], others["both"]
        lines.append(f"| {kind} | {_pct(t['hits'][kind], t['events'][kind])} | {_pct(b['hits'][kind], b['events'][kind])} |")
    lines += [
        "",
        "## False alerts on clean frames",
        "",
        "| mode | frames | false alerts | per frame | by kind | surfaces |",
        "|---|---|---|---|---|---|",
    ]
    for mode, (alerts, families) in false.items():
        total = sum(alerts.values())
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(alerts.items())) or "–"
        fams = ", ".join(f"{k} {n}" for k, n in sorted(Counter(families).items())) or "–"
        lines.append(f"| {mode} | {args.clean} | {total} | {total / args.clean:.2f} | {kinds} | {fams} |")
    lines += [
        "",
        "## Against the issue's bar",
        "",
        f"Tip changes and scars of {TARGET['size']:g} line noise and more: precision >= {TARGET['precision']}, "
        f"recall >= {TARGET['recall']}, within one row; fewer than {TARGET['false_per_frame']} false alerts per clean "
        "256-line frame.",
        "",
        f"| kind | mode | at 3 line noise: recall, precision | standing {STANDS_OUT:g} spreads out there (a ceiling) "
        "| smallest size meeting both bars |",
        "|---|---|---|---|---|",
    ]
    for kind in ("tip_change", "scar"):
        for mode in ("trace", "both"):
            t = results[mode]
            at3 = t.get(TARGET["size"])
            met = [
                size
                for size in sorted(t)
                if all(
                    _ratio(t[s]["hits"][kind], t[s]["events"][kind]) >= TARGET["recall"]
                    and _ratio(t[s]["correct"][kind], t[s]["alerts"][kind]) >= TARGET["precision"]
                    for s in sorted(t)
                    if s >= size
                )
            ]
            lines.append(
                f"| {kind} | {mode} | {_pct(at3['hits'][kind], at3['events'][kind])}, "
                f"{_pct(at3['correct'][kind], at3['alerts'][kind])} "
                f"| {_pct(at3['ceiling'][kind], at3['events'][kind]) if kind == 'scar' else '–'} "
                f"| {f'{met[0]:g}' if met else 'none up to 10'} |"
            )
    lines += [
        "",
        "The same scans with white noise alone (no offsets' walk, drift, pick-up, correlation along the fast "
        "axis, ringing or quantisation; line noise as above), both passes:",
        "",
        f"| kind | size / line noise | recall | precision | standing {STANDS_OUT:g} spreads out where they are |",
        "|---|---|---|---|---|",
    ]
    for kind in ("tip_change", "scar"):
        for size, t in sorted(white.items()):
            lines.append(
                f"| {kind} | {size:g} | {_pct(t['hits'][kind], t['events'][kind])} | {_pct(t['correct'][kind], t['alerts'][kind])} "
                f"| {_pct(t['ceiling'][kind], t['events'][kind]) if kind == 'scar' else '–'} |"
            )
    per_frame = {mode: sum(alerts.values()) / args.clean for mode, (alerts, _) in false.items()}
    lines += [
        "",
        "False alerts per clean frame: "
        + ", ".join(f"{m} {v:.2f}" for m, v in per_frame.items())
        + f" (bar: under {TARGET['false_per_frame']}).",
        "",
    ]
    counts = {mode: sum(alerts.values()) for mode, (alerts, _) in false.items()}
    upper = {mode: (n + 1.96 * np.sqrt(n) + 2) / args.clean for mode, n in counts.items()}  # Poisson, roughly
    fa_met = all(v < TARGET["false_per_frame"] for v in per_frame.values())
    recalls_at3 = [
        _ratio(results[mode][TARGET["size"]]["hits"][kind], results[mode][TARGET["size"]]["events"][kind])
        for mode in results
        for kind in ("tip_change", "scar")
    ]
    lines += [
        "",
        "**In plain words.** Met: "
        + (
            "fewer than 0.1 false alerts per clean frame in both modes on these "
            "held-out frames (" + ", ".join(f"{m} {per_frame[m]:.2f}, 95 % upper bound about {upper[m]:.2f}" for m in per_frame) + "), "
            if fa_met
            else ""
        )
        + f"every matched alert within {max(delays)} rows of its line's arrival (the issue allows 2 line periods), "
        "and the cost per line (`benchmarks/test_alerts.py`: about 0.8 ms per 256-pixel line, trace only or both "
        "passes, on the 2-core VM on 2026-12-05, 0.65 for the detectors before that day's changes; the budget is "
        "1 ms). Not met: "
        + ("" if fa_met else "fewer than 0.1 false alerts per clean frame; ")
        + "recall >= 0.9 with precision >= 0.95 for tip changes and scars of 3 line noise (recall "
        f"{min(recalls_at3):.2f} to {max(recalls_at3):.2f} there; the table above says from which size both bars "
        "hold; of those scars only "
        + " and ".join(
            f"{_ratio(results[m][TARGET['size']]['ceiling']['scar'], results[m][TARGET['size']]['events']['scar']):.2f}"
            for m in ("trace", "both")
        )
        + " stand 5 spreads out where they are, trace only and with both passes, a ceiling on any detector that judges a "
        "line by its neighbours); no tip-state (double or blunt tip) detector was built (drift, from frame to "
        "frame, is scored in `bridge/alerts/drift.py`, not here). "
        "Against the detectors before the scans' own bars (the page of 2026-11-30): false alerts per clean frame "
        "0.23 -> "
        + f"{per_frame['trace']:.2f}"
        + " trace only and 0.18 -> "
        + f"{per_frame['both']:.2f}"
        + " with both passes, at some recall (scars of 5 line noise: 0.76 -> "
        f"{_ratio(results['trace'][5.0]['hits']['scar'], results['trace'][5.0]['events']['scar']):.2f} trace only, 0.76 -> "
        f"{_ratio(results['both'][5.0]['hits']['scar'], results['both'][5.0]['events']['scar']):.2f} with both passes).",
        "",
    ]
    lines += ["", CALIBRATION]
    lines += [
        "",
        "## Real scans",
        "",
        "Every alert on the topograph of each file in `../shared/data/real-stm/` (both passes where the file has "
        "them), fed in acquisition order (`maed.scanfiles.scanned_upwards`: Nanonis `SCAN_DIR`, a MATRIX file's up "
        "frame; down otherwise).",
        "",
        "| file | slow axis | rows | alerts (kind@row, pass) |",
        "|---|---|---|---|",
    ]
    for name, slow_axis, rows, found in real:
        listed = "; ".join(f"{f.kind}@{f.row} ({f.pass_[0]}, cols {f.columns[0]}:{f.columns[1]})" for f in found) or "none"
        lines.append(f"| {name} | {slow_axis} | {rows} | {listed} |")
    lines += ["", JUDGED]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scans", type=int, default=24)
    p.add_argument("--clean", type=int, default=100)
    p.add_argument("--real-dir", default=str(ROOT.parent / "shared" / "data" / "real-stm"))
    p.add_argument("--figures", default=None, help="folder (outside the repository) for the real scans' figures")
    p.add_argument("--out", default=str(ROOT / "docs" / "results" / "alerts.md"))
    p.add_argument(
        "--cache",
        default=None,
        help="a file (outside the repository) that keeps the scores: where it "
        "exists the page is written from it without scoring again (to rewrite its text)",
    )
    args = p.parse_args()
    start = time.perf_counter()
    cache = Path(args.cache) if args.cache else None
    if cache is not None and cache.exists():
        results, white, others, false, real, seconds = pickle.loads(cache.read_bytes())
        if any("ceiling" not in tally for mode in (*results.values(), white) for tally in mode.values()):
            p.error(f"{cache} was written before the scars' ceiling was scored: remove it to score again")
        start -= seconds
    else:
        results = {mode: score(SIZES, args.scans, mode == "both", SEED) for mode in ("trace", "both")}
        white = score((3.0, 5.0), args.scans, True, SEED, WHITE)
        others = {mode: other_kinds(args.scans, mode == "both", SEED + 100_000) for mode in ("trace", "both")}
        false = {mode: clean(args.clean, mode == "both", SEED + 200_000) for mode in ("trace", "both")}
        real_dir = Path(args.real_dir)
        real = real_scans(real_dir, Path(args.figures) if args.figures else None) if real_dir.is_dir() else []
        if cache is not None:
            cache.write_bytes(pickle.dumps((results, white, others, false, real, time.perf_counter() - start)))
    out = Path(args.out)
    plot(results, out.with_suffix(".png"))
    out.write_text(report(results, white, others, false, real, args, time.perf_counter() - start))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
