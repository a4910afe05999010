"""Package discovery across the design card's top-level folders (metadata lives in pyproject.toml).

``python/maed`` is the package ``maed``, ``engine/`` is ``maed.engine`` and ``bridge/`` is
``maed.bridge``; every sub-package under them is found, so a new one cannot be left out of the wheel.

``MAED_WEIGHTS=product`` builds a wheel with the product's weights alone (``PRODUCT_WEIGHTS``, about 9 MB
instead of 57: for a Jetson or a controller PC); the paper's baselines then stay out, and naming one says so.
"""

import os
from pathlib import Path

from setuptools import find_packages, setup

ROOTS = {"maed": "python/maed", "maed.engine": "engine", "maed.bridge": "bridge"}
PRODUCT_WEIGHTS = ("rt-plane", "rt")
"""``maed.zoo.PRODUCT`` and ``rt``, the alternative ``maed denoise --model`` offers (tests/test_wheel.py checks that
a product-only wheel denoises with its default model)."""
WEIGHTS = Path(__file__).parent / "python" / "maed" / "weights"

choice = os.environ.get("MAED_WEIGHTS", "all")
if choice not in ("all", "product"):
    raise SystemExit(f"MAED_WEIGHTS must be all or product, got {choice!r}")
left_out = [] if choice == "all" else sorted(
    p.name for p in WEIGHTS.iterdir() if p.suffix in (".pt", ".onnx") and p.stem not in PRODUCT_WEIGHTS)

setup(
    package_dir=ROOTS,
    packages=[p for name, root in ROOTS.items() for p in (name, *(f"{name}.{sub}" for sub in find_packages(root)))],
    exclude_package_data={"maed.weights": left_out},
)
