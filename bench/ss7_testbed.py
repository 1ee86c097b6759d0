"""Benchmark: the SS7 side on the ss7 variant's testbed (the units' containers, the
ss7-peer far end). Brings that testbed up (TB_PROJECT, default tbss7; `make bench` gives
PROJECT-ss7) if none is running, and down again after.

- ISUP takeover: the far end places calls (10/s, held 3 s; sipp-uas answers their SIP
  side); the board serving the unit that holds the active ISUP is powered off; from the
  power-off to the first call placed after it that the far end got answered. The board
  is powered on and the units put back after each run.
- ISUP calls/s through the system with 0 failures: the far end's IAMs become INVITEs at
  the interworking of the circuit's unit, go through the unit's SIP stack and the active
  gateway to sipp-uas, and its 200 comes back as ANM. Rates rise until a call is not
  answered; each rate runs 5 s, calls held 1 s.

    .venv/bin/python bench/ss7_testbed.py [--runs 3] [--rates 20,30,40,60,80,100]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["TB_VARIANT"] = "ss7"
os.environ.setdefault("TB_PROJECT", "tbss7")

from harness import isup_load  # noqa: E402
from harness.faults import FaultSet, UnitPowerOff, restore_placement, wait_for  # noqa: E402
from harness.faults._units import board_of  # noqa: E402
from harness.testbed import Testbed  # noqa: E402
from results import Results  # noqa: E402  (bench/results.py)


HOLD_S = 1.0
WIDE = {"tmedia-1": (1, 200), "tmedia-2": (201, 400)}     # the throughput part's groups


def active_unit(tb) -> str:
    return wait_for(lambda: next((u for u in isup_load.GROUPS
                                  if isup_load.node(tb, u).get("role") == "active"), None),
                    60, "an active ISUP")


def takeover(tb, i: int) -> float:
    isup_load.prepare(tb, "tmedia-1")
    active = active_unit(tb)
    fs = FaultSet(tb)
    try:
        with isup_load.answering(tb, f"bench-ss7-to-{i}"):
            far = isup_load.FarEnd(tb, f"bench-ss7-to-{i}", "--mode", "call", "--rate", "10",
                                   "--duration", "12", "--hold", "3")
            far.start()
            wait_for(lambda: (isup_load.node(tb, active).get("isup") or {}).get("states", {})
                     .get("answered", 0) >= 20, 20, "20 ISUP calls answered")
            t_fault = fs.inject(UnitPowerOff(tb, host=board_of(tb, active), serving=active))
            _, calls = far.result()
    finally:
        fs.heal()
        tb.wait_healthy(120, quiet=True)
        restore_placement(tb)
    answered = [c["anm"] for c in calls if c["iam"] > t_fault and c["anm"]]
    if not answered:
        raise RuntimeError("no ISUP call answered after the active unit's board was powered off")
    return min(answered) - t_fault


def throughput(tb, rate: float) -> dict:
    name = f"bench-ss7-rate-{rate:g}"
    with isup_load.answering(tb, name):
        far = isup_load.FarEnd(tb, name, "--mode", "call", "--rate", f"{rate:g}",
                               "--duration", "5", "--hold", f"{HOLD_S:g}", "--drain", "10",
                               "--cics", f"{WIDE['tmedia-1'][0]}-{WIDE['tmedia-2'][1]}")
        far.start()
        summary, _ = far.result(timeout=120)
    # a call placed and never answered is a failure too
    summary["not_answered"] = max(summary["failed"], summary["placed"] - summary["answered"])
    return summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--rates", default="20,30,40,60,80,100")
    p.add_argument("--parts", default="takeover,calls", help="takeover, calls or both")
    a = p.parse_args(argv)
    tb = Testbed()
    brought_up = not tb.running()
    tb.up()
    r = Results(script="ss7_testbed")
    r.note("ss7_testbed", "the ss7 variant's containers: units, hosts, ss7-peer, sipp-uas")
    takeovers, best, rates = [], None, []
    try:
        for i in range(a.runs if "takeover" in a.parts else 0):
            t = takeover(tb, i)
            takeovers.append(t)
            r.add("ss7_takeover_testbed_s", t, "s", kind="active ISUP unit's board powered off")
            print(f"[bench] ISUP takeover on the testbed run {i + 1}: {t:.3f} s from the "
                  f"power-off to the first new call answered", flush=True)
        rates = [float(x) for x in a.rates.split(",")] if "calls" in a.parts else []
        if rates:
            isup_load.prepare(tb, "tmedia-1")     # the routes, and the seeded groups checked
            isup_load.set_groups(tb, WIDE)
        for rate in rates:
            fails = []
            for i in range(a.runs):
                s = throughput(tb, rate)
                fails.append(s["not_answered"])
                print(f"[bench] ISUP to SIP through the system, {rate:g} calls/s run {i + 1}: "
                      f"{s['placed']} placed, {s['answered']} answered, {s['not_answered']} not "
                      f"(no free circuit at the far end: {s['no_circuit']}, glare: {s['glare']}, "
                      f"causes {s['causes']})", flush=True)
                r.add("ss7_testbed_failed_calls", s["not_answered"], "calls",
                      kind=f"{rate:g} calls/s, hold {HOLD_S:g} s")
            if any(fails):
                break
            best = rate
        if best:
            r.add("ss7_testbed_clean_calls_per_s", best, "calls/s",
                  kind=f"ISUP to SIP, hold {HOLD_S:g} s, 0 failures in {a.runs} runs")
    finally:
        if rates:
            isup_load.set_groups(tb, {u: (c[0], c[-1]) for u, c in isup_load.GROUPS.items()})
        r.save()
        if brought_up:
            tb.down()
    if takeovers:
        t = sorted(takeovers)
        print(f"\n| ISUP takeover on the testbed (min / median / max, {len(t)} runs) | "
              f"{t[0]:.3f} / {statistics.median(t):.3f} / {t[-1]:.3f} s |")
    print(f"| ISUP to SIP calls/s through the system with 0 failures | {best or 'none'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
