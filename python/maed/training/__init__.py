"""Training the denoisers on simulated STM pairs (``maed train``).

``train`` is imported on first use: ``TrainConfig`` (and so the command line's defaults) must
be readable where torch is not installed.
"""

from .config import TrainConfig

__all__ = ["TrainConfig", "train"]


def __getattr__(name: str):
    if name == "train":
        from .trainer import train

        return train
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
