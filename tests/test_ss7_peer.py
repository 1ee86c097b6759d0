"""The ss7-peer tool (emulator/ss7/peer.py) run as a subprocess against an in-test system
signalling point (ISUP answerer and TCAP responder, listening on two M2PA links): its
calls, the system's calls it answers, its trace file and summary, a TCAP dialogue, and
its command line."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from emulator.ss7.isup import ANSWERED, NORMAL_CLEARING
from ss7_net import PC_PSTN, PC_SYS, in_service, listening, thread_errors, wait_for

__all__ = ["thread_errors"]
ROOT = Path(__file__).resolve().parent.parent


def peer(*args, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "emulator.ss7.peer", *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


@pytest.fixture
def system():
    node = listening("sys", PC_SYS, PC_PSTN, groups={"unit1": range(1, 17)},
                     answer_after_s=0.05)
    try:
        yield node
    finally:
        node.stop()


def test_a_short_run_both_ways_every_call_traced_from_iam_to_rlc(system, tmp_path):
    trace, summary_file = tmp_path / "calls.jsonl", tmp_path / "summary.json"
    p = peer("--opc", str(PC_PSTN), "--dpc", str(PC_SYS), "--cics", "1-16",
             "--link", f"connect:127.0.0.1:{system.ls.listen_port(0)}",
             "--link", f"connect:127.0.0.1:{system.ls.listen_port(1)}",
             "--proving", "0.2", "--mode", "both", "--rate", "5", "--duration", "2",
             "--hold", "0.5", "--called", "4930100,4930101,493010", "--answer-delay", "0.05",
             "--trace", str(trace), "--summary", str(summary_file),
             "--tcap-dialogues", "2", "--tcap-continue-after", "0.5",
             "--tcap-end-after", "0.3")
    try:
        in_service(system)
        # meanwhile the system calls the peer on three circuits (odd: the ones it controls)
        mine = [system.isup.place_call(f"4930{i}") for i in range(3)]
        wait_for(lambda: all(system.isup.state(c) == ANSWERED for c in mine), 5,
                 "the peer answered the system's calls")
        for c in mine:
            system.isup.release(c)
        out, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode == 0, err
    summary = json.loads(out)
    assert summary == json.loads(summary_file.read_text())
    assert summary["placed"] == summary["answered"] == 10 and summary["failed"] == 0
    assert summary["incoming"] == summary["incoming_answered"] == 3
    assert summary["causes"] == {str(NORMAL_CLEARING): 13}
    assert summary["released_by"] == {"peer": 10, "system": 3}
    assert [d["result"] for d in summary["dialogues"]] == ["ended", "ended"]
    assert summary["isup_errors"] == {}
    calls = [json.loads(line) for line in trace.read_text().splitlines()]
    out_calls = [c for c in calls if c["direction"] == "out"]
    in_calls = [c for c in calls if c["direction"] == "in"]
    assert len(out_calls) == 10 and len(in_calls) == 3
    for c in calls:
        assert c["iam"] <= c["acm"] <= c["anm"] <= c["rel"] <= c["rlc"], c
        assert c["cause"] == NORMAL_CLEARING and c["outcome"] == "answered"
    for c in out_calls:
        assert c["released_by"] == "peer" and c["rel"] - c["anm"] >= 0.5   # the hold time
        assert c["cic"] % 2 == 0                 # the peer (higher point code) seizes even
    assert {c["called"] for c in out_calls} == {"4930100", "4930101", "493010"}
    assert {c["cic"] for c in in_calls} == set(mine)
    assert all(c["released_by"] == "system" for c in in_calls)
    # the system saw the same 13 calls end, and the two dialogues
    assert len(system.isup.ended) == 13 and system.isup.idle()
    assert system.tcap.counts["rx_end"] == 2 and not system.tcap.dialogues


def test_links_that_never_come_up_exit_2_with_the_reason(tmp_path):
    p = peer("--opc", "2", "--dpc", "1", "--link", "connect:127.0.0.1:1",
             "--link-timeout", "0.5", "--mode", "answer", "--duration", "1")
    out, err = p.communicate(timeout=20)
    assert p.returncode == 2 and "links not in service" in err and "Traceback" not in err


def test_help_documents_the_options():
    p = peer("--help")
    out, err = p.communicate(timeout=20)
    assert p.returncode == 0
    for opt in ("--opc", "--dpc", "--link", "--cics", "--mode", "--rate", "--hold",
                "--called", "--calls", "--duration", "--answer-delay", "--trace",
                "--summary", "--tcap-dialogues", "--tcap-continue-after", "example:"):
        assert opt in out, opt


@pytest.mark.parametrize("bad, says", [
    (["--rate", "fast"], "'fast' is not a number"),
    (["--link", "tcp://x"], "expected listen:HOST:PORT"),
    (["--cics", "5-x"], "expected CIC ranges"),
    (["--opc", "20000"], "out of range 0..16383"),
    (["--called", "49a"], "expected digits"),
    (["--mode", "dial"], "invalid choice"),
    (["--hold", "-1"], "must not be negative"),
    (["--duration", None], "needs --calls or --duration"),
])
def test_a_bad_argument_is_a_clear_error_not_a_traceback(bad, says):
    args = {"--opc": "2", "--dpc": "1", "--link": "connect:127.0.0.1:1", "--mode": "call",
            "--duration": "1"}
    flag, value = bad
    if value is None:
        del args[flag]
    else:
        args[flag] = value
    p = peer(*[x for kv in args.items() for x in kv])
    out, err = p.communicate(timeout=20)
    assert p.returncode == 2 and says in err, err
    assert "Traceback" not in err
