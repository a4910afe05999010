"""Saved scans: safe folder names, no overwriting, complete folders, metadata JSON whatever the controller sent."""

import json

import numpy as np

from maed.bridge.store import folder_name, save_scan


def test_scan_ids_become_safe_folder_names():
    assert folder_name("../../etc/passwd") == "_.._etc_passwd"
    assert folder_name("scan 7: Si(111)") == "scan_7__Si_111_"
    assert folder_name("...") == "scan" and folder_name("a" * 500) == "a" * 120
    # Names Windows refuses for a folder: its devices, with or without an extension, and a trailing dot.
    assert folder_name("CON") == "_CON" and folder_name("nul.txt") == "_nul.txt" and folder_name("com1") == "_com1"
    assert folder_name("scan.") == "scan" and folder_name("CONSOLE") == "CONSOLE"


def test_a_repeated_scan_id_gets_a_new_folder_and_odd_metadata_is_kept_as_text(tmp_path):
    frame = np.arange(6, dtype=np.float32).reshape(2, 3)
    first = save_scan(tmp_path, "s", {"raw_trace": frame}, {"start": {"blob": b"\x00\x01"}})
    second = save_scan(tmp_path, "s", {"raw_trace": frame}, {})
    assert (first.name, second.name) == ("s", "s-2")
    assert np.load(first / "raw_trace.npy").tobytes() == frame.tobytes()
    assert json.loads((first / "meta.json").read_text())["start"]["blob"] == str(b"\x00\x01")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s", "s-2"]  # no partial folders left


def test_numbers_that_are_not_finite_are_null_in_the_saved_json(tmp_path):
    """A controller's NaN angle or infinite line rate: ``NaN`` and ``Infinity`` are no JSON, and strict readers (jq,
    JavaScript) refused the whole meta.json (found by fuzzing the bridge)."""
    start = {
        "angle": float("nan"),
        "line_rate": float("inf"),
        "center": [-float("inf"), 0.0],
        "bias": np.float32(np.nan),
        "z": np.float32(0.5),
    }
    folder = save_scan(tmp_path, "s", {}, {"start": start})
    text = (folder / "meta.json").read_text()
    assert "NaN" not in text and "Infinity" not in text and "nan" not in text
    assert json.loads(text)["start"] == {"angle": None, "line_rate": None, "center": [None, 0.0], "bias": None, "z": 0.5}
    assert [p.name for p in folder.iterdir()] == ["meta.json"]  # a scan without lines: its record alone
