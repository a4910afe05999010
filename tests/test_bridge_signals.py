"""``maed serve`` stops on SIGINT or SIGTERM, saving the open scan, even when started with SIGINT ignored, and once:
the signals that follow while it saves are ignored."""

import json
import signal
import time

import numpy as np
from served_bridge import Served, free_ports, saved_folders, wait_for

from maed.bridge.sources import LinePusher

ROWS = 8


def _serve_an_open_scan(out, ignore_sigint=False) -> Served:
    """A bridge in a process of its own with the first ``ROWS`` lines of a scan of 16 received, the scan still open."""
    served = Served(out, free_ports(4))
    served.start(ignore_sigint=ignore_sigint)
    pusher = LinePusher(served.pull)
    try:
        pusher.start("open", 16, 32, (1e-8, 1e-8))
        for row, line in enumerate(np.random.default_rng(0).standard_normal((ROWS, 32)).astype("<f4")):
            pusher.line("open", row, line)
        wait_for(lambda: (s := served.status()) and s["lines_received"] == ROWS, 30, "the lines did not arrive")
    finally:
        pusher.close()
    return served


def _saved_open_scan(out) -> dict:
    (folder,) = saved_folders(out)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["scan"] == "open" and meta["end"]["complete"] is False and meta["rows_done"]["trace"] == ROWS
    return meta


def test_sigint_stops_a_bridge_started_with_sigint_ignored_and_the_open_scan_is_saved(tmp_path):
    """A shell starts a background job (``maed serve &``, a CI runner's step) with SIGINT ignored; Python then
    installs no handler of its own, and ``kill -INT`` left such a bridge running for good."""
    out = tmp_path / "scans"
    served = _serve_an_open_scan(out, ignore_sigint=True)
    log = served.stop(signal.SIGINT)
    assert served.process.returncode is not None, log
    _saved_open_scan(out)


def test_a_second_sigterm_while_the_bridge_saves_is_ignored_and_the_open_scan_is_saved(tmp_path):
    """``timeout`` sends its SIGTERM to the process and to its group, a service manager may send another: raised while
    the bridge saved the open scan, the second one cut the save short (a journal left, the user not told) or aborted
    the process inside the network."""
    out = tmp_path / "scans"
    served = _serve_an_open_scan(out)
    served.process.send_signal(signal.SIGTERM)
    time.sleep(0.05)  # the first is being acted on: the bridge saves
    log = served.stop(signal.SIGTERM)
    assert served.process.returncode == 0, log
    assert log.count("maed: stopping (SIGTERM): saving the open scan") == 1, log  # said once, for the first
    _saved_open_scan(out)
    assert not (out / ".journal").exists(), log


def test_ctrl_c_at_any_moment_of_a_command_start_up_says_so_in_one_line():
    """Importing the command line takes a second or two; a Ctrl-C then printed the import's traceback."""
    import subprocess
    import sys

    command = [sys.executable, "-c", "import sys; from maed.console import main; sys.exit(main())"]
    for after_s in (0.3, 0.8, 1.5):
        process = subprocess.Popen(
            [*command, "control", "status", "--connect", "tcp://127.0.0.1:1", "--timeout", "30"],
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(after_s)
        process.send_signal(signal.SIGINT)
        err = process.communicate(timeout=60)[1]
        assert process.returncode == 130 and err.strip().splitlines()[-1] == "maed: stopped (Ctrl-C)", (after_s, err)
        assert "Traceback" not in err, (after_s, err)
