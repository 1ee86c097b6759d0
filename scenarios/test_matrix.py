"""The acceptance matrix: every operation of scenarios/matrix.yaml under real SIP load."""
import pytest

from harness.checks import assert_ok
from harness.scenario import run_operation
from scenarios.matrix import load

OPERATIONS = load()


@pytest.mark.parametrize("op", OPERATIONS, ids=[op.id for op in OPERATIONS])
def test_operation(testbed, faults, run_dir, op):
    verdict = run_operation(testbed, faults, op, run_dir / op.id)
    print(f"\n{op.id}: {verdict.summary()}")
    assert_ok(verdict)
