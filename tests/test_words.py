"""One word per meaning: ``pass`` (trace, retrace) for the fast-axis pass, ``slow_axis`` (up, down) for
the order of the rows. ``direction`` meant both in version 1 of the wire protocol, and ``dir``/``fwd``/
``bwd`` the first; none of them may come back.

Every line of the bridge, the ``maed`` package and the user docs that says ``direction`` must be one
of the few below, each with what it means; an entry that no longer matches fails too, so the list
cannot rot. Folders other issues are reworking now are left out and named, not silently skipped.
"""

import dataclasses
import inspect
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "bridge", ROOT / "python" / "maed"]
DOCS = [ROOT / "README.md", ROOT / "docs" / "bridge.md", ROOT / "docs" / "architecture.md", ROOT / "docs" / "streaming.md"]
SUFFIXES = {".py", ".md", ".html", ".c", ".h", ""}
ELSEWHERE: list[str] = []
"""Folders left out of the word checks (none: the scan files' API names the pass too)."""

ALLOWED = {
    # path: substrings of the lines that may say "direction", and what they mean there
    "python/maed/cli.py": (["--direction", "deprecated_direction"], "the deprecated alias of maed denoise --pass, which says so when used"),
    "bridge/commands.py": (["--direction", "deprecated_direction"], "the deprecated alias of --slow-axis, which says so when used"),
    "python/maed/classical.py": (
        ["along their own direction", "direction follows them"],
        "the geometry of a streak in the image, neither pass nor slow axis",
    ),
    "bridge/NANONIS.md": (
        ["Nanonis calls data direction", "Nanonis calls scan direction", "(Nanonis: scan direction)"],
        "the vendor's own names of its arguments, each mapped to pass or slow axis",
    ),
    "README.md": (["the old `--direction` still works"], "the deprecated alias, named as such"),
    "python/maed/scanfiles/nanonis.py": (["Direction"], "the .sxm header's own column name, read and mapped to the pass"),
    "docs/bridge.md": (["--direction is a deprecated alias"], "the deprecated alias, named as such"),
}
OLD_WORDS = re.compile(r"\b(fwd|bwd)\b|[\"']dir[\"']")


def _files():
    for base in SOURCES:
        for path in sorted(base.rglob("*")):
            rel = path.relative_to(ROOT).as_posix()
            if (
                path.is_file()
                and path.suffix in SUFFIXES
                and "__pycache__" not in rel
                and not any(rel == e or rel.startswith(e + "/") for e in ELSEWHERE)
            ):
                yield rel, path.read_text(errors="replace")
    for path in DOCS:
        yield path.relative_to(ROOT).as_posix(), path.read_text()


def _without_change_list(rel, text):
    """PROTOCOL.md's list of changes from version 1 names the old words on purpose."""
    if rel != "bridge/PROTOCOL.md":
        return text
    start = text.index("## Changes from version 1")
    return text[:start] + text[text.index("\n## ", start + 1) :]


def test_direction_is_said_only_where_listed():
    found = {}
    for rel, text in _files():
        for number, line in enumerate(_without_change_list(rel, text).splitlines(), 1):
            if "direction" in line.lower():
                found.setdefault(rel, []).append((number, line.strip()))
    unexplained = [
        f"{rel}:{n}: {line}"
        for rel, lines in found.items()
        for n, line in lines
        if not any(s in line for s in ALLOWED.get(rel, ([], ""))[0])
    ]
    assert not unexplained, "'direction' where pass (trace/retrace) or slow_axis (up/down) is meant:\n" + "\n".join(unexplained)
    stale = [f"{rel}: {s!r}" for rel, (subs, _) in ALLOWED.items() for s in subs if not any(s in line for _, line in found.get(rel, []))]
    assert not stale, "allowed lines that no longer exist; drop them from ALLOWED:\n" + "\n".join(stale)


def test_version_1_words_are_gone():
    hits = [
        f"{rel}:{n}: {line.strip()}"
        for rel, text in _files()
        for n, line in enumerate(_without_change_list(rel, text).splitlines(), 1)
        if OLD_WORDS.search(line)
    ]
    assert not hits, "version 1's dir/fwd/bwd:\n" + "\n".join(hits)


def test_the_checks_see_what_they_look_for(tmp_path):
    """The scan covers the files that matter, and the patterns catch what they should."""
    files = dict(_files())
    assert {
        "bridge/protocol.py",
        "bridge/PROTOCOL.md",
        "bridge/clients/maed_subscriber.c",
        "bridge/static/preview.html",
        "python/maed/cli.py",
        "python/maed/denoise.py",
        "python/maed/denoise_files.py",
        "README.md",
    } <= set(files)
    assert OLD_WORDS.search('{"dir": "fwd"}') and OLD_WORDS.search("h.dir == 'bwd'") and not OLD_WORDS.search("dirs")
    assert "`dir`" in files["bridge/PROTOCOL.md"] and "`dir`" not in _without_change_list("bridge/PROTOCOL.md", files["bridge/PROTOCOL.md"])


def test_the_scanfiles_api_names_the_pass():
    from maed.scanfiles import ChannelImage, read_channel

    assert "direction" not in inspect.signature(read_channel).parameters
    assert "direction" not in {f.name for f in dataclasses.fields(ChannelImage)}
