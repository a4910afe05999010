"""Start-up recovery: what a killed bridge left in its output folder, rebuilt before a line is taken.

1. ``.partial`` folders (a save killed half-way) are removed: a journal is deleted only after its
   scan's folder is renamed into place and synced, so the journal is still there and complete.
2. Every journal left (scans a killed bridge had not saved), oldest first, is read back (a torn
   last record cut off) and replayed into the ingest state machine: a journal with its
   ``scan.end`` gives a finished scan, saved at once; one without is resumed as the open scan when
   it is the newest (its lines are taken again, its resent lines are duplicates) and superseded,
   so saved at once, otherwise. A resumed scan then ends by the usual rules (PROTOCOL.md, "Scans").

The resumed scan's header and lines are handed back (``Recovered.resumed``): a source in the bridge's
own process (the Nanonis source) died with it and re-grabs the controller's frame, and needs them to
tell whether that frame is the resumed scan, and which of its rows the bridge has.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from .ingest import Ingest
from .journal import Journal, JournalFile, read_journal
from .protocol import Line, ProtocolError, ScanStart, decode_ingest
from .store import remove_partials

log = logging.getLogger("maed.bridge")

UNREADABLE = ".unreadable"


@dataclass(frozen=True)
class Recovered:
    """What start-up recovery found."""

    scans: int
    """Scans rebuilt from their journals."""
    partials_removed: int
    resumed: tuple[ScanStart, list[Line]] | None = None
    """The scan resumed as the open one (its journal had no ``scan.end``) and its lines, as journaled."""


def _free_name(path: Path) -> Path:
    """``path``, or ``path`` with a number where that name is taken (an earlier unreadable journal of the same name)."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.{n}")
    return candidate


def recover(out: Path, journal: Journal, ingest: Ingest) -> Recovered:
    """Clean ``.partial`` leftovers in ``out`` and replay every journal left into ``ingest``."""
    removed = remove_partials(out)
    for path in removed:
        log.info("removed %s, left by a save that did not finish (its scan is saved again from its journal)", path)
    scans = 0
    last: list[list[bytes]] = []
    for path in journal.leftovers():
        records = read_journal(path)
        if not records:  # killed between creating the file and writing its scan.start: nothing was accepted
            path.unlink()
            continue
        journal_file = JournalFile(path)
        try:
            ingest.replay(journal_file, records, time.perf_counter())
        except ProtocolError as exc:
            # Kept, under a name recovery skips: raw data is never deleted because it could not be read. Closed
            # first: Windows renames no open file.
            journal_file.close()
            path.rename(_free_name(path.with_name(path.name + UNREADABLE)))
            log.error("journal %s cannot be replayed (%s); kept as %s%s", path, exc, path.name, UNREADABLE)
            continue
        scans += 1
        last = records
        log.info("recovered scan from %s: %d records", path.name, len(records))
    resumed = None
    if ingest.current is not None and last:  # the newest journal replayed, and it had no scan.end
        messages = [decode_ingest(frames) for frames in last]
        resumed = (messages[0], [m for m in messages[1:] if isinstance(m, Line)])
    return Recovered(scans, len(removed), resumed)
