"""What a lab lets the bridge do to its controller on an alert: ``maed serve --on-alert tip_change=pause``.

Opt-in and off by default: without rules the bridge only reads from the controller. Each rule maps an
alert kind to one action: ``pause`` (Nanonis ``Scan.Action`` pause: the scan waits with the tip
engaged, right for a tip change a person should look at) or ``withdraw`` (``ZCtrl.Withdraw``: the tip
goes up, right for a crash).
"""

from __future__ import annotations

from .finding import KINDS

ACTIONS = ("pause", "withdraw")

ACTIONABLE = tuple(kind for kind in KINDS if kind != "drift")
"""The kinds a rule may act on: an alert raised while its scan runs. Drift is judged from frame to frame when a
scan has ended, when there is no scan of it left to pause or withdraw from."""


def parse_rules(text: str) -> dict[str, str]:
    """``kind=action[,kind=action...]`` as a map; ``ValueError`` with a one-line reason otherwise."""
    rules: dict[str, str] = {}
    parts = [p.strip() for p in text.split(",")]
    if "" in parts[:-1]:  # "a=pause,,b=withdraw": a rule lost in typing, most likely; a trailing comma is harmless
        raise ValueError(f"--on-alert {text!r} has an empty pair between two commas")
    for part in filter(None, parts):
        kind, sep, action = (s.strip() for s in part.partition("="))
        if kind == "drift" and sep and action in ACTIONS:
            raise ValueError(
                "--on-alert cannot act on drift: it is judged from frame to frame once a scan has ended, when there is "
                f"no scan of it left to {action}"
            )
        if not sep or kind not in ACTIONABLE or action not in ACTIONS:
            raise ValueError(
                f"--on-alert takes kind=action pairs separated by commas (kinds: {', '.join(ACTIONABLE)}; "
                f"actions: {', '.join(ACTIONS)}), got {part!r}"
            )
        if kind in rules and rules[kind] != action:
            raise ValueError(f"--on-alert gives {kind} two actions ({rules[kind]}, {action})")
        rules[kind] = action
    if not rules:
        raise ValueError("--on-alert needs at least one kind=action pair, e.g. tip_change=pause,crash=withdraw")
    return rules
