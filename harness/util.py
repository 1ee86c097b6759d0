"""Generic helpers of the harness: a deadline-bound wait and a checked `docker exec`.
They depend on nothing but harness.testbed, so every other module may import them."""
from __future__ import annotations

import time

from .testbed import Testbed, TestbedError


def wait_for(cond, deadline_s: float, what: str, interval: float = 0.1):
    """Poll cond() until it returns a truthy value; raise with `what` at the deadline."""
    end = time.monotonic() + deadline_s
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > end:
            raise TestbedError(f"timed out after {deadline_s:g} s waiting for {what}")
        time.sleep(interval)


def exec_checked(tb: Testbed, node: str, cmd: list[str], what: str) -> None:
    """Run a command in a node's container; raise TestbedError with its output if it fails."""
    res = tb.container(node).exec_run(cmd)
    if res.exit_code != 0:
        raise TestbedError(f"{what} on {node} failed: {res.output.decode(errors='replace')}")
