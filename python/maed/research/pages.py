"""What the ``maed eval`` pages say of how they were made: the command that writes them again."""

from __future__ import annotations

from pathlib import Path

RESULTS = "docs/results"
"""Where ``maed eval`` writes its pages unless ``--out`` says otherwise (the repository's own pages)."""


def regenerate(command: str, out_dir: Path, options: str = "") -> str:
    """The page's last words: ``command`` with ``options`` (those set away from their defaults) and, where the page
    was written elsewhere than ``RESULTS``, the same ``--out``: run again from the repository's root without it, the
    command would write over the repository's own page."""
    out = "" if Path(out_dir) == Path(RESULTS) else f" --out {out_dir}"
    return f"regenerate with `{command}{options}{out}`"
