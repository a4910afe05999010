"""CURVE on every socket of the bridge, on real sockets: key files, allowed and refused clients, the loopback rule."""

import contextlib
import os
import stat
import threading
import time

import numpy as np
import pytest
import zmq

from maed.bridge.control_client import request
from maed.bridge.keys import ClientKeys, ServerKeys, read_allow_list, read_secret_key, write_key_pair
from maed.bridge.listen import listen
from maed.bridge.server import Bridge, BridgeConfig
from maed.bridge.sources import LinePusher
from maed.cli import main

CTX = zmq.Context.instance()


class FlatBackend:
    name = model = "flat"
    size_multiple = 16

    def denoise(self, batch):
        return batch


@pytest.fixture(scope="module")
def keyfiles(tmp_path_factory):
    """Key pairs: the bridge, an allowed client (its public key in clients/) and a stranger."""
    root = tmp_path_factory.mktemp("keys")
    write_key_pair(root, "bridge")
    write_key_pair(root / "clients", "lab-pc")
    (root / "clients" / "lab-pc.key_secret").rename(root / "lab-pc.key_secret")
    write_key_pair(root, "stranger")
    return root


def client(keyfiles, name):
    return ClientKeys.load(keyfiles / f"{name}.key_secret", keyfiles / "bridge.key")


@pytest.fixture
def keyed(keyfiles, tmp_path):
    keys = ServerKeys.load(keyfiles / "bridge.key_secret", keyfiles / "clients")
    config = BridgeConfig(pull_port=0, pub_port=0, control_port=0, out=tmp_path / "scans", keys=keys)
    with Bridge(config, backend=FlatBackend()) as bridge:
        yield bridge


def subscriber(endpoint, keys=None):
    sub = CTX.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    if keys is not None:
        keys.apply(sub)
    sub.connect(endpoint)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    return sub


def push_scan(endpoint, keys, scan, rows=16, cols=16):
    pusher = LinePusher(endpoint, CTX, keys=keys)
    pusher.start(scan, rows, cols, (1e-8, 1e-8))
    for row in range(rows):
        pusher.line(scan, row, np.full(cols, row, "<f4"))
    pusher.end(scan)
    pusher.close()


def test_maed_keys_writes_a_secret_only_its_owner_reads_and_a_public_key_others_may(tmp_path, capsys):
    umask = os.umask(0o022)  # the usual one; restored below
    try:
        assert main(["keys", "bridge", "--out", str(tmp_path)]) == 0
    finally:
        os.umask(umask)
    assert stat.S_IMODE(os.stat(tmp_path / "bridge.key_secret").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "bridge.key").st_mode) == 0o644  # a LabVIEW service's account reads it
    public, secret = read_secret_key(tmp_path / "bridge.key_secret")
    assert read_allow_list(tmp_path / "bridge.key") == {public} and len(secret) == 40
    assert main(["keys", "bridge", "--out", str(tmp_path)]) == 2  # never overwritten
    assert "exists" in capsys.readouterr().err.splitlines()[-1]
    assert main(["listen", "--secret-key", str(tmp_path / "bridge.key_secret")]) == 2  # --server-key missing
    assert main(["listen", "--secret-key", str(tmp_path / "bridge.key"), "--server-key", str(tmp_path / "bridge.key")]) == 2
    assert "no secret key" in capsys.readouterr().err


def test_an_allowed_client_works_and_one_without_keys_gets_nothing(keyed, keyfiles):
    lab = client(keyfiles, "lab-pc")
    ep = keyed.endpoints
    plain_sub, keyed_sub = subscriber(ep["pub"]), subscriber(ep["pub"], lab)
    time.sleep(0.3)  # both subscriptions reach the bridge (the keyed one after its handshake)
    with contextlib.suppress(ConnectionError):  # lines without keys: never taken, dropped or refused a connection
        push_scan(ep["pull"], None, "plain")
    with pytest.raises(ValueError, match="no reply"):
        request(ep["control"], {"cmd": "status"}, timeout=0.5)
    push_scan(ep["pull"], lab, "keyed")
    assert keyed.wait_finished(1, 10)
    topics = []
    while keyed_sub.poll(1000):
        topic, *_ = keyed_sub.recv_multipart()
        topics.append(topic)
        if topic == b"scan.finished":
            break
    assert b"frame.raw" in topics and topics[-1] == b"scan.finished"
    assert not plain_sub.poll(300)  # the bridge published all that, and sent the keyless subscriber none of it
    status = request(ep["control"], {"cmd": "status"}, keys=lab)
    assert status["ok"] and status["lines_received"] == 16 and status["scans_finished"] == 1
    printed = []
    listener = threading.Thread(target=listen, args=(ep["pub"],), kwargs={"scans": 1, "emit": printed.append, "keys": lab}, daemon=True)
    listener.start()
    time.sleep(0.3)
    push_scan(ep["pull"], lab, "listened")
    listener.join(10)
    assert printed[-1].startswith("scan.finished listened")
    plain_sub.close()
    keyed_sub.close()


def test_a_key_not_on_the_allow_list_is_refused(keyed, keyfiles):
    stranger = client(keyfiles, "stranger")
    ep = keyed.endpoints
    sub = subscriber(ep["pub"], stranger)
    time.sleep(0.3)
    # Refused at the handshake: what was queued before it is dropped, what comes after finds no connection.
    with contextlib.suppress(ConnectionError):
        push_scan(ep["pull"], stranger, "stranger")
    with pytest.raises(ValueError, match="no reply"):
        request(ep["control"], {"cmd": "pause"}, keys=stranger, timeout=0.5)
    assert not sub.poll(300)
    status = request(ep["control"], {"cmd": "status"}, keys=client(keyfiles, "lab-pc"))
    assert status["lines_received"] == 0 and status["paused"] is False
    sub.close()


def test_maed_control_talks_to_a_keyed_bridge(keyed, keyfiles, capsys):
    args = [
        "control",
        "status",
        "--connect",
        keyed.endpoints["control"],
        "--secret-key",
        str(keyfiles / "lab-pc.key_secret"),
        "--server-key",
        str(keyfiles / "bridge.key"),
    ]
    assert main(args) == 0 and '"ok": true' in capsys.readouterr().out
    assert main(args[:4] + ["--timeout", "0.3"]) == 2  # without keys: no reply, one line
    assert capsys.readouterr().err.count("\n") == 1


def test_binding_beyond_loopback_needs_keys_or_insecure(keyfiles, tmp_path, capsys):
    with pytest.raises(ValueError, match="--insecure"):
        BridgeConfig(host="0.0.0.0")
    assert main(["serve", "--host", "0.0.0.0", "--no-preview", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--insecure" in err
    BridgeConfig(host="0.0.0.0", keys=ServerKeys.load(keyfiles / "bridge.key_secret", keyfiles / "clients"))
    config = BridgeConfig(host="0.0.0.0", pull_port=0, pub_port=0, control_port=0, out=tmp_path, insecure=True)
    with Bridge(config, backend=FlatBackend()) as bridge:  # starts, briefly, on every interface
        assert bridge.endpoints["control"].startswith("tcp://0.0.0.0:")
        assert request(bridge.endpoints["control"].replace("0.0.0.0", "127.0.0.1"), {"cmd": "info"})["ok"]


def test_in_process_clients_of_a_keyed_bridge_use_its_own_keys(keyed):
    """The simulated source and the preview connect with the bridge's key pair, which is not on the allow-list."""
    from maed.bridge.preview import Preview
    from maed.bridge.simulated import SimulatedController

    assert keyed.config.keys.public not in keyed.config.keys.clients
    with Preview(keyed.endpoints["pub"], port=0, status=keyed.status, keys=keyed.client_keys) as preview:
        time.sleep(0.3)
        sim = SimulatedController(size=16, line_rate=400.0, scans=1, retrace=False)
        sim.run(keyed.endpoints["pull"], threading.Event(), keyed.client_keys)
        assert keyed.wait_finished(1, 10)
        deadline = time.monotonic() + 5
        while not preview.board.header.get("ended") and time.monotonic() < deadline:
            time.sleep(0.05)
    assert preview.board.header["scan"] == sim.scanned[0].scan and preview.board.header["ended"]


@pytest.mark.parametrize(
    ("who", "said"),
    [
        (None, "the bridge there has keys (CURVE): give --secret-key and --server-key"),
        ("stranger", "the bridge there does not allow this key: add its NAME.key to the bridge's --client-keys"),
        ("wrong server key", "the handshake with the bridge there failed: does it have keys, and is --server-key its NAME.key?"),
    ],
)
def test_a_listener_the_bridge_refuses_is_told_why_instead_of_waiting_in_silence(keyed, keyfiles, who, said):
    keys = {
        None: None,
        "stranger": client(keyfiles, "stranger"),
        "wrong server key": ClientKeys.load(keyfiles / "lab-pc.key_secret", keyfiles / "stranger.key"),
    }[who]
    told, printed = [], []
    listener = threading.Thread(
        target=listen,
        args=(keyed.endpoints["pub"],),
        kwargs={"count": 1, "emit": printed.append, "keys": keys, "on_refused": told.append},
        daemon=True,
    )
    listener.start()
    deadline = time.monotonic() + 10
    while not told and time.monotonic() < deadline:
        time.sleep(0.05)
    # A plain listener's first reason may be the no-detail one under load; either names the keys it lacks.
    assert told and printed == [] and (told[0].startswith(said) or (who is None and "--secret-key and --server-key" in told[0]))
    time.sleep(0.5)  # ZeroMQ retries the connection: each reason is said once (under load a vague one may come first)
    assert len(told) == len(set(told)) <= 2
    push_scan(keyed.endpoints["pull"], client(keyfiles, "lab-pc"), "after")  # ends the listener: its count is 1 message...
    listener.join(0.5)  # ...which it never gets: it is a daemon thread and goes with the test process


def test_a_listener_with_keys_is_told_a_bridge_without_keys_has_none(tmp_path, keyfiles):
    config = BridgeConfig(pull_port=0, pub_port=0, control_port=0, out=tmp_path / "scans")
    told = []
    with Bridge(config, backend=FlatBackend()) as bridge:
        listener = threading.Thread(
            target=listen,
            args=(bridge.endpoints["pub"],),
            kwargs={"count": 1, "emit": print, "keys": client(keyfiles, "lab-pc"), "on_refused": told.append},
            daemon=True,
        )
        listener.start()
        deadline = time.monotonic() + 10
        plain = "the bridge there has no keys: listen without --secret-key and --server-key"
        while plain not in told and time.monotonic() < deadline:
            time.sleep(0.05)
    assert plain in told and len(told) == len(set(told))  # each reason once (the failed CURVE handshake's may come first)
