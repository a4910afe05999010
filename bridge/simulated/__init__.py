"""Simulated instruments, apart from the product bridge: what `maed demo`, `maed serve --source sim`,
`maed push-sim` and `maed sim-nanonis` scan with, and what the tests and benchmarks drive the bridge with.

- ``controller``: ``SimulatedController``, a controller that scans simulated surfaces line by line
  and pushes the lines into a bridge over ZeroMQ, as an external controller would;
- ``scanner`` and ``nanonis_server``: ``SimulatedNanonis``, a Nanonis controller on TCP that scans
  a ``Scanner``'s frames on the clock and answers the Nanonis scan commands (``bridge/NANONIS.md``);
  ``replay``: a real scan file as its frame (``maed sim-nanonis --replay``);
- ``live``: a simulated controller and a bridge in one process, the engine of ``maed demo``.

No product module imports this package: only the command line (``maed.bridge.commands``, which
chooses a source) and the demo do (the ``simulated`` contract in ``pyproject.toml``).
"""

from .controller import SIM_SEED_BASE, SimScan, SimulatedController, trace_and_retrace
from .nanonis_server import SimulatedNanonis
from .scanner import Scanner, simulated_frames

__all__ = ["SIM_SEED_BASE", "Scanner", "SimScan", "SimulatedController", "SimulatedNanonis", "simulated_frames", "trace_and_retrace"]
