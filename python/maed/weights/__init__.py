"""Trained weights shipped with the package (float16 state dicts, loaded by ``maed.model.checkpoint``)."""
