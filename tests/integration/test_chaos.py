"""A 3-minute chaos run (scenarios/chaos.py) under 20 calls/s: single and double faults
at the moments seed TB_CHAOS_SEED (default 25) draws, every call judged against the
windows it crossed, never two active hosts, no acknowledged write lost, every unit under
control after each heal. Seed 25 begins with the backup database killed and then the
master powered off, and has two more double faults (a unit lost during a switchover).

When the run fails, its steps are replayed to find the shortest failing prefix (within
TB_CHAOS_SHRINK_S seconds, default 600) and the failure names it with the command that
replays it."""
import os

import pytest

from harness.faults import restore_placement
from scenarios.chaos import load_config, plan, run, shrink, summary

SEED = int(os.environ.get("TB_CHAOS_SEED", "25"))
DURATION_S = float(os.environ.get("TB_CHAOS_S", "180"))
SHRINK_S = float(os.environ.get("TB_CHAOS_SHRINK_S", "600"))


@pytest.fixture
def units_home(testbed):
    """Unit faults move units to the spare (a chaos run does not move them back): later
    tests find tmedia-1 and tmedia-2 on their own boards."""
    yield
    restore_placement(testbed)


def test_a_chaos_run_keeps_every_promise(testbed, faults, run_dir, units_home):
    cfg = load_config()
    result = run(testbed, cfg, SEED, run_dir / "chaos", duration_s=DURATION_S)
    print("\n" + summary(result))
    doubles = {d.name for d in cfg.doubles}
    ran = [r.step.name for r in result.steps]
    if result.ok:
        # the run proved something: several steps, double faults among them, calls
        # through every window, writes checked
        assert len(ran) >= 3 and doubles & set(ran), ran
        assert result.counts["settled"] > 1000 and result.writes["acked"] > 100, result.counts
        return
    n = shrink(testbed, cfg, SEED, result, run_dir / "chaos", SHRINK_S) if SHRINK_S > 0 else None
    where = (f"shortest failing prefix: {n} step(s) "
             f"({' -> '.join(s.name for s in plan(cfg, SEED, n))}); replay: make chaos "
             f"SEED={SEED} STEPS={n}") if n else \
        f"no shorter failing prefix found; replay: make chaos SEED={SEED} STEPS={len(ran)}"
    raise AssertionError(summary(result) + "\n" + where)
