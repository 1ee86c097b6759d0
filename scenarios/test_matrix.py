"""The acceptance matrix: every operation of scenarios/matrix.yaml under real SIP load.
The test passes exactly when the operation's composed verdict is ok (the plugin checks
result.json again when it makes the report)."""
import os
import time

import pytest

from harness import logscan
from harness.report import allure_attach
from harness.scenario import run_operation
from scenarios.matrix import load

OPERATIONS = load(variant=os.environ.get("TB_VARIANT") or "default")


@pytest.mark.parametrize("op", OPERATIONS, ids=[op.id for op in OPERATIONS])
def test_operation(testbed, faults, run_dir, op):
    ok, events = False, []
    t_begin = time.time()
    try:
        verdict = run_operation(testbed, faults, op, run_dir / op.id)
        ok = verdict.ok
    finally:
        if not ok:
            keep_logs(testbed, run_dir / op.id / "logs")
            events = notable_events(testbed, t_begin)
        allure_attach(run_dir / op.id)    # the verdict and timeline, also of a failed run
    assert verdict.ok, verdict.summary() + "".join(f"\n    event  {e}" for e in events)


def keep_logs(testbed, out) -> None:
    """A failed operation keeps every node's log beside its verdict: the testbed may be
    gone before anyone looks (a CI run removes it), and a role change or an exit is
    explained there (a switchover in a heal was once left unexplained for want of them)."""
    try:
        testbed.save_logs(out)
    except Exception as exc:            # never hide the verdict behind a log that failed
        print(f"logs of {out.parent.name} not kept: {exc!r}")


def notable_events(testbed, since: float) -> list[str]:
    """The nodes' deadlock kills, reboots, fences, crashes, stalls and role changes since
    the operation began, for the failure's message: a CI run keeps only what it prints."""
    try:
        return logscan.notable_events(testbed, since)
    except Exception as exc:            # never hide the verdict behind a log that failed
        return [f"the nodes' events not read: {exc!r}"]
