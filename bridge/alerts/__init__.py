"""Scan-health alerts, per line as it arrives: tip changes, scars, feedback ringing, crashes, lost lines; and per
finished scan, drift from the last scan of its area (``drift``).

numpy and scipy only (the acquisition side imports no torch). ``HealthMonitor`` follows one scan: each line
goes in with its row and pass, and findings come out, debounced (one per event, not per line),
each with the figures that support it. The detectors work from the raw line against the lines
before and after it (robust statistics: medians and MADs of line differences), so most decisions
wait for one more line: an alert comes at most two line periods after its line arrived. Lines a worker behind the
line rate could not judge are judged when their scan is over (``late_findings``).
"""

from .finding import KINDS, SEVERITY, Finding
from .monitor import HealthMonitor, late_findings, late_rows, scan_findings

__all__ = ["KINDS", "SEVERITY", "Finding", "HealthMonitor", "late_findings", "late_rows", "scan_findings"]
