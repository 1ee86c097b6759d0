"""Benchmark: how many calls a second one TMedia unit carries, and how it sheds the rest.

SIPp drives one unit (tmedia-1's address on the bond) at a fixed rate for `--seconds`,
and the far end answers at sipp-uas. Per rate and run it reports the calls that
succeeded and failed (from SIPp's own counters), the response-time distribution
(INVITE to 200, SIPp's `-trace_rtt`), the 503s the unit shed, and whether the unit
rebooted or logged a traceback. Scenarios:

- `uac`: SIPp's built-in uac (signalling only), far end the built-in uas;
- `uac_pcap`: SIPp's built-in uac_pcap (RTP from a pcap), far end uas with -rtp_echo;
- `tb`: the project's scenarios/sipp/uac.xml and uas.xml (X-Tb headers, RTP).

The clean rate of a unit is the highest rate with 0 failed calls in every run. The figures
go to results.json / results.md (bench/results.py; BENCH_DIR to add to another bench's),
each run's full record to throughput.json beside them.

    .venv/bin/python bench/throughput.py [--rate 50 --rate 100 ...] [--hold 0] \
        [--scenario uac] [--runs 3] [--seconds 20]
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.testbed import Testbed  # noqa: E402
from harness.util import wait_for  # noqa: E402
from results import Results  # noqa: E402  (bench/results.py)

UAC_XML = "/opt/scenarios/uac.xml"
UAS_XML = "/opt/scenarios/uas.xml"


def _exec(c, cmd, workdir="/work", detach=False):
    return c.exec_run(["sh", "-c", cmd], workdir=workdir, detach=detach)


def unit_status(tb: Testbed, board: str = "tmedia-1") -> dict:
    """The board's status (its control agent may answer late while the machine is
    saturated: asked again, up to 10 s)."""
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1.0)
        for _ in range(10):
            s.sendto(b'{"op":"status","seq":1}', (tb.ip(board, "ctrl-a"), 7000))
            try:
                return json.loads(s.recv(65000))
            except TimeoutError:
                continue
    raise TimeoutError(f"{board} did not answer its status for 10 s")


def cpu_s(tb: Testbed) -> dict:
    """CPU seconds used so far by each container of the testbed (cgroup v1 or v2)."""
    out = {}
    for c in tb.docker.containers.list(filters={"label": f"com.docker.compose.project={tb.project}"}):
        svc = c.labels.get("com.docker.compose.service", c.name)
        for path, scale in ((f"/sys/fs/cgroup/cpuacct/docker/{c.id}/cpuacct.usage", 1e-9),
                            (f"/sys/fs/cgroup/system.slice/docker-{c.id}.scope/cpu.stat", 1e-6)):
            try:
                text = Path(path).read_text()
            except OSError:
                continue
            if text.startswith("usage_usec"):
                text = text.split()[1]
            out[svc] = int(text.split()[0]) * scale
            break
    return out


def _stats(path: Path) -> dict:
    """SIPp's last statistics line (-trace_stat): calls succeeded and failed."""
    rows = list(csv.reader(path.open(), delimiter=";"))
    head, last = rows[0], rows[-1]
    val = dict(zip(head, last))
    return {"succeeded": int(val["SuccessfulCall(C)"]), "failed": int(val["FailedCall(C)"]),
            "created": int(val["TotalCallCreated"])}


def _rtts(d: Path) -> list[float]:
    out = []
    for f in d.glob("*_rtt.csv"):
        for row in csv.reader(f.open(), delimiter=";"):
            try:
                out.append(float(row[1]))
            except (ValueError, IndexError):
                continue
    return sorted(out)


def _pct(xs, q):
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else None


def run_once(tb: Testbed, scenario: str, rate: float, hold_s: float, seconds: float,
             out: Path, unit: str = "tmedia-1") -> dict:
    name = f"{scenario}-r{rate:g}-h{hold_s:g}-{time.strftime('%H%M%S')}"
    host_dir = tb.dir / "sipp" / "bench" / name
    host_dir.mkdir(parents=True, exist_ok=True)
    work = f"/work/bench/{name}"
    uac, uas = tb.container("sipp-uac"), tb.container("sipp-uas")
    uas_ip, uac_ip, target = tb.ip("sipp-uas", "voip"), tb.ip("sipp-uac", "voip"), tb.ip(unit, "voip")
    if scenario == "tb":
        shutil.copy(ROOT / "scenarios/sipp/uac.xml", host_dir / "uac.xml")
        shutil.copy(ROOT / "scenarios/sipp/uas.xml", host_dir / "uas.xml")
        uas_sc, uac_sc = "-sf uas.xml -rtp_echo", "-sf uac.xml"
    elif scenario == "uac_pcap":
        uas_sc, uac_sc = "-sn uas -rtp_echo", "-sn uac_pcap"
        # the built-in uac_pcap plays pcap/g711a.pcap, relative to its directory
        _exec(uac, "mkdir -p pcap && ln -sf /usr/share/sip-tester/*.pcap pcap/", workdir=work)
    else:
        uas_sc, uac_sc = "-sn uas", "-sn uac"
    before, cpu0 = unit_status(tb), cpu_s(tb)
    ncalls = max(1, int(rate * seconds))
    _exec(uas, f"sipp {uas_sc} -i {uas_ip} -p 5060 -mi {uas_ip} -mp 6000 -nostdin -bg "
               f"-trace_err >/dev/null 2>&1; echo started", workdir=work)
    wait_for(lambda: "5060" in _exec(uas, "ss -lun").output.decode(), 10, "the far end bound")
    t0 = time.time()
    limit = int(rate * (hold_s + 10)) + 50
    r = _exec(uac, f"timeout {int(seconds + hold_s + 60)} sipp {target}:5060 {uac_sc} -s 1000 "
                   f"-i {uac_ip} -p 5080 -mi {uac_ip} -mp 6200 -r {rate:g} -m {ncalls} -l {limit} "
                   f"-d {int(hold_s * 1000)} -recv_timeout 5000 -nostdin -trace_stat -fd 1 "
                   f"-stf stat.csv -trace_rtt -rtt_freq 1 -trace_err >sipp.out 2>&1; echo rc=$?",
              workdir=work)
    wall = time.time() - t0
    _exec(uas, "pkill -x sipp; true")
    cpu1, after = cpu_s(tb), unit_status(tb)
    st = _stats(host_dir / "stat.csv")
    rt = _rtts(host_dir)
    logs = tb.container(unit).logs(since=int(t0) - 1).decode(errors="replace")
    res = {"scenario": scenario, "rate": rate, "hold_s": hold_s, "calls": ncalls, **st,
           "wall_s": round(wall, 1), "sipp_rc": r.output.decode().strip()[-8:],
           "rt_p50_ms": _pct(rt, 0.5), "rt_p99_ms": _pct(rt, 0.99), "rt_max_ms": rt[-1] if rt else None,
           "shed": (after.get("calls_shed") or 0) - (before.get("calls_shed") or 0),
           "reboots": (after.get("boots") or 0) - (before.get("boots") or 0),
           "tracebacks": logs.count("Traceback"),
           # CPU per container over the run, in ms per call placed (what bounds the rate
           # on a machine this size)
           "cpu_ms_per_call": {k: round(1000 * (cpu1[k] - cpu0.get(k, 0)) / ncalls, 2)
                               for k in sorted(cpu1)},
           "cpu_cores": round(sum(cpu1[k] - cpu0.get(k, 0) for k in cpu1) / wall, 2)}
    if res["shed"] < 0:          # the SIP application restarted: its counter began again
        res["shed"] = None
    (out / f"{name}.json").write_text(json.dumps(res, indent=2))
    return res


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--rate", type=float, action="append")
    p.add_argument("--hold", type=float, action="append")
    p.add_argument("--scenario", action="append", choices=("uac", "uac_pcap", "tb"))
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--seconds", type=float, default=20)
    args = p.parse_args()
    tb = Testbed()
    if not tb.running():
        print("bring the testbed up first (make testbed-up)", file=sys.stderr)
        return 2
    data = Results()
    data.note_environment(**vars(args))
    out = data.dir
    results = []
    try:
        for sc in args.scenario or ["uac"]:
            for hold in args.hold or [0]:
                for rate in args.rate or [50, 100, 200]:
                    for i in range(args.runs):
                        r = run_once(tb, sc, rate, hold, args.seconds, out)
                        results.append(r)
                        _record(data, r)
                        print(f"{sc} {rate:g}/s hold {hold:g}s run {i + 1}: {r['succeeded']} ok, "
                              f"{r['failed']} failed of {r['calls']}, shed {r['shed']}, response p50 "
                              f"{r['rt_p50_ms']} p99 {r['rt_p99_ms']} ms, reboots {r['reboots']}, "
                              f"tracebacks {r['tracebacks']}, testbed CPU {r['cpu_cores']} cores",
                              flush=True)
                        tb.wait_healthy(60, quiet=True)
                _record_clean_rate(data, results, sc, hold)
    finally:
        (out / "throughput.json").write_text(json.dumps(results, indent=2))
        data.save()
    print(f"results in {out}")
    return 0


def _record(data: Results, r: dict):
    labels = {"scenario": r["scenario"], "rate": r["rate"], "hold": r["hold_s"]}
    data.add("succeeded", r["succeeded"], "calls", **labels)
    data.add("failed", r["failed"], "calls", **labels)
    for figure in ("rt_p50_ms", "rt_p99_ms"):
        if r[figure] is not None:            # None: SIPp measured no response time
            data.add(figure, r[figure], "ms", **labels)


def _record_clean_rate(data: Results, results: list[dict], scenario: str, hold: float):
    """unit_clean_cps: the highest rate tried with 0 failed calls in every run."""
    runs = [r for r in results if r["scenario"] == scenario and r["hold_s"] == hold]
    clean = [rate for rate in {r["rate"] for r in runs}
             if all(r["failed"] == 0 for r in runs if r["rate"] == rate)]
    if clean:
        data.add("unit_clean_cps", max(clean), "calls/s", scenario=scenario, hold=hold)
    else:                                     # no figure to record: say so beside the tables
        data.note(f"unit_clean_cps scenario={scenario} hold={hold}",
                  "none: calls failed at every rate tried")


if __name__ == "__main__":
    sys.exit(main())
