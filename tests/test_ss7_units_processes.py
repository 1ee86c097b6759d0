"""The two units' SS7 nodes (python -m emulator.ss7.spread) and the far end (python -m
emulator.ss7.peer) as processes of their own on 127.0.0.1 (harness/ss7_local.py), the
far end placing calls while the active unit's process is killed (SIGKILL). Judged from
the far end's per-call trace: the other unit's calls kept and released normally later,
the lost unit's calls released with cause 41, its circuits blocked (CGB), every call
placed after the takeover answered on the surviving unit's circuits, the TCAP dialogues
opened before the kill continued and ended after it."""
import json
import time

from emulator.ss7 import isup
from harness.ss7_local import LocalSs7, calls_of
from ss7_net import wait_for


def test_the_active_units_process_killed_under_calls(tmp_path):
    with LocalSs7(tmp_path, cics=16) as s7:
        for unit in ("tmedia-1", "tmedia-2"):
            s7.start_unit(unit)
        wait_for(lambda: s7.status("tmedia-1").get("role") == "active"
                 and s7.status("tmedia-2").get("role") == "standby", 10,
                 "tmedia-1 active, tmedia-2 standby")
        far, trace = s7.far_end("far", "--mode", "call", "--rate", "10", "--duration", "7",
                                "--hold", "2", "--tcap-dialogues", "2",
                                "--tcap-continue-after", "3", "--tcap-end-after", "1")
        # calls up on both units' circuits (the far end takes the even ones it controls first)
        wait_for(lambda: s7.status("tmedia-1").get("isup", {}).get("states", {}).get("answered", 0)
                 >= 14, 10, "14 calls answered")
        s7.kill("tmedia-1")
        t_kill = time.time()
        out, _ = far.communicate(timeout=60)
        survivor = s7.status("tmedia-2")
    summary = json.loads(out)
    calls = calls_of(trace)
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
    assert sum(v for k, v in summary["circuits"].items() if "blocked" in k) == 16, summary["circuits"]
    assert all(d["result"] == "ended" for d in summary["dialogues"]), summary["dialogues"]
    assert not summary["isup_errors"], summary
