"""The C subscriber in bridge/clients/ (a thin user of libmaed_client, on libzmq), built and run against a live bridge."""

import re
import shutil
import subprocess
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq
from fake_backends import IdentityBackend

from maed.bridge.server import Bridge, BridgeConfig
from maed.data import make_pair

CLIENTS = Path(__file__).resolve().parents[1] / "bridge" / "clients"
CC = shutil.which("cc") or shutil.which("gcc")
HEADERS = Path("/usr/include/zmq.h").exists()


@pytest.fixture(scope="module")
def subscriber(tmp_path_factory):
    if CC is None or not HEADERS:
        pytest.skip("needs a C compiler and libzmq3-dev (make test installs them)")
    binary = tmp_path_factory.mktemp("c") / "maed_subscriber"
    subprocess.run(
        [
            CC,
            "-std=c11",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-I",
            str(CLIENTS / "include"),
            "-o",
            str(binary),
            str(CLIENTS / "maed_subscriber.c"),
            *sorted(map(str, (CLIENTS / "lib").glob("*.c"))),
            "-lzmq",
            "-lpthread",
            "-lm",
        ],
        check=True,
    )
    return binary


def test_c_subscriber_reads_frames_from_a_live_bridge(subscriber, tmp_path):
    rows, cols = 48, 40
    image = make_pair(21, 48).noisy[:, :cols].astype("<f4")
    config = BridgeConfig(pull_port=0, pub_port=0, control_port=0, out=tmp_path / "scans")
    with Bridge(config, backend=IdentityBackend()) as bridge:
        client = subprocess.Popen(
            [str(subscriber), bridge.endpoints["pub"], "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        time.sleep(0.5)  # the subscription reaches the bridge
        push = zmq.Context.instance().socket(zmq.PUSH)
        push.connect(bridge.endpoints["pull"])
        seq = iter(range(10**6))
        push.send_multipart(
            [
                b"scan.start",
                msgpack.packb(
                    {
                        "v": 2,
                        "scan": "c-client",
                        "seq": next(seq),
                        "rows": rows,
                        "cols": cols,
                        "channel": "Z",
                        "unit": "m",
                        "range": [1e-8, 1e-8],
                        "slow_axis": "down",
                    }
                ),
            ]
        )
        for row in range(rows):
            push.send_multipart(
                [
                    b"line",
                    msgpack.packb(
                        {
                            "v": 2,
                            "scan": "c-client",
                            "seq": next(seq),
                            "row": row,
                            "pass": "trace",
                            "t": 0.0,
                            "dtype": "<f4",
                            "shape": [cols],
                        }
                    ),
                    image[row].tobytes(),
                ]
            )
            time.sleep(0.005)
        push.send_multipart([b"scan.end", msgpack.packb({"v": 2, "scan": "c-client", "seq": next(seq), "complete": True})])
        out, err = client.communicate(timeout=30)
        push.close(linger=0)
    assert client.returncode == 0, err
    lines = out.splitlines()
    assert lines[-1].startswith("scan.finished scan=c-client") and "complete=1" in lines[-1] and "reason=end" in lines[-1]
    # Alerts (the simulated scan draws tip jumps and scars) are checked by the next test.
    fields = [dict(re.findall(r"(\w+)=(\S+)", line)) | {"topic": line.split()[0]} for line in lines[:-1] if not line.startswith("alert ")]
    assert {f["topic"] for f in fields} == {"frame.raw", "frame.denoised"} and {f["pass"] for f in fields} == {"trace"}
    live = [f for f in fields if f["topic"] == "frame.denoised" and f["final"] == "0"]
    assert live and all(int(f["finite"]) == int(f["rows_done"]) * cols for f in live)
    final_raw = next(f for f in fields if f["topic"] == "frame.raw" and f["final"] == "1")
    assert int(final_raw["finite"]) == rows * cols
    assert float(final_raw["mean"]) == pytest.approx(float(image.astype(np.float64).mean()), rel=1e-5)


def test_c_subscriber_prints_alerts(subscriber, tmp_path):
    """A lost row and a repeated line, pushed to a live bridge, come to the C client as alerts."""
    from maed.bridge.sources import LinePusher

    image = make_pair(22, 48).noisy.astype("<f4")
    config = BridgeConfig(pull_port=0, pub_port=0, control_port=0, out=tmp_path / "scans")
    with Bridge(config, backend=IdentityBackend()) as bridge:
        client = subprocess.Popen(
            [str(subscriber), bridge.endpoints["pub"], "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        time.sleep(0.5)  # the subscription reaches the bridge
        pusher = LinePusher(bridge.endpoints["pull"])
        pusher.start("c-alerts", 48, 48, (1e-8, 1e-8))
        for row in range(48):
            if row != 20:  # lost on the way
                pusher.line("c-alerts", row, image[row - 1] if row == 30 else image[row])  # row 30 repeats 29
        pusher.end("c-alerts")
        pusher.close()
        out, err = client.communicate(timeout=30)
    assert client.returncode == 0, err
    alerts = [dict(re.findall(r"(\w+)=(\S+)", line)) for line in out.splitlines() if line.startswith("alert ")]
    found = {(a["kind"], int(a["row"])) for a in alerts}
    assert {("line_missing", 20), ("line_repeated", 30)} <= found
    assert all(a["scan"] == "c-alerts" and a["severity"] in ("info", "warning", "critical") for a in alerts)


@pytest.mark.parametrize(
    "v, says",
    [
        (1, "protocol version 1; this client speaks version 2"),
        (True, "without an integer protocol version"),
        (2.0, "without an integer protocol version"),
    ],
)
def test_c_subscriber_refuses_another_protocol_version(subscriber, v, says):
    """A bridge of another version (here a hand-made publisher) gets a one-line refusal and exit 1."""
    pub = zmq.Context.instance().socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    client = subprocess.Popen([str(subscriber), f"tcp://127.0.0.1:{port}", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        header = {"v": v, "scan": "old", "seq": 0, "complete": True, "reason": "end", "rows_done": 1, "saved": ""}
        for _ in range(100):  # until the subscription is through
            if client.poll() is not None:
                break
            pub.send_multipart([b"scan.finished", msgpack.packb(header)])
            time.sleep(0.05)
        out, err = client.communicate(timeout=10)
    finally:
        pub.close(linger=0)
    assert client.returncode == 1 and out == ""
    assert says in err and len(err.splitlines()) == 1


def test_c_subscriber_with_keys_reads_a_keyed_bridge_and_without_gets_nothing(subscriber, tmp_path):
    from maed.bridge.keys import ClientKeys, ServerKeys, write_key_pair
    from maed.bridge.sources import LinePusher

    write_key_pair(tmp_path, "bridge")
    write_key_pair(tmp_path / "clients", "labview")
    keys = ServerKeys.load(tmp_path / "bridge.key_secret", tmp_path / "clients")
    config = BridgeConfig(pull_port=0, pub_port=0, control_port=0, out=tmp_path / "scans", keys=keys)
    with Bridge(config, backend=IdentityBackend()) as bridge:
        pub = bridge.endpoints["pub"]
        keyed = subprocess.Popen(
            [
                str(subscriber),
                "--secret-key",
                str(tmp_path / "clients" / "labview.key_secret"),
                "--server-key",
                str(tmp_path / "bridge.key"),
                pub,
                "1",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        keyless = subprocess.Popen([str(subscriber), pub, "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)  # the handshake and the subscription reach the bridge
        pusher = LinePusher(
            bridge.endpoints["pull"], keys=ClientKeys.load(tmp_path / "clients" / "labview.key_secret", tmp_path / "bridge.key")
        )
        pusher.start("keyed", 16, 16, (1e-8, 1e-8))
        for row in range(16):
            pusher.line("keyed", row, np.full(16, row, "<f4"))
        pusher.end("keyed")
        pusher.close()
        out, err = keyed.communicate(timeout=30)
        time.sleep(0.3)
        keyless.kill()
        nothing, _ = keyless.communicate(timeout=10)
    assert keyed.returncode == 0, err
    assert out.splitlines()[-1].startswith("scan.finished scan=keyed") and "frame.raw" in out
    assert nothing == ""  # the keyless subscriber never got past the handshake


@pytest.mark.parametrize("count", ["abc", "0", "-1", "2x", "99999999999"])
def test_c_subscriber_refuses_a_count_that_is_no_number_of_scans(subscriber, count):
    done = subprocess.run([str(subscriber), "tcp://127.0.0.1:5571", count], capture_output=True, text=True, timeout=10)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() in (
        f"maed_subscriber: COUNT must be a whole number of scans from 1 to 1000000, got '{count}'",
        "usage: maed_subscriber [--secret-key FILE --server-key FILE] [ENDPOINT [COUNT]]",  # "-1" reads as an option
    )
