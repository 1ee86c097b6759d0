"""The composed verdict as the report and pytest see it (no Docker): every collected
operation is a row, only `ok` is counted ok, and a test whose result.json is not ok
fails even if its body passed."""
import json

from harness import verdict as vd
from harness.report import rows_of, write

pytest_plugins = ["pytester"]


def _result(d, op, checks, error=None):
    v = vd.OperationVerdict(op, checks, error)
    (d / op).mkdir()
    (d / op / "result.json").write_text(json.dumps(
        {"operation": op, "seed": f"seed {op}", "expected_transient": "drop",
         "expected_switchover": True, "status": v.status, "verdict": v.to_dict()}))


def test_compose_rules():
    assert vd.compose([vd.ok("a"), vd.na("b", "slave down")]) == "ok"
    assert vd.compose([vd.ok("a"), vd.unknown("b", "no data")]) == "unknown"
    assert vd.compose([vd.ok("a"), vd.failed("b", "x"), vd.unknown("c", "y")]) == "failed"
    assert vd.compose([vd.na("b", "slave down")]) == "unknown"      # n/a alone proves nothing
    assert vd.compose([]) == "unknown"
    assert vd.OperationVerdict("x", [vd.ok("a")], error="boom").status == "error"


def test_every_operation_is_a_row_and_only_ok_counts(tmp_path):
    _result(tmp_path, "a-ok", [vd.ok("calls", "fine")])
    _result(tmp_path, "b-postcheck-failed", [vd.ok("calls"), vd.failed("post-switchover checks", "routes: x")])
    _result(tmp_path, "c-raised", [], error="TestbedError: boom")
    planned = [{"operation": o, "seed": o, "expected_transient": "accept", "expected_switchover": False}
               for o in ("a-ok", "b-postcheck-failed", "c-raised", "d-setup-error", "e-never-ran")]
    outcomes = {"d-setup-error": {"setup": {"outcome": "failed", "message": "not healthy"}},
                "a-ok": {"teardown": {"outcome": "passed", "message": ""}}}
    rows = {r["operation"]: r["status"] for r in rows_of(tmp_path, planned, outcomes)}
    assert rows == {"a-ok": "ok", "b-postcheck-failed": "failed", "c-raised": "error",
                    "d-setup-error": "error", "e-never-ran": "not run"}
    page = write(tmp_path, planned, outcomes).read_text()
    assert "1 of 5 operations as the seed documents" in page
    assert "routes: x" in page and "not healthy" in page
    assert len(json.loads((tmp_path / "results.json").read_text())) == 5


def test_teardown_failure_turns_an_ok_row_into_an_error(tmp_path):
    _result(tmp_path, "a", [vd.ok("calls")])
    planned = [{"operation": "a", "seed": "a", "expected_transient": "accept", "expected_switchover": False}]
    rows = rows_of(tmp_path, planned, {"a": {"teardown": {"outcome": "failed", "message": "heal failed"}}})
    assert rows[0]["status"] == "error" and "heal failed" in rows[0]["why"]


def test_a_passing_test_with_a_failed_verdict_is_reported_failed(pytester):
    pytester.makeconftest('pytest_plugins = ["harness.plugin"]')
    pytester.makepyfile(test_ops='''
import json, collections, pytest
Op = collections.namedtuple("Op", "id seed transient switchover")
OPS = [Op("good", "s", "accept", False), Op("bad", "s", "accept", False)]

@pytest.mark.parametrize("op", OPS, ids=[o.id for o in OPS])
def test_operation(run_dir, op):
    d = run_dir / op.id
    d.mkdir()
    status = "ok" if op.id == "good" else "failed"
    (d / "result.json").write_text(json.dumps({"operation": op.id, "seed": "s", "status": status,
                                              "verdict": {"checks": []}}))
''')
    res = pytester.runpytest_inprocess("-p", "no:cacheprovider", f"--tb-runs={pytester.path / 'runs'}")
    res.assert_outcomes(passed=1, failed=1)
    res.stdout.fnmatch_lines(["*bad: verdict failed (result.json) but the test passed*"])
    page = next((pytester.path / "runs").glob("*/report.html")).read_text()
    assert "1 of 2 operations as the seed documents" in page


def test_the_progress_line_gives_verdict_switchover_and_calls_by_class():
    from harness.plugin import progress_line
    r = {"operation": "kill-master-gateway", "status": "ok", "switchover_s": 0.3941,
         "verdict": {"checks": [{"name": "calls", "data": {"counts": {
             "established": 309, "transient": 12, "transient_accepted": 0,
             "transient_dropped": 12, "new": 436}}}]}}
    assert progress_line(r, 61.7) == ("[op] kill-master-gateway: ok, switchover 0.394 s, calls 309 "
                                      "established, 12 transient (0 accepted / 12 dropped), 436 new, 62 s")
    assert "no switchover" in progress_line({"operation": "x", "status": "error"}, 1)


def test_the_timeline_marks_the_isup_legs_among_the_sip_calls(tmp_path):
    from harness.history import History
    from harness.report import isup_rows, timeline
    from harness.sipp import CallRecord
    calls = [CallRecord("sip-1", "uac", invite_t=10.0, called="1000", end_t=12.0, outcome="completed"),
             CallRecord("isup-2-11.000", "uac", invite_t=11.0, end_t=13.0, outcome="completed"),
             CallRecord("s2i-1", "uac", invite_t=12.0, called="7710001", end_t=14.0, outcome="dropped")]
    assert isup_rows(calls) == [1, 2]
    h = History(tmp_path / "history.jsonl")
    for c in calls:
        h.call(c)
    h.close()
    assert timeline(tmp_path, {"t_fault": 11.5, "operation": "x", "seed": "y"}) == "timeline.png"
    assert (tmp_path / "timeline.png").stat().st_size > 0


def test_where_the_time_went_sums_each_operations_phases(tmp_path):
    for op, phases in (("a", {"prepare": 1.5, "warm-up": 6.0, "heal under load": 9.0}),
                       ("b", {"prepare": 2.5, "warm-up": 7.0, "post-switchover checks": 4.0})):
        _result(tmp_path, op, [vd.ok("calls")])
        res = json.loads((tmp_path / op / "result.json").read_text())
        (tmp_path / op / "result.json").write_text(json.dumps({**res, "phase_s": phases}))
    page = write(tmp_path).read_text()
    section = page.split("<h2>Where the time went</h2>", 1)[1]
    assert "<td>a</td><td><b>16.5</b></td>" in section
    assert "<td>b</td><td><b>13.5</b></td>" in section
    assert "<th>all 2</th><th>30</th><th>4 (13 %)</th>" in section      # prepare: 1.5 + 2.5
    assert (tmp_path / "phases.png").exists()
