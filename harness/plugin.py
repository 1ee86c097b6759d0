"""The pytest plugin: session fixture for the testbed (bring up or attach), a fault set
per test that always heals, and a run directory per session (runs/latest).

Outcomes: a matrix test (one parametrised by `op`) passes exactly when its result.json
says `ok`; `pytest_runtest_makereport` enforces that and records every phase's outcome
in `config.stash`, and the report lists every collected operation with it (also those
that errored in set-up or teardown, were deselected or never ran), so the report and
pytest cannot disagree."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from . import shard

ROOT = Path(__file__).resolve().parent.parent
PLANNED = pytest.StashKey[list]()        # every collected operation, before deselection
OUTCOMES = pytest.StashKey[dict]()       # op id -> {phase: {"outcome", "message"}}
RUN_DIR = pytest.StashKey[Path]()
REBUILDS = pytest.StashKey[int]()     # testbeds brought up anew after one broke
SWEPT = pytest.StashKey[bool]()      # the last test's fault set swept at its end, nothing ran since


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
    g.addoption("--tb-shard", default=os.environ.get("TB_SHARD") or None,
                help="run slice i of N (i/N, default $TB_SHARD; harness/shard.py)")


@pytest.hookimpl(tryfirst=True)      # before -k/-m deselect: the report lists them all
def pytest_collection_modifyitems(config, items):
    order = {id(it): k for k, it in enumerate(items)}    # the place in the whole collection
    spec = config.getoption("--tb-shard")
    if spec:
        # the shard's slice first: the report lists the operations of this shard only
        # (the merge of all shards lists them all)
        try:
            i, n = shard.parse(spec)
        except shard.ShardError as exc:
            raise pytest.UsageError(str(exc)) from None
        keep = shard.mine(len(items), i, n)
        config.hook.pytest_deselected(items=[it for it, k in zip(items, keep) if not k])
        items[:] = [it for it, k in zip(items, keep) if k]
    planned = config.stash.setdefault(PLANNED, [])
    for item in items:
        # everything that uses the testbed is an integration test (needs Docker)
        if "testbed" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)
        op = _op(item)
        if op is not None:
            planned.append({"operation": op.id, "seed": op.seed,
                            "expected_transient": op.transient,
                            "expected_switchover": op.switchover, "order": order[id(item)]})


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    op = _op(item)
    if op is None:
        if rep.failed and "testbed" in getattr(item, "fixturenames", ()):
            # why, at once: a CI log cut off by its time limit never shows pytest's summary
            tr = item.config.pluginmanager.get_plugin("terminalreporter")
            crash = getattr(rep.longrepr, "reprcrash", None)
            last = (crash.message if crash else str(rep.longrepr).strip().splitlines()[-1]
                    if rep.longrepr else "").replace("\n", " ")
            if len(last) > 800:     # what failed is at the start, the last words at the end
                last = f"{last[:400]} ... {last[-400:]}"
            if tr is not None:
                tr.write_line(f"\n[{'error' if rep.when != 'call' else 'fail'}] {item.nodeid}: {last}")
        return
    run_dir = item.config.stash.get(RUN_DIR, None)
    if rep.when == "call" and run_dir is not None and rep.passed:
        res = run_dir / op.id / "result.json"
        status = json.loads(res.read_text()).get("status") if res.exists() else "missing"
        if status != "ok":       # the verdict decides, never the test body alone
            rep.outcome = "failed"
            rep.longrepr = f"{op.id}: verdict {status} (result.json) but the test passed"
    if rep.when == "call" and run_dir is not None:
        # one line per operation as it ends (pytest shows nothing else until the end)
        res = run_dir / op.id / "result.json"
        line = progress_line(json.loads(res.read_text()), rep.duration) if res.exists() \
            else f"{op.id}: {rep.outcome}, no result.json"
        tr = item.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.write_line(line)
    rec = item.config.stash.setdefault(OUTCOMES, {}).setdefault(op.id, {})
    message = "" if rep.passed else str(rep.longrepr).strip().splitlines()[-1][:400] \
        if rep.longrepr else ""
    rec[rep.when] = {"outcome": rep.outcome, "message": message}


def progress_line(result: dict, duration_s: float) -> str:
    """`op: status, switchover s, calls by class (transient accepted/dropped), wall s`."""
    calls = next((c for c in (result.get("verdict") or {}).get("checks", [])
                  if c.get("name") == "calls"), {})
    n = (calls.get("data") or {}).get("counts") or {}
    sw = result.get("switchover_s")
    parts = [f"{result.get('operation')}: {result.get('status')}",
             f"switchover {sw:.3f} s" if isinstance(sw, (int, float)) else "no switchover",
             f"calls {n.get('established', '?')} established, {n.get('transient', '?')} transient "
             f"({n.get('transient_accepted', '?')} accepted / {n.get('transient_dropped', '?')} "
             f"dropped), {n.get('new', '?')} new" + (f", {n['lost']} lost" if n.get("lost") else ""),
             f"{duration_s:.0f} s"]
    return "[op] " + ", ".join(parts)


@pytest.hookimpl(trylast=True)       # after junitxml wrote its file: it is copied in
def pytest_sessionfinish(session, exitstatus):
    # the report of the run (also after failures), every collected operation in it
    run_dir = session.config.stash.get(RUN_DIR, None)
    planned = session.config.stash.get(PLANNED, [])
    if run_dir is not None and (planned or any(run_dir.glob("*/result.json"))):
        from .report import write, write_run_meta
        outcomes = session.config.stash.get(OUTCOMES, {})
        # what a merge of several machines' runs needs: this run's plan, pytest's
        # outcomes, its shard, and its JUnit file
        write_run_meta(run_dir, planned, outcomes, session.config.getoption("--tb-shard"),
                       getattr(session.config.option, "xmlpath", None))
        print(f"\nreport: {write(run_dir, planned, outcomes)}")


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


MAX_REBUILDS = 2     # then the session stops: a testbed that breaks again and again


@pytest.fixture(autouse=True)
def _healthy_testbed(request):
    """Every test that uses the testbed starts on a healthy one. One test that leaves it
    broken beyond what heal_all repairs must fail alone, not turn every later test into
    an error that waits out its own deadline (a run that overran CI's time): heal, wait,
    and if it is still not healthy, save every node's log and bring up a new testbed.
    The test that broke it has failed already, or fails here if it is this one's check."""
    if "testbed" not in request.fixturenames:
        yield
        return
    from .faults import heal_all
    from .testbed import TestbedError, log

    tb = request.getfixturevalue("testbed")
    try:
        healthy = tb.health()[0]
    except TestbedError:
        healthy = False
    if not healthy:
        try:
            heal_all(tb)      # raises too when a node is gone altogether
            tb.wait_healthy(90, quiet=True)
        except TestbedError as exc:
            rebuilds = request.config.stash.get(REBUILDS, 0) + 1
            request.config.stash[REBUILDS] = rebuilds
            run_dir = request.getfixturevalue("run_dir")
            logs = tb.save_logs(run_dir / f"rebuild-{rebuilds}-logs")
            if rebuilds > MAX_REBUILDS:
                pytest.exit(f"testbed broken again before {request.node.nodeid} after "
                            f"{MAX_REBUILDS} rebuilds: {exc} (logs in {logs})", returncode=1)
            msg = (f"REBUILD {rebuilds}: testbed not healthy before {request.node.nodeid} "
                   f"even after heal: {exc}; logs in {logs}; bringing up a new one")
            log(msg)
            tr = request.config.pluginmanager.get_plugin("terminalreporter")
            if tr is not None:      # shown even when the test's own output is captured
                tr.write_line(f"\n[{msg}]")
            tb.down()
            tb.up(logs_dir=run_dir / f"rebuild-{rebuilds}-bringup-logs")
    yield


def pytest_runtest_setup(item):
    if "faults" not in getattr(item, "fixturenames", ()):
        item.config.stash[SWEPT] = False    # a test without the fault set may leave anything


@pytest.fixture
def faults(request, testbed):
    """Inject faults through this; they are healed at the start of the test (what an
    earlier test or a killed run left) and at its end whatever happened (failure, error,
    Ctrl-C), and each time the testbed must be healthy again. The sweep at the start is
    left out when the test just before was one of these and its end swept already."""
    from .faults import FaultSet, heal_all

    stash = request.config.stash
    if not stash.get(SWEPT, False):
        heal_all(testbed)
        testbed.wait_healthy(90, quiet=True)
    stash[SWEPT] = False
    fs = FaultSet(testbed)
    try:
        yield fs
    finally:
        fs.heal()
        testbed.wait_healthy(90, quiet=True)
        stash[SWEPT] = True
