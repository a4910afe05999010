"""What can be made of a scan's two passes: one pass, the mean of two one-pass outputs (in the trace's frame, and
moved midway, where the tip really was), the two-pass model; the methods that ``maed eval --passes`` scores on
simulated scans and on a real third look."""

from __future__ import annotations

import numpy as np

from ..classical import fit_plane
from ..denoise import denoise_guarded
from ..engine import Backend
from ..registration import AMBIGUOUS, Registration, align, midway_mean, period_ambiguity, register, seen

ONE_PASS, MEAN, MIDWAY_MEAN, TWO_PASS = "one pass", "mean of one-pass outputs", "mean of one-pass outputs, midway", "two-pass"


def mean_on_trace(trace: np.ndarray, retrace: np.ndarray, registration: Registration) -> np.ndarray:
    """The mean of ``trace`` and ``retrace`` aligned onto it; the trace's own where the retrace did not see a
    column (a pair registered far apart can leave no column to share)."""
    retrace_seen = seen(registration.warp, trace.shape[1])
    return np.where(retrace_seen, 0.5 * (trace + align(retrace, registration)), trace)


def pass_outputs(trace: np.ndarray, retrace: np.ndarray, ratio: float, one_pass: Backend, two_pass: Backend) -> dict[str, np.ndarray]:
    """The four methods' published frames of one scan (the retrace in the trace's orientation; ``ratio``: its speed
    over the trace's), each as ``maed denoise`` publishes it."""
    out_trace = denoise_guarded(trace, one_pass, other_pass=retrace).data.astype(np.float64)
    out_retrace = denoise_guarded(retrace, one_pass, other_pass=trace).data.astype(np.float64)
    # Registered between the two outputs, which the network has freed of their noise and of most of the feedback lag.
    levelled_trace, levelled_retrace = out_trace - fit_plane(out_trace), out_retrace - fit_plane(out_retrace)
    registration = register(levelled_trace, levelled_retrace, ratio)
    mean = mean_on_trace(out_trace, out_retrace, registration)
    # Both outputs moved to where the tip really was, as the two-pass model's input is, and by the same rule: in the
    # trace's frame where the registration could be a period off (maed.registration.two_pass_input).
    midway = period_ambiguity(levelled_trace, levelled_retrace) <= AMBIGUOUS
    return {
        ONE_PASS: out_trace,
        MEAN: mean,
        MIDWAY_MEAN: midway_mean(out_trace, out_retrace, registration)[0] if midway else mean,
        TWO_PASS: denoise_guarded(trace, two_pass, other_pass=retrace, ratio=ratio).data.astype(np.float64),
    }
