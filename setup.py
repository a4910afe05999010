"""Package discovery across the design card's top-level folders (metadata lives in pyproject.toml).

``python/maed`` is the package ``maed``, ``engine/`` is ``maed.engine`` and ``bridge/`` is
``maed.bridge``; every sub-package under them is found, so a new one cannot be left out of the wheel.
"""

from setuptools import find_packages, setup

ROOTS = {"maed": "python/maed", "maed.engine": "engine", "maed.bridge": "bridge"}

setup(
    package_dir=ROOTS,
    packages=[p for name, root in ROOTS.items() for p in (name, *(f"{name}.{sub}" for sub in find_packages(root)))],
)
