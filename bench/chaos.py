"""Benchmark: a long chaos run (scenarios/chaos.py), 30 minutes by default, and what it
covered: faults injected by kind, steps by name (single and double faults), calls judged
(settled, transient, dropped as allowed, lost on failed units), the violations, writes
acknowledged and checked, and every fault's time to the first new call answered. The
timeline is runs/.../chaos/chaos.png. A failed run is not shrunk here (replay it with
`make chaos SEED=<seed> STEPS=<n>`); the bench exits non-zero.

    .venv/bin/python bench/chaos.py [--minutes 30] [--seed N]
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.faults import heal_all  # noqa: E402
from harness.faults._units import settle  # noqa: E402
from harness.testbed import Testbed  # noqa: E402
from results import Results  # noqa: E402  (bench/results.py)
from scenarios.chaos import load_config, run, summary  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    tb = Testbed()
    brought_up = not tb.running()
    tb.up()
    data = Results()
    data.note_environment(minutes=args.minutes, seed=seed)
    try:
        result = run(tb, load_config(), seed, data.dir / "chaos", duration_s=args.minutes * 60)
    finally:
        heal_all(tb)
        if not brought_up:
            settle(tb)   # the units back on their own boards, for what runs next
        if brought_up:
            tb.down()
    c, w = result.counts, result.writes
    labels = {"seed": seed, "minutes": args.minutes}
    for name in ("steps", "faults", "calls", "settled", "transient", "transient_dropped", "lost"):
        data.add(f"chaos_{name}", c[name], "count", **labels)
    data.add("chaos_violations", len(result.violations), "count", **labels)
    data.add("chaos_writes_acked", w["acked"], "count", **labels)
    data.add("chaos_writes_missing", w["missing"] if w["missing"] is not None else -1, "count",
             **labels)
    for s in result.switchovers:
        if s["s"] is not None:
            data.add("chaos_first_new_call_s", s["s"], "s", kind=s["kind"])
    data.note("chaos faults by kind", c["by_kind"])
    data.note("chaos steps by name", c["by_step"])
    data.note("chaos violations", result.violations[:50])
    data.note("chaos writes", w)
    data.save()
    print(summary(result))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
