"""What a detector found: the alert's kind, place, severity and evidence, before it goes on the wire."""

from __future__ import annotations

from dataclasses import dataclass, field

KINDS = ("tip_change", "scar", "ringing", "crash", "line_missing", "line_repeated", "drift")
"""Every kind of alert (``bridge/PROTOCOL.md``, topic ``alert``)."""

SEVERITY = {
    "tip_change": "warning",  # the rest of the scan is imaged by another tip
    "scar": "info",  # one line spoiled over a few pixels
    "ringing": "warning",  # the feedback's gains want a look
    "crash": "critical",  # Z at its limit: the tip may be in the surface
    "line_missing": "warning",
    "line_repeated": "warning",
    "drift": "warning",  # features moved between frames: what spans two frames is off by as much
}


@dataclass(frozen=True)
class Finding:
    """One alert: frame ``row``, ``columns`` ``[start, stop)``, the pass it was seen in, and its figures."""

    kind: str
    row: int
    columns: tuple[int, int]
    pass_: str
    evidence: dict = field(default_factory=dict)

    @property
    def severity(self) -> str:
        return SEVERITY[self.kind]

    def as_dict(self) -> dict:
        """The alert as saved in ``meta.json``: the wire's fields and the pass."""
        return {
            "kind": self.kind,
            "row": self.row,
            "columns": list(self.columns),
            "severity": self.severity,
            "pass": self.pass_,
            "evidence": dict(self.evidence),
        }
