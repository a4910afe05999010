"""MAED-RT: real-time MAED-CNN denoising of scanning tunnelling microscope scans."""

__version__ = "0.1.0"
