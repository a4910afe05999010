"""The denoising networks: MAED-CNN (blocks, U-Net decoder, configurations) and the paper's baselines."""

from .maed_cnn import CONFIGS, MAEDCNN, ModelConfig, count_parameters, passes_taken
from .registry import ARCHITECTURES, build_model

__all__ = ["MAEDCNN", "ModelConfig", "CONFIGS", "ARCHITECTURES", "build_model", "count_parameters", "passes_taken"]
