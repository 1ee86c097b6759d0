"""The two units' SS7 nodes (python -m emulator.ss7.spread) and the far end (python -m
emulator.ss7.peer) as processes of their own on 127.0.0.1, the far end placing calls
while the active unit's process is killed (SIGKILL). Judged from the far end's per-call
trace: the other unit's calls kept and released normally later, the lost unit's calls
released with cause 41, its circuits blocked (CGB), every call placed after the takeover
answered on the surviving unit's circuits, the TCAP dialogues opened before the kill
continued and ended after it."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from emulator.ss7 import isup
from ss7_net import PC_PSTN, PC_SYS, wait_for

ROOT = Path(__file__).resolve().parent.parent
LOOP = "127.0.0.1"
GROUPS = "tmedia-1=1-16,tmedia-2=17-32"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOP, 0))
        return s.getsockname()[1]


def run(module, *args, log: Path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=log.open("w"), text=True)


def status(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):      # not written yet
        return {}


def test_the_active_units_process_killed_under_calls(tmp_path):
    links, mate = [free_port(), free_port()], free_port()
    st = [tmp_path / "tmedia-1.json", tmp_path / "tmedia-2.json"]
    units = []
    for i, name in enumerate(("tmedia-1", "tmedia-2")):
        mate_arg = ["--mate-listen" if i == 0 else "--mate-connect", f"{LOOP}:{mate}"]
        units.append(run("emulator.ss7.spread", "--name", name,
                         "--mate", "tmedia-2" if i == 0 else "tmedia-1",
                         "--opc", str(PC_SYS), "--dpc", str(PC_PSTN), "--slc", str(i),
                         "--link-listen", f"{LOOP}:{links[i]}", *mate_arg, "--groups", GROUPS,
                         *(["--preferred"] if i == 0 else []), "--proving", "0.2",
                         "--answer-delay", "0.05", "--status", str(st[i]),
                         log=tmp_path / f"{name}.log"))
    trace = tmp_path / "calls.jsonl"
    peer = None
    try:
        wait_for(lambda: status(st[0]).get("role") == "active"
                 and status(st[1]).get("role") == "standby", 10, "tmedia-1 active, tmedia-2 standby")
        peer = run("emulator.ss7.peer", "--opc", str(PC_PSTN), "--dpc", str(PC_SYS),
                   "--cics", "1-32", "--link", f"connect:{LOOP}:{links[0]}",
                   "--link", f"connect:{LOOP}:{links[1]}", "--proving", "0.2",
                   "--mode", "call", "--rate", "10", "--duration", "7", "--hold", "2",
                   "--trace", str(trace), "--tcap-dialogues", "2",
                   "--tcap-continue-after", "3", "--tcap-end-after", "1",
                   log=tmp_path / "peer.log")
        # calls up on both units' circuits (the far end takes the even ones it controls first)
        wait_for(lambda: sum(v for k, v in status(st[0]).get("isup", {}).get("states", {}).items()
                             if k == "answered") >= 14, 10, "14 calls answered")
        units[0].send_signal(signal.SIGKILL)
        t_kill = time.time()
        units[0].wait(5)
        out, _ = peer.communicate(timeout=60)
    finally:
        for p in units + ([peer] if peer else []):
            if p.poll() is None:
                p.kill()
                p.wait(5)
    summary = json.loads(out)
    calls = [json.loads(line) for line in trace.read_text().splitlines()]
    survivor = status(st[1])
    assert survivor["role"] == "active" and survivor["takeovers"], survivor
    assert survivor["isup"]["groups_down"] == ["tmedia-1"]
    t_over = survivor["takeovers"][0]["t"]
    lost_unit = set(range(1, 17))

    def up_at_kill(c):
        return c["anm"] is not None and c["anm"] < t_kill and (c["rel"] or 1e18) > t_kill

    kept = [c for c in calls if up_at_kill(c) and c["cic"] not in lost_unit]
    cut = [c for c in calls if up_at_kill(c) and c["cic"] in lost_unit]
    assert len(kept) >= 3 and len(cut) >= 3, (len(kept), len(cut))
    for c in kept:             # kept through the kill, released by the far end after its hold
        assert (c["outcome"], c["released_by"], c["cause"]) == ("answered", "peer", isup.NORMAL_CLEARING), c
        assert c["rlc"] is not None and c["rel"] - c["anm"] >= 1.9, c
    for c in cut:              # no trunk HA: the lost unit's calls released by the system
        assert (c["released_by"], c["cause"]) == ("system", isup.TEMPORARY_FAILURE), c
    new = [c for c in calls if c["iam"] > t_over + 0.5]
    assert len(new) >= 10 and all(c["outcome"] == "answered" and c["cic"] not in lost_unit
                                  for c in new), new
    assert summary["circuits"].get("blocked", 0) == 16 or \
        sum(v for k, v in summary["circuits"].items() if "blocked" in k) == 16, summary["circuits"]
    assert all(d["result"] == "ended" for d in summary["dialogues"]), summary["dialogues"]
    assert not summary["isup_errors"], summary
