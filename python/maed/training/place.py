"""Where this process stands among ``torchrun``'s copies of one command, from the environment alone.

Torch-free, so that the command line can ask it of any command: under ``torchrun`` every copy runs the same
command, and a message for the user (a mistake, a Ctrl-C) is said once, by the first.
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
