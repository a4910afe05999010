"""docs/nanonis.md, command for command: its ``sh test`` blocks run as written, in order, in a fresh folder,
against ``maed sim-nanonis`` on loopback, and what the page says happens is checked.

``maed sim-nanonis`` and ``maed serve`` run until the page says to press Ctrl-C (``<!-- doc-test: ctrl-c ... -->``,
SIGINT here); every other command runs to its end. ``<!-- doc-test: preview -->`` opens the preview as the page
tells the reader to. The page uses the default ports (6501, 5570 to 5573, 5580): where another program holds
one, the test skips and says which.
"""

import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from served_bridge import wait_for

from maed.bridge.simulated import SIM_SEED_BASE, simulated_frames

DOC = Path(__file__).resolve().parents[1] / "docs" / "nanonis.md"
STEP = re.compile(r"^```sh test\n(.*?)^```$|<!-- doc-test: (.*?) -->", re.S | re.M)
PORTS = (6501, 5570, 5571, 5572, 5573, 5580)
SIZE = 256  # maed sim-nanonis's default frame, as the page says
LONG_RUNNING = ("maed sim-nanonis", "maed serve")

pytestmark = pytest.mark.slow


def doc_steps(text):
    """The page's steps in order: ("run", command line) for each line of an ``sh test`` block, ("do", what)."""
    steps = []
    for match in STEP.finditer(text):
        if match.group(2) is not None:
            steps.append(("do", match.group(2).strip()))
            continue
        for line in match.group(1).splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                steps.append(("run", line.strip()))
    return steps


def test_every_shell_block_of_the_page_is_run_by_this_test():
    fences = re.findall(r"^```(\S*)([^\n]*)$", DOC.read_text(), re.M)
    shell = [(lang, rest.strip()) for lang, rest in fences if lang in ("sh", "bash", "shell", "console", "powershell")]
    assert shell and all(rest == "test" for _, rest in shell), f"a shell block of {DOC.name} is not marked `sh test`"


class Running:
    """A long-running command of the page, started by a shell as the reader's terminal would, its stderr kept."""

    def __init__(self, line, cwd, env):
        self.line = line
        self.process = subprocess.Popen(
            ["bash", "-c", f"exec {line}"], cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def said(self, pattern):
        return next((m for m in map(re.compile(pattern).search, list(self.lines)) if m), None)

    def wait_said(self, pattern, timeout):
        def seen():
            assert self.process.poll() is None or self.said(pattern), f"{self.line} exited:\n" + "\n".join(self.lines)
            return self.said(pattern)

        return wait_for(seen, timeout, f"{self.line!r} did not say {pattern!r}")

    def interrupt(self, timeout=60):
        """Ctrl-C: SIGINT to the program; its exit status."""
        self.process.send_signal(signal.SIGINT)
        status = self.process.wait(timeout)
        self.reader.join(10)  # every line it wrote is read
        return status


def _ports_in_use():
    busy = []
    for port in PORTS:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind: TIME_WAIT is no owner
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                busy.append(port)
    return busy


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as reply:
            return reply.status, reply.headers.get_content_type(), reply.read()
    except urllib.error.HTTPError as refused:
        return refused.code, None, b""


def _sim_frames(count):
    """The first ``count`` frames maed sim-nanonis scans by default: their Z trace, as Nanonis sends it."""
    make = simulated_frames(SIM_SEED_BASE)
    return [next(c for c in make(k, SIZE, False).channels if c.name == "Z (m)").forward for k in range(count)]


def test_the_nanonis_first_hour_runs_as_written(tmp_path):
    busy = _ports_in_use()
    if busy:
        pytest.skip(f"docs/nanonis.md uses the default ports; another program holds {busy} on 127.0.0.1")
    steps = doc_steps(DOC.read_text())
    env = {k: v for k, v in os.environ.items() if k != "MAED_PREVIEW_TOKEN"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # maed and python of this venv
    env["OMP_NUM_THREADS"] = "1"
    running: dict[str, Running] = {}
    done: list[str] = []
    try:
        for kind, what in steps:
            if kind == "run" and what.startswith(LONG_RUNNING):
                name = what.split()[1]
                running[name] = Running(what, tmp_path, env)
                _started(name, running[name])
            elif kind == "run":
                result = subprocess.run(["bash", "-c", what], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
                assert result.returncode == 0, f"{what}:\n{result.stdout}{result.stderr}"
                _ran(what, result.stdout, tmp_path, running)
            elif what == "preview":
                _preview(running["serve"])
            elif what.startswith("ctrl-c "):
                name = what.removeprefix("ctrl-c ")
                _stopped(name, running[name], running[name].interrupt(), tmp_path)
            else:
                raise AssertionError(f"unknown doc-test step {what!r}")
            done.append(what)
    finally:
        for process in running.values():
            if process.process.poll() is None:
                process.process.kill()
                process.process.wait(10)
    # The walk-through covers the whole loop: controller, bridge, preview, status, frames, stop, what was saved.
    assert ["python" if d.startswith("python ") else d for d in done] == [
        "maed sim-nanonis",
        "maed serve --source nanonis --out first-hour",
        "preview",
        "maed control status",
        "maed listen --count 3",
        "ctrl-c serve",
        "ls first-hour/*/",
        "python",
        "ctrl-c sim-nanonis",
    ]


def _started(name, process):
    if name == "sim-nanonis":
        process.wait_said(
            r"maed: simulated Nanonis controller on 127\.0\.0\.1:6501: scanning simulated 256x256 surfaces "
            r"at 20 lines/s, continuously; Ctrl-C to stop",
            60,
        )
    else:
        process.wait_said(r"^maed: following the scans of Nanonis at 127\.0\.0\.1:6501, channel Z \(m\)$", 60)
        process.wait_said(
            r"^maed: bridge up: lines in tcp://127\.0\.0\.1:5570, frames out tcp://127\.0\.0\.1:5571, "
            r"control tcp://127\.0\.0\.1:5572, acks tcp://127\.0\.0\.1:5573; model \S+ on \S+; scans saved "
            r"to first-hour$",
            60,
        )
        process.wait_said(r"^maed: live preview at http://127\.0\.0\.1:5580/\?token=\S+$", 60)
        # A scan under way is followed from where it is.
        process.wait_said(rf"^maed: nanonis: following scan nanonis-\S+: Z \(m\), {SIZE} x {SIZE}, down$", 60)


def _preview(serve):
    url = serve.said(r"live preview at (\S+)").group(1)
    status, kind, page = _get(url)
    assert (status, kind) == (200, "text/html") and b"MAED-RT live preview" in page
    base = url.split("?")[0]
    assert _get(base)[0] == 401, "a page opened without the token is refused"
    token = url.split("token=")[1]
    # The page's frames: raw and denoised of the followed scan, rows arriving.
    status, _, blob = _get(f"{base}api/frames?after=0&token={token}")
    assert status == 200
    (length,) = struct.unpack("<I", blob[:4])
    header = json.loads(blob[4 : 4 + length])
    assert header["scan"].startswith("nanonis-") and header["rows_done"] > 0


def _ran(line, out, folder, running):
    if line == "maed control status":
        status = json.loads(out)
        assert status["ok"] and status["state"] == "scanning" and status["scan"].startswith("nanonis-")
        assert status["rows_done"] > 0 and status["lines_received"] > 0 and status["lines_dropped"] == 0
    elif line == "maed listen --count 3":
        lines = out.splitlines()
        assert len(lines) == 3 and all(re.match(r"\S+ nanonis-\S+ seq=\d+ ", m) for m in lines), out
    elif line == "ls first-hour/*/":
        for name in ("raw_trace.npy", "raw_retrace.npy", "denoised.npy", "meta.json"):
            assert name in out.split(), out
    elif line.startswith("python "):
        last = sorted(folder.glob("first-hour/*/meta.json"))[-1]
        end = json.loads(last.read_text())["end"]
        assert out.strip() == str(end) == "{'complete': False, 'reason': 'end', 'why': 'source_stopped'}"
    else:
        raise AssertionError(f"docs/nanonis.md runs {line!r}, which this test does not check")


def _stopped(name, process, status, folder):
    assert status == 130, "\n".join(process.lines)  # Ctrl-C: maed's exit status after KeyboardInterrupt
    if name != "serve":
        return
    said = "\n".join(process.lines)
    assert re.search(r"^maed: scan 'nanonis-\S+' saved to first-hour/nanonis-\S+ \(end\)$", said, re.M), said
    assert said.splitlines()[-1] == "maed: stopped (Ctrl-C)", said
    # Stopping leaves every saved raw scan whole: each line Nanonis scanned is there, as it sent it, none torn;
    # the scan stopped mid-frame has its lines up to the stop and NaN after them.
    folders = sorted(p for p in (folder / "first-hour").iterdir() if not p.name.startswith("."))
    frames = _sim_frames(len(folders) + 2)  # a scan joined mid-frame, then one per frame
    for saved in folders:
        meta = json.loads((saved / "meta.json").read_text())
        raw = np.load(saved / "raw_trace.npy")
        rows = meta["rows_done"]["trace"]
        assert raw.shape == (SIZE, SIZE) and rows > 0 and meta["lines_dropped"] == 0
        assert np.isfinite(raw[:rows]).all() and np.isnan(raw[rows:]).all()
        assert any(np.array_equal(raw[:rows], frame[:rows]) for frame in frames), f"{saved.name}: rows not as scanned"
        assert meta["end"]["complete"] == (rows == SIZE)
    assert not json.loads((folders[-1] / "meta.json").read_text())["end"]["complete"]
