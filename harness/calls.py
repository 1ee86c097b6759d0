"""Short SIPp loads through a unit for the unit tests and benchmarks: a caller at
sipp-uac, a far end at sipp-uas, something done while the calls run, and the calls."""
from __future__ import annotations

from .util import wait_for
from .sipp import CallRecord, SippLoad, SippUas
from .testbed import Testbed


def run_calls(tb: Testbed, name: str, unit: str = "tmedia-1", during=None, **load) -> list[CallRecord]:
    """Run a load through `unit`'s address on the bond; `during(uac)` runs meanwhile."""
    uas = SippUas(tb.sipp_executor("sipp-uas"), tb.ip("sipp-uas", "voip"),
                  name=f"{name}-uas")
    uac = SippLoad(tb.sipp_executor("sipp-uac"), f"{tb.ip(unit, 'voip')}:5060",
                   tb.ip("sipp-uac", "voip"), name=f"{name}-uac", **load)
    with uas:
        with uac:
            if during is not None:
                during(uac)
            assert uac.wait(), "SIPp did not finish its calls in time"
        uas.stop(grace_s=5)
    calls = uac.calls(far_end=uas)
    # every call SIPp was told to place must be in its traces: a missing one would
    # otherwise pass every "no bad call" check unseen
    if len(calls) != uac.ncalls:
        raise AssertionError(f"{name}: {len(calls)} calls in the traces, SIPp was told to "
                             f"place {uac.ncalls}")
    return calls


def bad(calls: list[CallRecord]) -> list[tuple]:
    """The calls that did not end normally at both ends."""
    return [(c.call_id, c.outcome, c.final_code, c.far_bye) for c in calls
            if c.outcome != "completed" or not c.far_bye]


def wait_established(uac: SippLoad, n: int, deadline_s: float = 15) -> None:
    """Wait until `n` calls of the load are answered and not yet ended."""
    wait_for(lambda: sum(1 for c in uac.calls() if c.answer_t and c.bye_sent_t is None) >= n,
             deadline_s, f"{n} established calls")
