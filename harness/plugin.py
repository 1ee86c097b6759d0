"""The pytest plugin: session fixture for the testbed (bring up or attach), a fault set
per test that always heals, and a run directory per session (runs/latest)."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser):
    g = parser.getgroup("testbed")
    g.addoption("--tb-project", default=None, help="compose project name (default $TB_PROJECT or hatb)")
    g.addoption("--tb-keep", action="store_true",
                help="leave a testbed this session brought up running at the end")


def pytest_collection_modifyitems(config, items):
    # everything that uses the testbed is an integration test (needs Docker)
    for item in items:
        if "testbed" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)


_RUN_DIR: list[Path] = []


def pytest_sessionfinish(session, exitstatus):
    # the report of the run, if any scenario wrote results (also after failures)
    if _RUN_DIR and any(_RUN_DIR[0].glob("*/result.json")):
        from .report import write
        print(f"\nreport: {write(_RUN_DIR[0])}")


@pytest.fixture(scope="session")
def run_dir() -> Path:
    runs = ROOT / "runs"
    d = runs / time.strftime("%Y%m%d-%H%M%S")
    d.mkdir(parents=True, exist_ok=True)
    latest = runs / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(d.name)
    _RUN_DIR.append(d)
    return d


@pytest.fixture(scope="session")
def testbed(request):
    from .faults import heal_all
    from .testbed import Testbed

    tb = Testbed(request.config.getoption("--tb-project"))
    attached = tb.running()
    if attached:
        heal_all(tb)       # a killed earlier run may have left a fault behind
    tb.up()
    yield tb
    if not attached and not request.config.getoption("--tb-keep"):
        tb.down()


@pytest.fixture
def faults(testbed):
    """Inject faults through this; they are healed at the end of the test whatever
    happened (failure, error, Ctrl-C), then the testbed must be healthy again."""
    from .faults import FaultSet

    fs = FaultSet(testbed)
    try:
        yield fs
    finally:
        fs.heal()
        testbed.wait_healthy(90, quiet=True)
