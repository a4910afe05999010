"""What a lab lets the bridge do to its controller on an alert: ``maed serve --on-alert tip_change=pause``.

Opt-in and off by default: without rules the bridge only reads from the controller. Each rule maps an
alert kind to one action: ``pause`` (Nanonis ``Scan.Action`` pause: the scan waits with the tip
engaged, right for a tip change a person should look at) or ``withdraw`` (``ZCtrl.Withdraw``: the tip
goes up, right for a crash).
"""

from __future__ import annotations

from .finding import KINDS

ACTIONS = ("pause", "withdraw")


def parse_rules(text: str) -> dict[str, str]:
    """``kind=action[,kind=action...]`` as a map; ``ValueError`` with a one-line reason otherwise."""
    rules: dict[str, str] = {}
    parts = [p.strip() for p in text.split(",")]
    if "" in parts[:-1]:  # "a=pause,,b=withdraw": a rule lost in typing, most likely; a trailing comma is harmless
        raise ValueError(f"--on-alert {text!r} has an empty pair between two commas")
    for part in filter(None, parts):
        kind, sep, action = (s.strip() for s in part.partition("="))
        if not sep or kind not in KINDS or action not in ACTIONS:
            raise ValueError(
                f"--on-alert takes kind=action pairs separated by commas (kinds: {', '.join(KINDS)}; "
                f"actions: {', '.join(ACTIONS)}), got {part!r}"
            )
        if kind in rules and rules[kind] != action:
            raise ValueError(f"--on-alert gives {kind} two actions ({rules[kind]}, {action})")
        rules[kind] = action
    if not rules:
        raise ValueError("--on-alert needs at least one kind=action pair, e.g. tip_change=pause,crash=withdraw")
    return rules
