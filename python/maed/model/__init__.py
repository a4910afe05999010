"""MAED-CNN model definition: blocks, U-Net decoder, the full network and its named configurations."""

from .maed_cnn import CONFIGS, MAEDCNN, ModelConfig, build_model, count_parameters

__all__ = ["MAEDCNN", "ModelConfig", "CONFIGS", "build_model", "count_parameters"]
