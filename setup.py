"""Package discovery across the design card's top-level folders (metadata lives in pyproject.toml).

``python/maed`` is the package ``maed``, ``engine/`` is ``maed.engine`` and ``bridge/`` is
``maed.bridge``; every sub-package under them is found, so a new one cannot be left out of the wheel.

``MAED_WEIGHTS=product`` builds a wheel with the product's weights alone (``PRODUCT_WEIGHTS``, about 9 MB
instead of 57: for a Jetson or a controller PC); the paper's baselines then stay out, and naming one says so.
"""

import os
import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

ROOTS = {"maed": "python/maed", "maed.engine": "engine", "maed.bridge": "bridge"}
PRODUCT_WEIGHTS = ("rt-plane", "rt", "rt-both")
"""``maed.zoo.PRODUCT``, ``rt``, the alternative ``maed denoise --model`` offers, and ``rt-both``, the two-pass model of
``--pass both`` (tests/test_wheel.py checks that a product-only wheel denoises with its default model)."""
WEIGHTS = Path(__file__).parent / "python" / "maed" / "weights"

choice = os.environ.get("MAED_WEIGHTS", "all")
if choice not in ("all", "product"):
    raise SystemExit(f"MAED_WEIGHTS must be all or product, got {choice!r}")
left_out = (
    [] if choice == "all" else sorted(p.name for p in WEIGHTS.iterdir() if p.suffix in (".pt", ".onnx") and p.stem not in PRODUCT_WEIGHTS)
)


class FreshBuild(build_py):
    """Builds a wheel into an emptied folder: what an earlier build left there (weights a product-only wheel leaves
    out, modules since moved) would otherwise go into the wheel. An editable install builds nothing there."""

    def run(self) -> None:
        build_lib = Path(self.build_lib).resolve()
        sources = [Path(__file__).parent.resolve() / root for root in ROOTS.values()]
        if not getattr(self, "editable_mode", False) and not any(build_lib in (s, *s.parents) for s in sources):
            shutil.rmtree(build_lib, ignore_errors=True)
        super().run()


setup(
    cmdclass={"build_py": FreshBuild},
    package_dir=ROOTS,
    packages=[p for name, root in ROOTS.items() for p in (name, *(f"{name}.{sub}" for sub in find_packages(root)))],
    exclude_package_data={"maed.weights": left_out},
)
