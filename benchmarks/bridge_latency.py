"""End-to-end latency of the bridge: a line pushed in, the first denoised rows covering it out.

The bridge runs as ``maed serve`` in its own process, as in the lab; this process is the
controller (pushing a simulated scan, trace and retrace, at ``--rate`` lines per second, following
PROTOCOL.md) and a subscriber. For every row it measures the time from the push of its trace line
to the arrival of the first ``frame.rows`` (the denoised rows of an update: every update sends one, while
the whole frames go out at a capped rate) whose ``rows_done`` covers it, on this machine's clock, and
prints p50 / p95 with the bridge's own ``status`` latency (newest line's arrival to publish).

    python benchmarks/bridge_latency.py --size 256 --rate 200 [--backend onnx] [--scans 3]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import msgpack
import numpy as np
import zmq

from maed.data import make_pair
from maed.data.pairs import TEST_SEED_BASE
from maed.zoo import PRODUCT


def start_bridge(args: argparse.Namespace, out: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    command = [
        sys.executable,
        "-m",
        "maed.cli",
        "serve",
        "--pull-port",
        "0",
        "--pub-port",
        "0",
        "--control-port",
        "0",
        "--ack-port",
        "0",
        "--no-preview",
        "--out",
        str(out),
        "--backend",
        args.backend,
        "--model",
        args.model,
    ]
    bridge = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    for line in bridge.stderr:
        match = re.search(r"lines in (\S+), frames out (\S+), control ([^\s,;]+)", line)
        if match:
            threading.Thread(target=lambda: [None for _ in bridge.stderr], daemon=True).start()  # keep draining
            return bridge, dict(zip(("pull", "pub", "control"), (m.rstrip(",") for m in match.groups())))
    raise SystemExit(f"the bridge did not start (exit status {bridge.wait()})")


def run_scan(endpoints: dict[str, str], image: np.ndarray, rate: float, scan: str) -> list[float]:
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.connect(endpoints["pub"])
    sub.setsockopt(zmq.SUBSCRIBE, b"frame.rows")
    sub.setsockopt(zmq.SUBSCRIBE, b"scan.finished")
    time.sleep(0.5)
    arrivals: list[tuple[float, int]] = []
    done = threading.Event()

    def receive() -> None:
        while True:
            topic, header, *_ = sub.recv_multipart()
            h = msgpack.unpackb(header)
            if h["scan"] != scan:
                continue
            if topic == b"scan.finished":
                done.set()
                return
            arrivals.append((time.perf_counter(), h["rows_done"]))

    listener = threading.Thread(target=receive, daemon=True)
    listener.start()
    push = ctx.socket(zmq.PUSH)
    push.connect(endpoints["pull"])
    rows, cols = image.shape
    pushed = np.zeros(rows)
    seq = 0

    def send(topic: bytes, header: dict, payload: np.ndarray | None = None) -> None:
        nonlocal seq
        frames = [topic, msgpack.packb({"v": 2, "scan": scan, "seq": seq, **header})]
        push.send_multipart(frames + ([payload.astype("<f4").tobytes()] if payload is not None else []))
        seq += 1

    send(b"scan.start", {"rows": rows, "cols": cols, "channel": "Z", "unit": "m", "range": [2e-8, 2e-8], "slow_axis": "down"})
    t0 = time.perf_counter()
    for row in range(rows):
        time.sleep(max(0.0, t0 + (row + 0.5) / rate - time.perf_counter()))
        pushed[row] = time.perf_counter()
        send(b"line", {"row": row, "pass": "trace", "t": time.time(), "dtype": "<f4", "shape": [cols]}, image[row])
        time.sleep(max(0.0, t0 + (row + 1) / rate - time.perf_counter()))
        send(b"line", {"row": row, "pass": "retrace", "t": time.time(), "dtype": "<f4", "shape": [cols]}, image[row])
    send(b"scan.end", {"complete": True})
    done.wait(60)
    push.close(linger=1000)
    sub.close(linger=0)
    latencies = []
    for row in range(rows):
        first = next((t for t, rows_done in arrivals if rows_done > row), None)
        if first is not None:
            latencies.append((first - pushed[row]) * 1e3)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rate", type=float, default=200.0, help="lines per second (trace + retrace)")
    parser.add_argument("--scans", type=int, default=3)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--model", default=PRODUCT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        bridge, endpoints = start_bridge(args, Path(out))
        try:
            latencies = []
            for k in range(args.scans):
                image = make_pair(TEST_SEED_BASE + 700_000 + k, args.size).noisy.astype("<f4")
                latencies += run_scan(endpoints, image, args.rate, f"bench-{k}")
            req = zmq.Context.instance().socket(zmq.REQ)
            req.connect(endpoints["control"])
            req.send(msgpack.packb({"cmd": "status"}))
            status = msgpack.unpackb(req.recv())
            req.close()
        finally:
            bridge.terminate()
            bridge.wait(30)
    p50, p95 = np.percentile(latencies, [50, 95])
    print(
        f"{args.scans} scans {args.size}x{args.size} at {args.rate:g} lines/s, {status['model']} on {status['backend']}: "
        f"line push -> first denoised rows covering it p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {max(latencies):.1f} ms "
        f"over {len(latencies)} rows; bridge update latency p50 {status['latency_ms']['p50']} ms, "
        f"p95 {status['latency_ms']['p95']} ms over {status['latency_ms']['count']} frames"
    )


if __name__ == "__main__":
    main()
