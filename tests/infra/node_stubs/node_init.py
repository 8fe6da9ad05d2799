"""The first process of a sandboxed node: runs commands the test sends, until stdin closes.

Protocol: one JSON request per line on stdin ``{"cmd": str, "env": {..}, "timeout": s}``;
the command runs under ``bash -c`` with exactly ``env`` (plus nothing inherited) and one JSON
line ``{"rc": int, "out": str}`` answers on stdout (``rc`` 124 when it ran past ``timeout``).
When stdin closes, this process exits; the sandbox's PID namespace ends with it, so every
process the node started (Ray, unit supervisors) is killed.
"""

from __future__ import annotations

import json
import subprocess
import sys


def main() -> int:
    for line in sys.stdin:
        req = json.loads(line)
        try:
            done = subprocess.run(["/bin/bash", "-c", req["cmd"]], env=req["env"], stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=req["timeout"])
            rc, out = done.returncode, done.stdout + done.stderr
        except subprocess.TimeoutExpired as e:
            rc, out = 124, (e.stdout or b"") + (e.stderr or b"")
        sys.stdout.write(json.dumps({"rc": rc, "out": out.decode(errors="replace")}) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
