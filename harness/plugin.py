"""The pytest plugin: session fixture for the testbed (bring up or attach), a fault set
per test that always heals, and a run directory per session (runs/latest).

Outcomes: a matrix test (one parametrised by `op`) passes exactly when its result.json
says `ok`; `pytest_runtest_makereport` enforces that and records every phase's outcome
in `config.stash`, and the report lists every collected operation with it (also those
that errored in set-up or teardown, were deselected or never ran), so the report and
pytest cannot disagree."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLANNED = pytest.StashKey[list]()        # every collected operation, before deselection
OUTCOMES = pytest.StashKey[dict]()       # op id -> {phase: {"outcome", "message"}}
RUN_DIR = pytest.StashKey[Path]()


def _op(item):
    op = getattr(item, "callspec", None) and item.callspec.params.get("op")
    return op if op is not None and hasattr(op, "id") and hasattr(op, "seed") else None


def pytest_addoption(parser):
    g = parser.getgroup("testbed")
    g.addoption("--tb-project", default=None, help="compose project name (default $TB_PROJECT or hatb)")
    g.addoption("--tb-runs", default=str(ROOT / "runs"),
                help="where run directories (and the `latest` link) go (default runs/)")
    g.addoption("--tb-keep", action="store_true",
                help="leave a testbed this session brought up running at the end")


@pytest.hookimpl(tryfirst=True)      # before -k/-m deselect: the report lists them all
def pytest_collection_modifyitems(config, items):
    planned = config.stash.setdefault(PLANNED, [])
    for item in items:
        # everything that uses the testbed is an integration test (needs Docker)
        if "testbed" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)
        op = _op(item)
        if op is not None:
            planned.append({"operation": op.id, "seed": op.seed,
                            "expected_transient": op.transient,
                            "expected_switchover": op.switchover})


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    op = _op(item)
    if op is None:
        return
    run_dir = item.config.stash.get(RUN_DIR, None)
    if rep.when == "call" and run_dir is not None and rep.passed:
        res = run_dir / op.id / "result.json"
        status = json.loads(res.read_text()).get("status") if res.exists() else "missing"
        if status != "ok":       # the verdict decides, never the test body alone
            rep.outcome = "failed"
            rep.longrepr = f"{op.id}: verdict {status} (result.json) but the test passed"
    rec = item.config.stash.setdefault(OUTCOMES, {}).setdefault(op.id, {})
    message = "" if rep.passed else str(rep.longrepr).strip().splitlines()[-1][:400] \
        if rep.longrepr else ""
    rec[rep.when] = {"outcome": rep.outcome, "message": message}


def pytest_sessionfinish(session, exitstatus):
    # the report of the run (also after failures), every collected operation in it
    run_dir = session.config.stash.get(RUN_DIR, None)
    planned = session.config.stash.get(PLANNED, [])
    if run_dir is not None and (planned or any(run_dir.glob("*/result.json"))):
        from .report import write
        print(f"\nreport: {write(run_dir, planned, session.config.stash.get(OUTCOMES, {}))}")


@pytest.fixture(scope="session")
def run_dir(request) -> Path:
    runs = Path(request.config.getoption("--tb-runs"))
    d = runs / time.strftime("%Y%m%d-%H%M%S")
    d.mkdir(parents=True, exist_ok=True)
    latest = runs / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(d.name)
    request.config.stash[RUN_DIR] = d
    return d


@pytest.fixture(scope="session")
def testbed(request, run_dir):
    from .faults import heal_all
    from .testbed import Testbed

    tb = Testbed(request.config.getoption("--tb-project"))
    attached = tb.running()
    if attached:
        heal_all(tb)       # a killed earlier run may have left a fault behind
    tb.up(logs_dir=run_dir / "bringup-logs")
    yield tb
    if not attached and not request.config.getoption("--tb-keep"):
        tb.down()


@pytest.fixture
def faults(testbed):
    """Inject faults through this; they are healed at the start of the test (what an
    earlier test or a killed run left) and at its end whatever happened (failure, error,
    Ctrl-C), and each time the testbed must be healthy again."""
    from .faults import FaultSet, heal_all

    heal_all(testbed)
    testbed.wait_healthy(90, quiet=True)
    fs = FaultSet(testbed)
    try:
        yield fs
    finally:
        fs.heal()
        testbed.wait_healthy(90, quiet=True)
