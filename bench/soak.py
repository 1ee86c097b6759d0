"""Benchmark: the soak. The matrix's load runs for `--minutes` with no fault, and a
faster timer must not have bought false failovers: it counts, from the nodes' own
logs (read with `docker exec`, never from the API's claims),

- switchovers: role transitions in the hosts' role logs;
- unit moves: lease grants to another holder, and `assume` changes of what a board
  serves (the placement, before and after);
- watchdog and monitor reboots: new entries in the boards' boot records;
- lease expiries on healthy units (a late poll: the margin the timers leave);
- calls: placed, failed, and the failures' codes.

The soak's own verdict is none of these being non-zero, except expiries, which are
reported as the margin. A benchmark, not a CI test (it takes half an hour).

    .venv/bin/python bench/soak.py [--minutes 30] [--load production]
"""
from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import roles  # noqa: E402
from harness.probes import boot_record  # noqa: E402
from harness.scenario import LOAD_PORTS, Loads, established_now  # noqa: E402
from harness.sipp import SippUas  # noqa: E402
from harness.testbed import BOARDS, Testbed  # noqa: E402
from results import Results  # noqa: E402  (bench/results.py)
from scenarios.matrix import MATRIX, parse  # noqa: E402

WINDOW_S = 60.0      # the load runs in windows of this length, one line printed each


def placement(tb: Testbed) -> dict:
    return dict(tb.oam(tb.master(), "/api/v1/status")["services"])


def boots(tb: Testbed) -> dict:
    return {b: len(boot_record(tb, b).get("reboots") or []) for b in BOARDS}


def window(tb: Testbed, load, i: int) -> collections.Counter:
    uas = SippUas(tb.sipp_executor("sipp-uas"),
                  tb.ip("sipp-uas", "voip"), name=f"soak-{i}-uas")
    ld = Loads(tb, f"soak-{i}", LOAD_PORTS["main"], load.rate, load.hold_s, WINDOW_S,
               media_rate=load.media_rate)
    with uas:
        with ld:
            ld.wait()
        uas.stop(grace_s=8)
    calls, _ = ld.calls(far_end=uas)
    out = collections.Counter(placed=ld.ncalls, judged=len(calls))
    for c in calls:
        if c.outcome != "completed" or not c.far_bye:
            out["failed"] += 1
            out[f"failed {c.final_code or c.outcome}"] += 1
    return out


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--load", default=None, help="load profile of scenarios/matrix.yaml (default: its default)")
    args = p.parse_args()
    load = parse(MATRIX.read_text(), profile=args.load)[0].load
    tb = Testbed()
    brought_up = not tb.running()
    tb.up()
    data = Results()
    data.note_environment(**vars(args))
    t0, place0, boots0 = time.time(), placement(tb), boots(tb)
    totals: collections.Counter = collections.Counter()
    try:
        i = 0
        while time.time() - t0 < args.minutes * 60:
            i += 1
            w = window(tb, load, i)
            totals.update(w)
            print(f"soak window {i} ({(time.time() - t0) / 60:.1f} min): {w['placed']} calls, "
                  f"{w['failed']} failed", flush=True)
    finally:
        views = roles.collect(tb, since=t0)
        place1, boots1 = placement(tb), boots(tb)
        if brought_up:
            tb.down()
    transitions = sum(1 for lines in views.hosts.values() for e in lines
                      if e["t"] >= t0 and e.get("role") in ("active", "standby"))
    grants = [e for lines in views.units.values() for e in lines if e["t"] >= t0]
    moves = sum(1 for e in grants if e.get("event") == "granted" and e.get("change") == "taken over")
    expiries = sum(1 for e in grants if e.get("event") == "expired")
    reboots = sum(boots1[b] - boots0[b] for b in BOARDS)
    figures = {"soak_switchovers": transitions, "soak_unit_moves": moves + (place1 != place0),
               "soak_reboots": reboots, "soak_lease_expiries": expiries,
               "soak_calls_placed": totals["placed"], "soak_calls_failed": totals["failed"]}
    for name, value in figures.items():
        data.add(name, value, "count", load=args.load or "default", minutes=args.minutes)
    data.note("soak failures by code", {k: v for k, v in totals.items() if k.startswith("failed ")})
    data.note("soak placement", {"before": place0, "after": place1})
    data.save()
    for name, value in figures.items():
        print(f"{name}: {value}")
    bad = transitions or figures["soak_unit_moves"] or reboots or totals["failed"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
