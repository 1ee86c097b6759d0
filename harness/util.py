"""Generic helpers of the harness: a deadline-bound wait, a checked `docker exec`, and
the same action on several nodes side by side.
They depend on nothing but harness.testbed, so every other module may import them."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

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


def each(items, fn: Callable[[Any], None]) -> None:
    """fn(item) for every item, side by side (each one is a few `docker exec`s); the
    first exception is raised once all have ended."""
    items = list(items)
    if len(items) <= 1:
        for it in items:
            fn(it)
        return
    with ThreadPoolExecutor(max_workers=min(8, len(items))) as pool:
        for f in [pool.submit(fn, it) for it in items]:
            f.result()
