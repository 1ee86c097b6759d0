"""SHARD=i/N and the merge of run directories (harness/shard.py, harness/report.merge):
the union of the shards is exactly the matrix, no operation twice and none missing (seen
through pytest's own collection with the plugin, no Docker), and the merge of the
shards' run directories gives the same table as one run of them all."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness import report, shard

ROOT = Path(__file__).resolve().parent.parent


def test_shard_spec_errors():
    assert shard.parse("2/3") == (2, 3)
    for bad in ("3", "0/3", "4/3", "a/b", "1/0", "1/2/3"):
        with pytest.raises(shard.ShardError):
            shard.parse(bad)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 40])
def test_every_test_in_exactly_one_shard(n):
    slices = [shard.mine(31, i, n) for i in range(1, n + 1)]
    assert [sum(col) for col in zip(*slices)] == [1] * 31


def collected(*args) -> list[str]:
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                          "-p", "no:cacheprovider", "scenarios", *args],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return [ln for ln in out.stdout.splitlines() if "::test_operation[" in ln]


def test_the_union_of_the_shards_is_exactly_the_matrix():
    whole = collected()
    shards = [collected("--tb-shard", f"{i}/3") for i in (1, 2, 3)]
    union = [t for s in shards for t in s]
    assert len(whole) >= 20
    assert sorted(union) == sorted(whole)               # none missing, none twice
    assert all(abs(len(s) - len(whole) / 3) < 1 for s in shards)


def test_a_bad_shard_is_a_usage_error():
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                          "-p", "no:cacheprovider", "scenarios", "--tb-shard", "4/3"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "need 1 <= i <= N" in out.stderr + out.stdout


# ---- the merge ---------------------------------------------------------------------
OPS = ["kill-master-engine", "kill-slave-engine", "power-off-master", "unit-power-off",
       "cut-master-networks"]


def fake_run(d: Path, ops: list[str], shard_spec: str | None) -> None:
    """A run directory as the plugin leaves it: per operation a result.json, the plan and
    outcomes (run.json), a JUnit file."""
    d.mkdir(parents=True)
    planned = []
    for op in ops:
        k = OPS.index(op)
        status = "failed" if op == "power-off-master" else "ok"
        (d / op).mkdir()
        (d / op / "result.json").write_text(json.dumps({
            "operation": op, "seed": f"seed line {k}", "status": status,
            "expected_transient": "drop", "expected_switchover": True, "switchover_s": 0.1 * k,
            "verdict": {"operation": op, "status": status, "error": None, "checks": [
                {"name": "calls", "status": status, "detail": f"{k} calls",
                 "data": {"counts": {"transient": k, "transient_accepted": k,
                                     "transient_dropped": 0}}}]}}))
        planned.append({"operation": op, "seed": f"seed line {k}", "expected_transient": "drop",
                        "expected_switchover": True, "order": k})
    outcomes = {op: {"call": {"outcome": "passed", "message": ""}} for op in ops}
    junit = d / "pytest.xml"
    junit.write_text(f'<testsuites><testsuite name="pytest" tests="{len(ops)}" failures="0" '
                     f'errors="0" skipped="0">' + "".join(
                         f'<testcase name="test_operation[{op}]"/>' for op in ops)
                     + "</testsuite></testsuites>")
    report.write_run_meta(d, planned, outcomes, shard_spec, str(junit))


def test_a_merge_of_the_shards_gives_the_table_of_one_run(tmp_path):
    fake_run(tmp_path / "one", OPS, None)
    report.write(tmp_path / "one", json.loads((tmp_path / "one" / "run.json").read_text())["planned"],
                 json.loads((tmp_path / "one" / "run.json").read_text())["outcomes"])
    dirs = []
    for i in (1, 2, 3):
        keep = [op for op, k in zip(OPS, shard.mine(len(OPS), i, 3)) if k]
        fake_run(tmp_path / f"shard{i}", keep, f"{i}/3")
        dirs.append(tmp_path / f"shard{i}")
    page = report.merge(tmp_path / "merged", dirs)
    one = json.loads((tmp_path / "one" / "results.json").read_text())
    merged = json.loads((tmp_path / "merged" / "results.json").read_text())
    assert merged == one                        # the same rows, in the matrix's order
    assert [r["operation"] for r in merged] == OPS
    assert "1 failed" in page.read_text() and "4 of 5 operations" in page.read_text()
    suites = __import__("xml.etree.ElementTree", fromlist=["x"]).parse(
        tmp_path / "merged" / "junit.xml").getroot()
    assert suites.get("tests") == "5" and len(suites.findall("testsuite")) == 3


def test_an_operation_in_two_runs_or_a_directory_that_is_no_run_is_refused(tmp_path):
    fake_run(tmp_path / "a", OPS[:3], "1/2")
    fake_run(tmp_path / "b", OPS[2:], "2/2")
    with pytest.raises(report.MergeError, match="power-off-master is in both"):
        report.merge(tmp_path / "m", [tmp_path / "a", tmp_path / "b"])
    assert not (tmp_path / "m").exists()        # nothing half-merged
    (tmp_path / "c").mkdir()
    with pytest.raises(report.MergeError, match="no run.json"):
        report.merge(tmp_path / "m", [tmp_path / "a", tmp_path / "c"])
    shutil.rmtree(tmp_path / "b")


def test_the_merge_command(tmp_path):
    fake_run(tmp_path / "a", OPS[:2], "1/2")
    fake_run(tmp_path / "b", OPS[2:], "2/2")
    out = subprocess.run([sys.executable, "-m", "harness.report", "merge", str(tmp_path / "a"),
                          str(tmp_path / "b"), "--out", str(tmp_path / "m")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert len(json.loads((tmp_path / "m" / "results.json").read_text())) == 5
    bad = subprocess.run([sys.executable, "-m", "harness.report", "merge", str(tmp_path / "a"),
                          str(tmp_path / "a"), "--out", str(tmp_path / "m2")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "error:" in bad.stderr
