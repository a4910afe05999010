"""The ``maed`` console script: the command line (``maed.cli``), with a Ctrl-C during its start-up said in one line.

Importing the command line and building its parser take a second or two (numpy, scipy); a Ctrl-C meanwhile printed
a traceback of the import, or, inside an extension module's initialisation, an ``ImportError`` caused by it. So
Ctrl-C waits until start-up is over and then stops the command at once; at any later moment ``maed.cli.run`` says
``maed: stopped (Ctrl-C)`` as here.
"""

from __future__ import annotations

import signal
import sys


def main() -> int:
    interrupted: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))
    try:
        from .cli import STOPPED, build_parser, run

        parser = build_parser()
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted:
        print(STOPPED, file=sys.stderr)
        return 130
    return run(parser.parse_args())
