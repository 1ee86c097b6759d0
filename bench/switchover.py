"""Benchmark: switchover time of the matrix operations that switch over, over several
runs (kill to the first new call answered by the new active gateway), and the role
switch seen through the OAM API. Brings the testbed up if none is running.

A peer side by side (`--vrrp default --vrrp fast`): during a host power-off, a
keepalived VRRP pair runs on the same two hosts (bench/keepalived.py, virtual address
on ctrl-a), so the same `docker kill` takes both over; its failover (the first ICMP
reply from the backup) is recorded beside ours, the runs alternating the profiles,
and the ratio of the medians is reported.

    .venv/bin/python bench/switchover.py [--runs 3] [--op kill-master-gateway] [--vrrp fast]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from contextlib import nullcontext  # noqa: E402

from harness.faults import FaultSet  # noqa: E402
from keepalived import testbed_pair  # noqa: E402  (bench/keepalived.py)
from harness.scenario import run_operation  # noqa: E402
from harness.testbed import Testbed  # noqa: E402
from results import Results  # noqa: E402  (bench/results.py)
from scenarios.matrix import load  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--op", action="append", help="operation id (default: every switchover op)")
    p.add_argument("--vrrp", action="append", choices=("default", "fast"),
                   help="keepalived profile measured beside each host power-off (repeatable)")
    args = p.parse_args()
    ops = [o for o in load(variant="default") if o.switchover and (not args.op or o.id in args.op)]
    tb = Testbed()
    brought_up = not tb.running()
    tb.up()
    data = Results()
    data.note_environment(**vars(args))
    out = data.dir
    results = []
    try:
        for op in ops:
            for i in range(args.runs):
                fs = FaultSet(tb)
                prof = args.vrrp[i % len(args.vrrp)] if args.vrrp and \
                    op.fault["kind"] == "host_power_off" and op.fault.get("target") == "master" else None
                vrrp = None
                try:
                    with (testbed_pair(tb, master=tb.master(), profile=prof) if prof else nullcontext()) as pair:
                        prober = pair.prober().arm() if pair is not None else None
                        v = run_operation(tb, fs, op, out / f"{op.id}-{i + 1}")
                        r = json.loads((out / f"{op.id}-{i + 1}" / "result.json").read_text())
                        if prober is not None and r.get("t_fault"):
                            vrrp = prober.result(r["t_fault"], timeout=15)
                finally:
                    fs.heal()
                    tb.wait_healthy(90, quiet=True)
                if vrrp is not None:
                    data.add("vrrp_failover_s", vrrp, "s", fault=op.id, profile=prof)
                    print(f"{op.id} run {i + 1}: keepalived ({prof}) failover {vrrp:.3f} s", flush=True)
                calls = next((c for c in r["verdict"]["checks"] if c["name"] == "calls"), {})
                results.append({"op": op.id, "run": i + 1, "ok": v.ok,
                                "switchover_s": r.get("switchover_s"),
                                "role_switch_s": r.get("role_switch_s"),
                                "counts": (calls.get("data") or {}).get("counts")})
                for figure in ("switchover_s", "role_switch_s"):
                    if r.get(figure) is not None:      # None: the run saw no switchover
                        data.add(figure, r[figure], "s", fault=op.id)
                print(f"{op.id} run {i + 1}: {v.status}, switchover {r.get('switchover_s')} s, "
                      f"role switch {r.get('role_switch_s')} s", flush=True)
    finally:
        for op in ops:
            for prof in args.vrrp or ():
                try:
                    data.ratio(f"{op.id}: ours / keepalived {prof}", "switchover_s", {"fault": op.id},
                               "vrrp_failover_s", {"fault": op.id, "profile": prof})
                except KeyError:
                    pass        # that profile never ran beside this operation
        data.save()
        if brought_up:
            tb.down()
    print("\n| operation | runs | ok | switchover s (min / median / max) | role switch s (median) |")
    print("|---|---|---|---|---|")
    for op in ops:
        rs = [r for r in results if r["op"] == op.id]
        sw = [r["switchover_s"] for r in rs if r["switchover_s"] is not None]
        role = [r["role_switch_s"] for r in rs if r["role_switch_s"] is not None]
        if sw:
            print(f"| {op.id} | {len(rs)} | {sum(r['ok'] for r in rs)} | {min(sw):.3f} / "
                  f"{statistics.median(sw):.3f} / {max(sw):.3f} | "
                  f"{f'{statistics.median(role):.3f}' if role else 'n/a'} |")
    out.mkdir(parents=True, exist_ok=True)
    (out / "switchover.json").write_text(json.dumps(results, indent=2))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
