"""The live preview: its HTTP API, and the page itself in a real headless chromium against a live bridge."""

import json
import shutil
import struct
import subprocess
import time
import urllib.error
import urllib.request

import msgpack
import numpy as np
import pytest
import zmq
from scipy import ndimage

from maed.bridge.preview import Preview
from maed.bridge.server import Bridge, BridgeConfig
from maed.data import make_pair

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


class BlurBackend:
    name = model = "blur"
    size_multiple = 16
    weights_sha256 = "feedc0de" * 8

    def denoise(self, batch):
        return ndimage.uniform_filter(batch, size=(1, 1, 5, 5), mode="reflect")


def push_scan(endpoint, scan, image, rate, slow_axis="down"):
    """Push ``image`` as a scan, following PROTOCOL.md only."""
    push = zmq.Context.instance().socket(zmq.PUSH)
    push.connect(endpoint)
    rows, cols = image.shape
    seq = 0

    def send(topic, header, payload=None):
        nonlocal seq
        frames = [topic, msgpack.packb({"v": 2, "scan": scan, "seq": seq, **header})]
        push.send_multipart(frames + ([payload.astype("<f4").tobytes()] if payload is not None else []))
        seq += 1

    send(b"scan.start", {"rows": rows, "cols": cols, "channel": "Z", "unit": "m", "range": [2e-8, 2e-8], "slow_axis": slow_axis})
    order = range(rows) if slow_axis == "down" else range(rows - 1, -1, -1)
    for row in order:
        time.sleep(1 / rate)
        send(b"line", {"row": row, "pass": "trace", "t": time.time(), "dtype": "<f4", "shape": [cols]}, image[row])
    send(b"scan.end", {"complete": True})
    push.close(linger=2000)


@pytest.fixture
def live(tmp_path):
    config = BridgeConfig(pull_port=0, pub_port=0, control_port=0, out=tmp_path / "scans")
    with Bridge(config, backend=BlurBackend()) as bridge:
        with Preview(bridge.endpoints["pub"], port=0, status=bridge.status) as preview:
            time.sleep(0.3)  # the preview's subscription reaches the bridge
            yield bridge, preview


def fetch(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


def api(preview, path):
    """The URL of ``path`` (with its query) on ``preview``, carrying the token."""
    return preview.base_url + path + ("&" if "?" in path else "?") + f"token={preview.token}"


def test_the_api_serves_the_newest_frames(live):
    bridge, preview = live
    status, page = fetch(preview.url)
    assert status == 200 and b"MAED-RT live preview" in page
    image = make_pair(8, 32).noisy.astype("<f4")
    push_scan(bridge.endpoints["pull"], "api", image, rate=500, slow_axis="up")
    assert bridge.wait_finished(1, 30)
    version, header = 0, {}
    while not header.get("ended"):  # the preview may still be reading the last messages
        status, blob = fetch(api(preview, f"api/frames?after={version}"))
        assert status == 200
        n = struct.unpack("<I", blob[:4])[0]
        header = json.loads(blob[4 : 4 + n])
        version = header["version"]
    assert n % 4 == 0 and header["scan"] == "api" and header["final"] and header["slow_axis"] == "up"
    raw = np.frombuffer(blob[4 + n : 4 + n + 4 * 32 * 32], "<f4").reshape(32, 32)
    assert raw.tobytes() == image.tobytes()
    status, body = fetch(api(preview, f"api/frames?after={header['version']}"))
    assert status == 204  # nothing newer within the poll time
    assert json.loads(fetch(api(preview, "api/status"))[1])["scans_finished"] == 1
    with pytest.raises(urllib.error.HTTPError) as info:
        fetch(api(preview, "nothing-here"))
    assert info.value.code == 404
    # A page left open across a restart of a bridge that kept its token asks after a version the new one has not
    # reached: it gets the newest frames at once (it froze on the old scan, answered 204, until the count passed).
    status, blob = fetch(api(preview, f"api/frames?after={version + 1000}"))
    assert status == 200 and json.loads(blob[4 : 4 + struct.unpack("<I", blob[:4])[0]])["version"] == version


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make test installs Debian's chromium)")
def test_the_page_draws_the_growing_scan_in_a_headless_browser(live, tmp_path, monkeypatch):
    bridge, preview = live
    # The detectors get none of the bridge's time: what they judge only once the scan has ended is listed as such.
    monkeypatch.setattr("maed.bridge.worker.HEALTH_SHARE", 0.0)
    monkeypatch.setattr("maed.bridge.worker.HEALTH_CARRY_S", 0.0)
    browser = subprocess.Popen(
        [
            CHROMIUM,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--remote-debugging-port=0",
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--window-size=1400,1000",
            preview.url + "&selftest=1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not preview.board.reports and time.monotonic() < deadline:  # the page is up and polling
            push_scan(bridge.endpoints["pull"], f"warm-{time.monotonic()}", np.ones((16, 16), "<f4"), rate=2000)
            time.sleep(0.5)
        assert preview.board.reports, "the page never reported a drawn frame"
        rows = cols = 64
        image = make_pair(9, rows).noisy.astype("<f4")
        image[40] = image[39]  # a repeated line: the scan-health alert the page must mark and list
        image[12, 20:44] += 40 * np.std(np.diff(image, axis=0))  # a scar, found once the scan has ended
        push_scan(bridge.endpoints["pull"], "browser", image, rate=100)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            mine = [r for r in preview.board.reports if r["header"]["scan"] == "browser"]
            # Until the scan is finished: the final raw frame comes before the final denoised one.
            if mine and mine[-1]["header"].get("ended"):
                break
            time.sleep(0.1)
    finally:
        browser.terminate()
        browser.wait(10)
    growing = [r for r in mine if not r["header"]["final"]]
    assert growing, "the page drew no frame while the scan ran"
    for r in growing:  # the scanned rows carry colour, the rest the 'not scanned' colour
        assert r["filled"]["raw"] == r["header"]["rows_done"] * cols
    final = mine[-1]
    assert final["filled"] == {"raw": rows * cols, "denoised": rows * cols}
    assert final["text"]["scan"] == "browser" and final["text"]["rows"] == f"{rows} / {rows}"
    assert final["text"]["latency"].endswith(" ms") and final["text"]["scale"].endswith(" nm")
    # The trust guard's verdict of the final frame, its figures, the model and the short weights hash.
    trust = final["header"]["trust"]
    text = final["text"]
    assert trust["rows_done"] == rows and text["trust_at"] == f"at {rows} / {rows} rows"
    assert text["trust"].split(" ")[0] == trust["output"] in ("network", "blend", "fallback")
    assert text["reasons"] == "".join(trust["reasons"])
    figures = trust["figures"]
    assert text["whiteness"] == f"{figures['whiteness_x']:.3f} / {figures['whiteness_y']:.3f}"
    assert text["structure"].startswith(f"{figures['structure']:+.3f}")
    assert text["invented"].startswith("peaks ") and text["invented"].endswith(" %") and text["kept"] and text["weights"] == "feedc0defeed"
    assert any(r["text"]["trust"] == "no verdict yet" for r in growing)  # before the guard's first verdict
    # Scan health: one margin mark and one list entry per alert, the repeated line among them.
    alerts = final["header"]["alerts"]
    assert any(a["kind"] == "line_repeated" and a["row"] == 40 for a in alerts)
    assert text["marks"] == len(alerts) == len(text["alerts"])
    assert any(entry.startswith("line_repeated @ row 40 ") for entry in text["alerts"])
    assert any(a["kind"] == "scar" and a["row"] == 12 and a["evidence"]["late"] == 1 for a in alerts), alerts
    assert any(entry.startswith("scar @ row 12 (found at the scan's end) ") for entry in text["alerts"]), text["alerts"]
