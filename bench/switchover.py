"""Benchmark: switchover time of the matrix operations that switch over, over several
runs (kill to the first new call answered by the new active gateway), and the role
switch seen through the OAM API. Brings the testbed up if none is running.

    .venv/bin/python bench/switchover.py [--runs 3] [--op kill-master-gateway]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.faults import FaultSet  # noqa: E402
from harness.scenario import run_operation  # noqa: E402
from harness.testbed import Testbed  # noqa: E402
from scenarios.matrix import load  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--op", action="append", help="operation id (default: every switchover op)")
    args = p.parse_args()
    ops = [o for o in load() if o.switchover and (not args.op or o.id in args.op)]
    tb = Testbed()
    brought_up = not tb.running()
    tb.up()
    out = ROOT / "runs" / f"bench-{time.strftime('%Y%m%d-%H%M%S')}"
    results = []
    try:
        for op in ops:
            for i in range(args.runs):
                fs = FaultSet(tb)
                try:
                    v = run_operation(tb, fs, op, out / f"{op.id}-{i + 1}")
                finally:
                    fs.heal()
                    tb.wait_healthy(90, quiet=True)
                r = json.loads((out / f"{op.id}-{i + 1}" / "result.json").read_text())
                calls = next((c for c in r["verdict"]["checks"] if c["name"] == "calls"), {})
                results.append({"op": op.id, "run": i + 1, "ok": v.ok,
                                "switchover_s": r.get("switchover_s"),
                                "role_switch_s": r.get("role_switch_s"),
                                "counts": (calls.get("data") or {}).get("counts")})
                print(f"{op.id} run {i + 1}: {v.status}, switchover {r.get('switchover_s')} s, "
                      f"role switch {r.get('role_switch_s')} s", flush=True)
    finally:
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
