"""The models ``maed`` knows by name, and the paper's Table 1 line-up; imports neither torch nor onnx.

MAED-CNN comes in configurations (``rt``, the real-time size, and ``paper``, the published
size); ``maed`` is the product's name for its shipped weights, ``PRODUCT``. The six baselines of the paper's Table 1 live in
``maed.model.baselines``. Weights shipped under a name that is not an architecture (``rt-equal``,
``rt-plane``: ``rt`` trained to take the line offsets out itself, ``maed.normalise``) say in their
checkpoint which architecture they are.
"""

from __future__ import annotations

PRODUCT = "rt-plane"
"""The weights every command uses unless told otherwise: the ``rt`` network trained to take the line offsets
out itself (``docs/model.md`` says why it replaced ``rt``, which aligns the rows first)."""

TWO_PASS_PRODUCT = "rt-both"
"""The weights ``--pass both`` uses unless told otherwise: the ``rt-both`` network, both passes in
(``docs/model.md``). Opt-in: one pass stays the default until the two-pass model wins on real scans."""

ALIASES = {"maed": PRODUCT}


def default_model(pass_: str) -> str:
    """The weights a command uses for ``--pass pass_`` unless told otherwise."""
    return TWO_PASS_PRODUCT if pass_ == "both" else PRODUCT


DISPLAY_NAMES = {
    "rt": "MAED-CNN rt",
    "rt1": "MAED-CNN rt1",
    "rt-both": "MAED-CNN rt (both passes)",
    "paper": "MAED-CNN paper",
    "rt-equal": "MAED-CNN rt",
    "rt-plane": "MAED-CNN rt (plane levelling)",
    "pdanet": "PDA-Net",
    "hcanet": "HCANet",
    "cbdnet": "CBDNet",
    "dncnn": "DnCNN",
    "pmrid": "PMRID",
    "ridnet": "RIDNet",
}

BASELINE_NAMES = ("pdanet", "hcanet", "cbdnet", "dncnn", "pmrid", "ridnet")
"""The paper's Table 1 baselines, in its column order."""

ARCHITECTURES = ("rt", "rt-both", "rt1", "paper", *BASELINE_NAMES)
"""Every network ``maed train --model`` builds: MAED-CNN configurations, then the baselines."""

TABLE_MODELS = ("rt-equal", *BASELINE_NAMES)
"""``maed eval --models all``: MAED-CNN and the baselines trained alike (docs/results/table1.md)."""


def resolve(name: str) -> str:
    """The shipped name behind an alias (``maed`` -> ``PRODUCT``); other names unchanged."""
    return ALIASES.get(name, name)


def display_name(name: str) -> str:
    """How tables and figures label a model: the paper's name where it has one."""
    return DISPLAY_NAMES.get(resolve(name), name)
