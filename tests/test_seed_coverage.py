"""The matrix covers the seed's test plan (scenarios/seed_test_plan.yaml): every line by
exactly one operation, with the outcome the seed gives."""
from pathlib import Path

import pytest
import yaml

from scenarios.matrix import load, parse

PLAN = Path(__file__).resolve().parent.parent / "scenarios" / "seed_test_plan.yaml"
SECTIONS = ("MySQL operations /", "Toolpack operations /", "Toolpack applications operations /",
            "Host operations /")


def plan_lines() -> list[dict]:
    return yaml.safe_load(PLAN.read_text())["lines"]


def coverage_problems(lines: list[dict], ops) -> list[str]:
    problems = []
    names = {ln["line"] for ln in lines}
    for ln in lines:
        covering = [op for op in ops if op.seed == ln["line"]]
        if len(covering) != 1:
            problems.append(f"{ln['line']!r}: {len(covering)} operations {[o.id for o in covering]}")
            continue
        op = covering[0]
        if (op.switchover, op.transient) != (ln["switchover"], ln["transient"]):
            problems.append(f"{ln['line']!r}: {op.id} has switchover {op.switchover}, transient "
                            f"{op.transient}; the seed: {ln['switchover']}, {ln['transient']}")
    for op in ops:   # an operation under a section of the plan must name one of its lines
        if op.seed.startswith(SECTIONS) and op.seed not in names:
            problems.append(f"{op.id}: seed {op.seed!r} is no line of the test plan")
    return problems


def test_every_seed_line_has_exactly_one_operation_with_the_seeds_outcome():
    assert coverage_problems(plan_lines(), load()) == []


def test_the_plans_fields_say_what_its_words_say():
    lines = plan_lines()
    assert len({ln["line"] for ln in lines}) == len(lines) == 20
    for ln in lines:
        if ln["outcome"] is not None:
            drop = "will drop transient calls" in ln["outcome"]
            assert drop != ("accept transient calls" in ln["outcome"]), ln
            assert ln["transient"] == ("drop" if drop else "accept"), ln
        # the transient calls are dropped exactly when the active role moves
        assert ln["switchover"] == (ln["transient"] == "drop"), ln


ONE = """
defaults: {load: {rate: 5, hold_s: 10, warmup_established: 30, after_s: 12}}
operations:
  - {id: a, seed: "Host operations / Master / Disconnect power",
     fault: {kind: host_power_off, target: master}, switchover: true, transient: drop}
"""
LINE = [{"line": "Host operations / Master / Disconnect power", "switchover": True, "transient": "drop"}]


def test_a_line_without_an_operation_fails():
    ops = parse(ONE.replace("Disconnect power", "Shutdown the server"))
    problems = coverage_problems(LINE, ops)
    assert any("0 operations" in p for p in problems)
    assert any("no line of the test plan" in p for p in problems)


def test_a_line_with_two_operations_fails():
    two = ONE + """  - {id: b, seed: "Host operations / Master / Disconnect power",
     fault: {kind: host_shutdown, target: master}, switchover: true, transient: drop}
"""
    assert "2 operations" in coverage_problems(LINE, parse(two))[0]


@pytest.mark.parametrize("change", [("transient: drop", "transient: accept"),
                                    ("switchover: true", "switchover: false")])
def test_an_operation_with_another_outcome_than_the_seeds_fails(change):
    assert "the seed: True, drop" in coverage_problems(LINE, parse(ONE.replace(*change)))[0]
