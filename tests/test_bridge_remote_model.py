"""A remote set_model loads shipped names and regular files inside the models folder, nothing else."""

import os

import pytest
from fake_backends import NamedBackend

from maed.bridge.control_client import request
from maed.bridge.remote_model import remote_model
from maed.bridge.server import Bridge, BridgeConfig


@pytest.fixture
def models(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "mine.pt").write_bytes(b"weights")
    (folder / "sub").mkdir()
    (folder / "sub" / "other.onnx").write_bytes(b"onnx")
    (tmp_path / "outside.pt").write_bytes(b"not for remote use")
    (folder / "link.pt").symlink_to(tmp_path / "outside.pt")
    os.mkfifo(folder / "fifo.pt")
    (folder / "notes.txt").write_text("hello")
    return folder


def test_remote_model_takes_shipped_names_and_files_inside_the_folder(models):
    assert remote_model("rt", None) == "rt" and remote_model("maed", models) == "maed"
    assert remote_model("mine.pt", models) == str(models.resolve() / "mine.pt")
    assert remote_model("sub/other.onnx", models) == str(models.resolve() / "sub" / "other.onnx")
    assert remote_model(str(models / "mine.pt"), models) == str(models.resolve() / "mine.pt")
    refused = {
        "mine.pt": (None, "--models DIR"),
        "../outside.pt": (models, "outside the models folder"),
        "link.pt": (models, "outside the models folder"),  # a link out is followed, then refused
        "/etc/passwd": (models, "outside the models folder"),
        "fifo.pt": (models, "not a regular file"),  # never opened: a FIFO would block the control thread
        "sub": (models, "not a model file"),
        "notes.txt": (models, "not a model file"),
        "gone.pt": (models, "does not exist"),
        "no-such-model": (None, "no shipped model named 'no-such-model'"),
        "a\0b.pt": (models, "NUL"),
    }
    for model, (folder, reason) in refused.items():
        with pytest.raises(ValueError, match=reason):
            remote_model(model, folder)


def test_set_model_over_the_control_socket_answers_each_refusal_in_one_line(models, tmp_path):
    loaded = []

    def loader(backend, model):
        loaded.append(model)
        return NamedBackend(model)

    config = BridgeConfig(pull_port=0, pub_port=0, control_port=0, out=tmp_path / "scans", models=models)
    with Bridge(config, backend=NamedBackend("start"), loader=loader) as bridge:
        ep = bridge.endpoints["control"]
        reply = request(ep, {"cmd": "set_model", "model": "mine.pt"}, timeout=5)
        assert reply["ok"] and loaded == [str(models.resolve() / "mine.pt")]
        for model in ("fifo.pt", "../outside.pt", "link.pt"):
            reply = request(ep, {"cmd": "set_model", "model": model}, timeout=5)
            assert reply["ok"] is False and "\n" not in reply["error"] and model in reply["error"]
        assert len(loaded) == 1  # nothing refused reached the loader
        assert request(ep, {"cmd": "status"})["model"] == str(models.resolve() / "mine.pt")
