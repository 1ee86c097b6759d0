"""Benchmark: the TMedia units' redundancy, over several runs. Brings the testbed up if none
is running.

- bond port failover: the largest RTP gap of each call running across the active port's
  link going down (capture at sipp-uas), 30 calls at 5 calls/s held 5 s;
- unit failover to the spare (N+1): power off the board serving tmedia-2, time to the
  first new call to tmedia-2's address answered (then the placement is restored);
- voice path load split: 40 calls at 10 calls/s, how many went over each path.

    .venv/bin/python bench/units.py [--runs 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.faults import (FaultSet, HostPowerOff, PortDown, placement, restore_placement,  # noqa: E402
                            unit_status, wait_for)
from harness.media import MediaCapture  # noqa: E402
from harness.calls import run_calls as calls, wait_established  # noqa: E402
from harness.testbed import Testbed  # noqa: E402
from results import Results  # noqa: E402  (bench/results.py)


def bond_failover(tb, i) -> dict:
    fs = FaultSet(tb)
    fault = PortDown(tb, unit="tmedia-1")
    src = [tb.ip("tmedia-1", n) for n in ("voip", "vlan101", "vlan102")]
    try:
        with MediaCapture(tb, "sipp-uas", src, f"bench-bond-{i}") as cap:
            def inject(uac):
                wait_established(uac, 12)
                fs.inject(fault)
            cs = calls(tb, f"bench-bond-{i}", during=inject, rate=5, hold_s=5, calls=30)
        gaps = sorted(s.largest_gap_s * 1000 for s in cap.around(fault.injected_at))
    finally:
        fs.heal()
        tb.wait_healthy(90, quiet=True)
    bad = sum(1 for c in cs if c.outcome != "completed" or not c.far_bye)
    return {"streams": len(gaps), "median_ms": statistics.median(gaps), "max_ms": gaps[-1],
            "calls_not_completed": bad, "port": fault.resolved, "gaps_ms": gaps}


def unit_failover(tb, i) -> dict:
    fs = FaultSet(tb)
    board = placement(tb)["tmedia-2"]
    fault = HostPowerOff(tb, host=board)
    try:
        fs.inject(fault)

        def answered():
            cs = calls(tb, f"bench-n1-{i}-{int(time.time() * 10) % 100000}", unit="tmedia-2",
                       rate=2, hold_s=0.2, calls=1, recv_timeout_s=2)
            return cs and cs[0].outcome == "completed" and cs[0].answer_t
        answer_t = wait_for(answered, 30, "a call to tmedia-2 answered", interval=0.1)
    finally:
        fs.heal()
        tb.wait_healthy(90, quiet=True)
        restore_placement(tb)
    return {"board": board, "to_answer_s": answer_t - fault.injected_at}


def voice_split(tb, i) -> dict:
    before = dict(unit_status(tb, "tmedia-1").get("calls_by_voice_path") or {})
    calls(tb, f"bench-vp-{i}", rate=10, hold_s=1, calls=40)
    after = wait_for(lambda: (a := unit_status(tb, "tmedia-1").get("calls_by_voice_path") or {})
                     and sum(a.values()) - sum(before.values()) >= 40 and a, 10, "40 calls counted")
    return {p: after.get(p, 0) - before.get(p, 0) for p in ("101", "102")}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    tb = Testbed()
    brought_up = not tb.running()
    tb.up()
    data = Results()
    data.note_environment(**vars(args))
    res = {"bond": [], "n1": [], "split": []}
    try:
        for i in range(args.runs):
            b = bond_failover(tb, i)
            for gap in b.pop("gaps_ms"):        # every stream's largest gap, not per-run medians
                data.add("bond_gap_ms", gap, "ms", kind="port-down")
            data.add("bond_calls_not_completed", b["calls_not_completed"], "calls", kind="port-down")
            res["bond"].append(b)
            print(f"bond failover run {i + 1}: {res['bond'][-1]}", flush=True)
        for i in range(args.runs):
            res["n1"].append(unit_failover(tb, i))
            data.add("spare_failover_s", res["n1"][-1]["to_answer_s"], "s", kind="board-power-off")
            print(f"unit failover run {i + 1}: {res['n1'][-1]}", flush=True)
        for i in range(args.runs):
            res["split"].append(voice_split(tb, i))
            for path, n in res["split"][-1].items():
                data.add("voice_path_calls", n, "calls", path=path)
            print(f"voice path split run {i + 1}: {res['split'][-1]}", flush=True)
    finally:
        data.save()
        if brought_up:
            tb.down()
    print("\n| what | runs | result |\n|---|---|---|")
    print(f"| bond port failover: largest RTP gap per call (median of medians / max) | {args.runs} | "
          f"{statistics.median(r['median_ms'] for r in res['bond']):.0f} / "
          f"{max(r['max_ms'] for r in res['bond']):.0f} ms; calls not completed: "
          f"{sum(r['calls_not_completed'] for r in res['bond'])} |")
    n1 = sorted(r["to_answer_s"] for r in res["n1"])
    print(f"| unit powered off to a new call answered by the spare (min / median / max) | {args.runs} | "
          f"{n1[0]:.2f} / {statistics.median(n1):.2f} / {n1[-1]:.2f} s |")
    print(f"| voice path split of 40 calls (path 101 / 102) | {args.runs} | "
          + ", ".join(f"{r['101']}/{r['102']}" for r in res["split"]) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
