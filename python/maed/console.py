"""The ``maed`` console script: the command line (``maed.cli``), with a Ctrl-C during its start-up said in one line.

Importing the command line takes a second or two (numpy, scipy); a Ctrl-C meanwhile printed a traceback of the
import, where a Ctrl-C at any later moment says ``maed: stopped (Ctrl-C)`` (``maed.cli.main``).
"""

from __future__ import annotations

import sys


def main() -> int:
    try:
        from .cli import main as cli_main
    except KeyboardInterrupt:
        print("maed: stopped (Ctrl-C)", file=sys.stderr)
        return 130
    return cli_main()
