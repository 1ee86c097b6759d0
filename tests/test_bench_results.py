"""bench/results.py (no Docker): the summary statistics, several scripts merged into one
BENCH_DIR, the markdown, ratios, the per-fault plots and the re-rendering CLI."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from results import Results, default_dir, summarize  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_summary_median_and_nearest_rank_p99():
    s = summarize([5, 1, 3, 2, 4])
    assert (s["n"], s["min"], s["median"], s["max"], s["mean"]) == (5, 1, 3, 5, 3)
    assert s["p99"] == 5 and s["p99_is_max"]          # few runs: the p99 is the max, and says so
    assert s["stdev"] == pytest.approx(1.5811, abs=1e-4)
    assert summarize([7])["stdev"] is None
    s = summarize(list(range(1, 201)))                 # nearest rank: ceil(0.99 * 200) = 198th
    assert s["p99"] == 198 and not s["p99_is_max"] and s["median"] == 100.5


def test_bad_measurements_are_refused(tmp_path):
    r = Results(tmp_path)
    with pytest.raises(ValueError, match="not a finite number"):
        r.add("switchover_s", None, "s", fault="x")
    r.add("switchover_s", 1.0, "s", fault="x")
    with pytest.raises(ValueError, match="is in 's', not 'ms'"):
        r.add("switchover_s", 1000, "ms", fault="x")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "results.json").write_text("[]")
    with pytest.raises(ValueError, match="not a bench results file"):
        Results(tmp_path / "other")


def test_two_scripts_merge_into_one_bench_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_DIR", str(tmp_path / "bench-1"))
    a = Results(script="bringup.py")
    a.add("bringup_s", 40.0, "s")
    a.note("cpu count", 2)
    a.save()
    b = Results(script="switchover.py")
    assert b.dir == tmp_path / "bench-1"
    b.add("bringup_s", 44.0, "s")
    b.add("switchover_s", 0.5, "s", fault="kill-master-gateway")
    b.save()
    data = json.loads((tmp_path / "bench-1" / "results.json").read_text())
    assert [m["script"] for m in data["measurements"]] == ["bringup.py", "switchover.py",
                                                           "switchover.py"]
    assert data["notes"] == {"cpu count": 2}
    up = next(s for s in data["summary"] if s["figure"] == "bringup_s")
    assert (up["n"], up["median"]) == (2, 42.0)
    monkeypatch.delenv("BENCH_DIR")
    assert default_dir().parent == ROOT / "runs" and default_dir().name.startswith("bench-")


def test_markdown_table_per_figure(tmp_path):
    r = Results(tmp_path)
    for v in (0.4, 0.5, 0.9):
        r.add("switchover_s", v, "s", fault="kill-master-gateway")
    r.add("switchover_s", 2.0, "s", fault="pause-master-gateway")
    for rate in (50, 100):
        r.add("unit_clean_cps", rate, "calls/s", scenario="uac", hold=0)
    r.note("git commit", "abc1234")
    md = r.save().read_text()
    assert "## switchover_s" in md and "## unit_clean_cps" in md
    assert "| fault | runs | min | median | p99 | max | unit |" in md
    assert "| kill-master-gateway | 3 | 0.4 | 0.5 | = max | 0.9 | s |" in md
    assert "| pause-master-gateway | 1 | 2 | 2 | = max | 2 | s |" in md
    assert "| scenario | hold | runs |" in md and "| uac | 0 | 2 | 50 | 75 | = max | 100 | calls/s |" in md
    assert "| git commit | abc1234 |" in md
    assert "with fewer than 100 runs it is the max" in md


def test_ratio_of_the_medians(tmp_path):
    r = Results(tmp_path)
    for v in (1.0, 2.0, 3.0):
        r.add("switchover_s", v, "s", fault="kill-host")
    for v in (4.0, 8.0):
        r.add("keepalived_switchover_s", v, "s", fault="kill-host")
    r.ratio("ours over keepalived", "switchover_s", {"fault": "kill-host"},
            "keepalived_switchover_s", {"fault": "kill-host"})
    with pytest.raises(KeyError, match="no measurements of switchover_s fault=typo"):
        r.ratio("bad", "switchover_s", {"fault": "typo"}, "keepalived_switchover_s", {"fault": "kill-host"})
    md = r.save().read_text()
    (v,) = json.loads((tmp_path / "results.json").read_text())["ratio_values"]
    assert v["ratio"] == pytest.approx(2.0 / 6.0)
    assert (v["numerator"]["n"], v["denominator"]["n"]) == (3, 2)
    assert "## Ratios (of the medians)" in md
    assert ("| ours over keepalived | switchover_s fault=kill-host | 2 | 3 | "
            "keepalived_switchover_s fault=kill-host | 6 | 2 | 0.333 |") in md


def test_png_for_a_figure_with_a_fault_label(tmp_path):
    r = Results(tmp_path)
    for v in (0.01, 0.02, 5.0):                         # > 2 decades: a log axis
        r.add("switchover_s", v, "s", fault="kill-master-gateway")
    r.add("switchover_s", 0.3, "s", fault="cut-lan")
    r.add("bond_gap_ms", 80, "ms", kind="port-down")
    r.add("bringup_s", 40.0, "s")                       # no fault label: no plot
    md = r.save().read_text()
    for name in ("switchover_s.png", "bond_gap_ms.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC
        assert f"]({name})" in md
    assert not (tmp_path / "bringup_s.png").exists()


def test_cli_re_renders_from_results_json(tmp_path):
    r = Results(tmp_path)
    r.add("switchover_s", 0.5, "s", fault="kill-master-gateway")
    r.save()
    (tmp_path / "results.md").unlink()
    (tmp_path / "switchover_s.png").unlink()
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "results.py"), str(tmp_path)],
                       capture_output=True, text=True, check=True)
    assert "| kill-master-gateway | 1 |" in p.stdout
    assert (tmp_path / "results.md").read_text().strip() == p.stdout.strip()
    assert (tmp_path / "switchover_s.png").read_bytes()[:8] == PNG_MAGIC
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "results.py"), str(tmp_path / "none")],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "no results.json" in p.stderr


def test_throughput_records_runs_and_the_clean_rate(tmp_path, monkeypatch, capsys):
    import throughput

    class Testbed:
        def running(self):
            return True

        def wait_healthy(self, *a, **k):
            pass

    def run_once(tb, scenario, rate, hold_s, seconds, out):
        return {"scenario": scenario, "rate": rate, "hold_s": hold_s, "calls": 10,
                "succeeded": 10, "failed": 0 if rate <= 100 else 2, "shed": 0, "rt_p50_ms": 2.0,
                "rt_p99_ms": None, "reboots": 0, "tracebacks": 0, "cpu_cores": 1.0}
    monkeypatch.setattr(throughput, "Testbed", Testbed)
    monkeypatch.setattr(throughput, "run_once", run_once)
    monkeypatch.setenv("BENCH_DIR", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["throughput.py", "--runs", "2"])
    assert throughput.main() == 0
    assert "uac 200/s hold 0s run 2: 10 ok, 2 failed of 10" in capsys.readouterr().out
    summary = {(s["figure"], tuple(s["labels"].values())): s
               for s in json.loads((tmp_path / "results.json").read_text())["summary"]}
    assert summary[("unit_clean_cps", ("uac", 0))]["median"] == 100
    assert summary[("failed", ("uac", 200, 0))]["n"] == 2
    assert ("rt_p99_ms", ("uac", 50, 0)) not in summary          # None is not a measurement
    assert len(json.loads((tmp_path / "throughput.json").read_text())) == 6
