"""``maed train`` under ``torchrun``: several processes (gloo on the CPU) train the model one process trains."""

import itertools
import os
import subprocess
import sys

import pytest
import torch

from maed.model import build_model
from maed.model.checkpoint import load_checkpoint
from maed.training.dataset import batch_seeds
from maed.training.place import is_main_process
from maed.training.processes import start


def _batches(batch_size: int, world: int, workers: int, count: int) -> list[list[int]]:
    """The seeds of the first ``count`` batches, as the processes and their data workers draw them together."""
    share = batch_size // world
    streams = {
        (rank, worker): batch_seeds(100, batch_size, rank, world, worker, workers) for rank in range(world) for worker in range(workers)
    }
    batches = []
    for batch in range(count):
        worker = batch % workers  # DataLoader takes each worker's batches in turn
        batches.append([seed for rank in range(world) for seed in itertools.islice(streams[rank, worker], share)])
    return batches


@pytest.mark.parametrize(("world", "workers"), [(2, 1), (4, 1), (2, 3)])
def test_every_batch_holds_the_samples_one_process_draws(world, workers):
    one = _batches(8, 1, 1, 6)
    assert one[0] == list(range(100, 108)) and one[5] == list(range(140, 148))
    assert _batches(8, world, workers, 6) == one


def test_a_batch_that_does_not_split_between_the_processes_is_refused_before_they_connect(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(ValueError, match="does not split evenly between 3"):
        start(8)  # no rendezvous was set up: reaching it would fail otherwise
    assert not torch.distributed.is_initialized()


def test_the_process_that_reports_is_the_one_training_places_first(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("RANK", "1")  # some launchers set a rank without a world: one process, which reports
    placed = start(4)
    assert is_main_process() and placed.main and placed.world == 1
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert not is_main_process()


def _train(tmp_path, name: str, launcher: list[str], *more: str) -> subprocess.CompletedProcess:
    options = "--model pmrid --steps 3 --epoch-steps 3 --batch-size 4 --patch 32 --workers 0 --lr 3e-3 --seed 5".split()
    return subprocess.run(
        [*launcher, "-m", "maed.cli", "train", *options, "--out", str(tmp_path / name), *more],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""},  # gloo between CPU processes, on any machine
    )


def test_two_processes_train_what_one_process_trains(tmp_path):
    # PMRID has no batch norm, whose statistics are each process's own: its gradients average to one process's.
    one = _train(tmp_path, "one", [sys.executable])
    two = _train(tmp_path, "two", [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"])
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("final validation PSNR") == 1  # the first process reports, once
    assert "2 training processes (cpu), 2 samples of each batch apiece" in two.stdout + two.stderr
    first, second = load_checkpoint(tmp_path / "one" / "last.pt"), load_checkpoint(tmp_path / "two" / "last.pt")
    assert second["step"] == 3 and second["processes"] == 2
    torch.manual_seed(5)
    start = build_model("pmrid").state_dict()
    moved = max(float((first["model"][k].float() - start[k].float()).abs().max()) for k in start)
    apart = max(float((first["model"][k].float() - second["model"][k].float()).abs().max()) for k in start)
    assert apart < 1e-3 * moved
    assert second["history"][-1]["psnr_out"] == pytest.approx(first["history"][-1]["psnr_out"], abs=1e-3)


def test_a_mistake_under_torchrun_is_said_once(tmp_path):
    """Every copy of the command printed it."""
    two = _train(
        tmp_path, "two", [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"], "--real-fraction", "2"
    )
    assert two.returncode != 0
    assert two.stderr.count("maed: error: --real-fraction must be between 0 and 1, got 2.0") == 1, two.stderr
