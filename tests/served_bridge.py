"""Helpers of the bridge tests that run ``maed serve`` in a process of its own (journal, kill -9, the C library):
free loopback ports, waiting for a condition, the bridge process and its saved scans."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import zmq

CTX = zmq.Context.instance()


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def saved_folders(out):
    return sorted(p for p in Path(out).iterdir() if p.is_dir() and not p.name.startswith("."))


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} within {timeout} s")


def stopped(pid):
    """Whether every thread of ``pid`` has stopped: a signal is delivered, not obeyed, when kill returns."""
    tasks = Path(f"/proc/{pid}/task")
    return all((task / "stat").read_text().rsplit(")", 1)[1].split()[0] in "tT" for task in tasks.iterdir())


class Served:
    """``maed serve`` in a process of its own, on fixed ports (a restart takes the same ones); ``extra``: more
    of its options."""

    def __init__(self, out, ports, extra=()):
        self.out, self.ports, self.extra = out, ports, extra
        self.pull, self.pub, self.control, self.ack = (f"tcp://127.0.0.1:{p}" for p in ports)
        self.process = None

    def start(self, ignore_sigint=False):
        """Start it and wait for its first status; ``ignore_sigint``: as a shell starts a background job."""
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        command = [
            sys.executable,
            "-c",
            "from maed.cli import main; raise SystemExit(main())",
            "serve",
            "--no-preview",
            "--backend",
            "onnx",
            "--pull-port",
            str(self.ports[0]),
            "--pub-port",
            str(self.ports[1]),
            "--control-port",
            str(self.ports[2]),
            "--ack-port",
            str(self.ports[3]),
            "--out",
            str(self.out),
            *self.extra,
        ]
        ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=ignore)
        return wait_for(self.status, 60, "the bridge did not answer status")

    def status(self):
        req = CTX.socket(zmq.REQ)
        req.setsockopt(zmq.LINGER, 0)
        req.setsockopt(zmq.RCVTIMEO, 300)
        req.connect(self.control)
        try:
            req.send(msgpack.packb({"cmd": "status"}))
            return msgpack.unpackb(req.recv())
        except zmq.Again:
            assert self.process.poll() is None, self.process.stderr.read().decode()
            return None
        finally:
            req.close()

    def stop(self, signum):
        """Send ``signum``, wait for the exit and return what the bridge wrote to stderr (read while waiting: a
        bridge blocked on a full pipe would never exit)."""
        self.process.send_signal(signum)
        return self.process.communicate(timeout=60)[1].decode()
