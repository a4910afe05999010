"""Training MAED-CNN on simulated STM pairs (``maed train``)."""

from .trainer import TrainConfig, train

__all__ = ["TrainConfig", "train"]
