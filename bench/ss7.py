"""Benchmark: the system's SS7 side over two units, as processes on this machine
(harness/ss7_local.py: each unit's node `python -m emulator.ss7.spread`, the far end
`python -m emulator.ss7.peer`, all on 127.0.0.1). Not yet the testbed's containers: the
units there do not run SS7.

- MTP3 changeover: the standby unit's process killed (SIGKILL) under the far end's
  calls; the active's changeover of link 1's traffic to link 0, from the failure seen to
  the traffic handed over (its `seconds`), and how it was settled (COA, COO, timer);
- ISUP takeover: the active unit's process killed under calls; from the kill to the
  first call placed after it that the far end got answered;
- ISUP calls/s with 0 failures: the far end places calls at a rate for 5 s (held 1 s);
  the highest rate with none failed, and the messages per link at that rate (the load
  split of the linkset by SLS).

    .venv/bin/python bench/ss7.py [--runs 3] [--rates 25,50,75,100,150]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.ss7_local import LocalSs7, calls_of  # noqa: E402
from harness.util import wait_for  # noqa: E402
from results import Results  # noqa: E402  (bench/results.py)


def started(work: Path, cics: int) -> LocalSs7:
    s7 = LocalSs7(work, cics=cics)
    try:
        for unit in ("tmedia-1", "tmedia-2"):
            s7.start_unit(unit)
        wait_for(lambda: s7.status("tmedia-1").get("role") == "active"
                 and s7.status("tmedia-2").get("role") == "standby", 10, "one active, one standby")
    except BaseException:
        s7.stop()
        raise
    return s7


def up(s7: LocalSs7, unit: str, n: int) -> None:
    wait_for(lambda: s7.status(unit).get("isup", {}).get("states", {}).get("answered", 0) >= n,
             15, f"{n} calls answered")


def changeover(work: Path) -> dict:
    with started(work, 16) as s7:
        far, _ = s7.far_end("far", "--mode", "call", "--rate", "20", "--duration", "5", "--hold", "1")
        up(s7, "tmedia-1", 10)
        s7.kill("tmedia-2")
        wait_for(lambda: s7.status("tmedia-1").get("mtp3", {}).get("changeovers"), 10,
                 "the active's changeover")
        co = s7.status("tmedia-1")["mtp3"]["changeovers"][0]
        far.communicate(timeout=60)
    return co


def takeover(work: Path) -> float:
    with started(work, 16) as s7:
        far, trace = s7.far_end("far", "--mode", "call", "--rate", "50", "--duration", "5",
                                "--hold", "0.5")
        up(s7, "tmedia-1", 10)
        s7.kill("tmedia-1")
        t_kill = time.time()
        far.communicate(timeout=60)
    answered = [c["anm"] for c in calls_of(trace) if c["iam"] > t_kill and c["anm"]]
    if not answered:
        raise RuntimeError("no call answered after the active unit was killed")
    return min(answered) - t_kill


def throughput(work: Path, rate: float) -> tuple[dict, dict]:
    cics = max(16, int(rate * 1.0 * 2))          # a unit's circuits: twice the calls held
    with started(work, cics) as s7:
        far, _ = s7.far_end("far", "--mode", "call", "--rate", str(rate), "--duration", "5",
                            "--hold", "1", "--drain", "5")
        try:
            out, _ = far.communicate(timeout=90)
        except subprocess.TimeoutExpired:      # the far end itself could not keep up
            far.kill()
            return None, {}
        links = s7.status("tmedia-1")["mtp3"]["links"]
    return json.loads(out), links


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--rates", default="25,50,75,100,150")
    a = p.parse_args(argv)
    r = Results(script="ss7")
    r.note("ss7", "processes on 127.0.0.1 (harness/ss7_local.py), not the testbed's units")
    with tempfile.TemporaryDirectory(prefix="bench-ss7-") as tmp:
        tmp = Path(tmp)
        for i in range(a.runs):
            co = changeover(tmp / f"co-{i}")
            r.add("ss7_changeover_s", co["seconds"], "s", kind="mtp3 changeover", by=co["by"])
            print(f"[bench] MTP3 changeover run {i + 1}: {co['seconds'] * 1000:.1f} ms by "
                  f"{co['by']} ({co['retrieved']} retrieved, {co['discarded']} discarded)", flush=True)
            t = takeover(tmp / f"to-{i}")
            r.add("ss7_takeover_s", t, "s", kind="isup takeover")
            print(f"[bench] ISUP takeover run {i + 1}: {t:.3f} s to the first new call answered",
                  flush=True)
        best = None
        for rate in [float(x) for x in a.rates.split(",")]:
            summary, links = throughput(tmp / f"rate-{rate:g}", rate)
            if summary is None:
                print(f"[bench] ISUP {rate:g} calls/s: the far end did not finish in 90 s", flush=True)
                break
            # a call placed and never answered is a failure too (the far end's own count
            # leaves out the calls still open when it gave up)
            failed = max(summary["failed"], summary["placed"] - summary["answered"])
            print(f"[bench] ISUP {rate:g} calls/s: {summary['placed']} placed, "
                  f"{summary['answered']} answered, {failed} failed; messages per link "
                  + ", ".join(f"{s}: {v['traffic_tx']} out / {v['traffic_rx']} in"
                              for s, v in links.items()), flush=True)
            r.add("ss7_failed_calls", failed, "calls", kind=f"{rate:g} calls/s")
            if failed:
                break
            best = (rate, links)
        if best:
            rate, links = best
            r.add("ss7_clean_calls_per_s", rate, "calls/s", kind="isup, hold 1 s")
            for s, v in links.items():
                r.add("ss7_link_messages", v["traffic_tx"] + v["traffic_rx"], "MSUs",
                      kind=f"link {s} at {rate:g} calls/s")
    out = r.save()
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
