"""Training on several processes: ``torchrun --nproc_per_node=N -m maed.cli train ...``.

``torchrun`` starts N copies of the same command and tells each its place (``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, and where rank 0 listens: ``MASTER_ADDR``, ``MASTER_PORT``). Each copy then computes the gradient
of its share of every batch and ``DistributedDataParallel`` averages the gradients before the step, so every copy
holds the same weights: gloo between CPU processes, NCCL between GPUs (one per process). Run without
``torchrun``, training is one process, as before, and nothing here starts a process group.

The batch (``--batch-size``) stays the whole step's batch, split evenly between the processes, and each process
draws its own samples of it (``dataset.batch_seeds``): a run on N processes draws the samples a run on one process
draws, step by step. Each process's loss is the mean over its share, so the averaged gradients are the whole
batch's where the loss is a mean over samples. Two things differ from one process: batch-norm statistics are each
process's own, over its share of the batch, on GPUs as on the CPU (the usual ``DistributedDataParallel`` way; the
running statistics saved are the first process's), which concerns the MAED-CNN configurations and DnCNN; and
HCANet's global gradient term is a norm over the whole batch, not a mean. Networks with neither (PMRID, RIDNet,
CBDNet, PDA-Net) train the same on N processes as on one, up to rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from .place import env_int


@dataclass(frozen=True)
class Processes:
    """This process's place among the training processes."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        """Whether this process validates, logs and writes the checkpoints."""
        return self.rank == 0

    def share(self, batch_size: int) -> int:
        """This process's part of a batch of ``batch_size`` samples."""
        if batch_size % self.world:
            raise ValueError(f"--batch-size {batch_size} does not split evenly between {self.world} training processes")
        return batch_size // self.world


def start(batch_size: int) -> Processes:
    """This process's place, from ``torchrun``'s environment, with the process group started where there are
    several: NCCL where CUDA is present (each process on the GPU of its ``LOCAL_RANK``), else gloo. A
    ``batch_size`` that does not split between the processes, or a process without a GPU of its own, is refused
    before any process group starts."""
    world = env_int("WORLD_SIZE", 1)
    Processes(world=world).share(batch_size)
    cuda = torch.cuda.is_available()
    if world == 1:
        return Processes(device=torch.device("cuda" if cuda else "cpu"))
    rank, local = env_int("RANK", 0), env_int("LOCAL_RANK", 0)
    if cuda and local >= torch.cuda.device_count():
        raise ValueError(
            f"training process {local} of this machine has no GPU of its own ({torch.cuda.device_count()} visible): "
            "start as many processes per machine as it has GPUs (--nproc_per_node), or hide them "
            "(CUDA_VISIBLE_DEVICES=) to train on CPU processes"
        )
    if cuda:
        torch.cuda.set_device(local)
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return Processes(rank=rank, world=world, device=torch.device(f"cuda:{local}" if cuda else "cpu"))


def wrap(module: torch.nn.Module, processes: Processes) -> torch.nn.Module:
    """``module`` with its gradients averaged over the processes where there are several, else itself."""
    if processes.world == 1:
        return module
    ids = [processes.device.index] if processes.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)


def shared(value: object, processes: Processes) -> object:
    """``value`` as the main process holds it, on every process (each process passes its own; only the main
    process's counts)."""
    if processes.world == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def mean_over(value: torch.Tensor, processes: Processes) -> float:
    """The mean of a scalar tensor over the processes (the whole batch's loss, each holding its share's)."""
    value = value.detach().clone()
    if processes.world > 1:
        dist.all_reduce(value)
        value /= processes.world
    return float(value)


def finish(processes: Processes) -> None:
    """Stop the process group, where one was started."""
    if processes.world > 1:
        dist.destroy_process_group()
