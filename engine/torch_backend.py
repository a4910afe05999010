"""PyTorch back end: the reference implementation, on the GPU where one is present."""

from __future__ import annotations

import numpy as np
import torch

from maed.model import passes_taken
from maed.model.checkpoint import load_model, model_name, weights_file, weights_sha256
from maed.zoo import PRODUCT


class TorchBackend:
    def __init__(self, model: str = PRODUCT, device: str | None = None, threads: int | None = None) -> None:
        if threads is not None:
            torch.set_num_threads(threads)  # process-wide: torch has no per-model thread pool
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.net, card = load_model(model)
        self.net.to(self.device)
        self.model = model_name(model)
        self.name = f"torch-{self.device.type}"
        self.size_multiple = self.net.size_multiple
        self.max_batch = 1
        self.passes = passes_taken(self.net)
        self.levelling = card["levelling"]
        self.path = weights_file(model)
        """The checkpoint it runs."""
        self.weights_sha256 = weights_sha256(self.path)
        self.adapted_from = card.get("adapted_from")

    @torch.inference_mode()
    def denoise(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        return self.net(x).cpu().numpy()
