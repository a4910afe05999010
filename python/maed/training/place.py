"""Where this process stands among ``torchrun``'s copies of one command, and on the machine's cores, from the
environment alone.

Torch-free, so that the command line can ask it of any command: under ``torchrun`` every copy runs the same
command, and a message for the user (a mistake, a Ctrl-C) is said once, by the first. ``free_threads``: how many
threads the cores other work leaves free can run.
"""

from __future__ import annotations

import os


def env_int(name: str, default: int) -> int:
    """The whole number ``torchrun`` set in ``name``; ``default`` where it is not set."""
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a whole number (set by torchrun)") from None


def is_main_process() -> bool:
    """Whether this is the first (or only) training process, as ``processes.start`` places it."""
    return env_int("WORLD_SIZE", 1) == 1 or env_int("RANK", 0) == 0


def free_threads(cores: int, load: float) -> int:
    """Threads for torch on ``cores`` cores where other work keeps ``load`` of them busy (the 1-minute load average,
    read before this command's own work): the cores left, at least 1. Torch's threads that share a busy core wait on
    each other at every operation: with one of 2 cores busy, a training step of ``rt`` on 4 crops of 96 pixels took
    0.52 s on 2 threads and 0.15 s on 1 (0.09 s on 2 with the cores idle; 2-core VM, 2026-12-07)."""
    return max(1, min(cores, cores - round(load)))
