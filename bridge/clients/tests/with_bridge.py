"""Run a command against a live MAED-RT bridge on loopback: the ctest host of libmaed_client's live test.

    with_bridge.py COMMAND [ARGS...]

Starts the bridge in this process (``maed.bridge.server.Bridge``, free ports, an identity back end
so no model loads, acknowledgements on), runs COMMAND with the bridge's endpoints appended
(PULL PUB CONTROL ACK OUT) and exits with its status. Exits 77 (ctest's "skipped") when ``maed``
cannot be imported here.
"""

import subprocess
import sys
import tempfile
from pathlib import Path

try:
    from maed.bridge.server import Bridge, BridgeConfig
except ImportError as error:  # no repository environment: the C test cannot have its bridge
    print(f"with_bridge: maed is not importable ({error}); skipping", file=sys.stderr)
    sys.exit(77)


class IdentityBackend:
    name = model = "identity"
    size_multiple = 16

    def denoise(self, batch):
        return batch


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="maed-client-") as out:
        config = BridgeConfig(pull_port=0, pub_port=0, control_port=0, ack_port=0, out=Path(out) / "scans")
        with Bridge(config, backend=IdentityBackend()) as bridge:
            e = bridge.endpoints
            command = sys.argv[1:] + [e["pull"], e["pub"], e["control"], e["ack"], str(config.out)]
            return subprocess.run(command, timeout=240).returncode


if __name__ == "__main__":
    sys.exit(main())
