"""The ZeroMQ bridge: scan lines in, denoised frames out while the scan runs (``maed.bridge``)."""
