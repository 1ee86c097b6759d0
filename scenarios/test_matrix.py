"""The acceptance matrix: every operation of scenarios/matrix.yaml under real SIP load.
The test passes exactly when the operation's composed verdict is ok (the plugin checks
result.json again when it makes the report)."""
import pytest

from harness.report import allure_attach
from harness.scenario import run_operation
from scenarios.matrix import load

OPERATIONS = load()


@pytest.mark.parametrize("op", OPERATIONS, ids=[op.id for op in OPERATIONS])
def test_operation(testbed, faults, run_dir, op):
    try:
        verdict = run_operation(testbed, faults, op, run_dir / op.id)
    finally:
        allure_attach(run_dir / op.id)    # the verdict and timeline, also of a failed run
    assert verdict.ok, verdict.summary()
