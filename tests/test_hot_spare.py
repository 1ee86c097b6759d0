"""The hot spare (emulator/tmedia/hot_spare.py): SIP applications started and waiting,
given their assignment on stdin. The processes are the real `python -m
emulator.tmedia.unit --wait`; an assignment it cannot run with shows in its exit status
and message, which proves the assignment is what it ran with."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from emulator.tmedia.hot_spare import RETRY_S, HotSpare

REPO = Path(__file__).resolve().parents[1]
ARGV = [sys.executable, "-m", "emulator.tmedia.unit"]


def pool(size, env=None):
    import os
    logged = []
    return HotSpare(ARGV, dict(os.environ, PYTHONPATH=str(REPO), **(env or {})), size,
                    log=logged.append), logged


def test_a_waiting_process_runs_with_the_assignment_it_is_given():
    hot, _ = pool(2)
    try:
        hot.fill()
        assert hot.status() == {"size": 2, "waiting": 2, "pids": [p.pid for p in hot.waiting]}
        first = hot.waiting[0]
        # a SIP address that is no IP: the application's own configuration check refuses
        # it, so the exit and the message show the assignment reached main()
        p = hot.take({"TMEDIA_NAME": "tmedia-x", "TMEDIA_SIP_IP": "not-an-ip"})
        assert p is first and p.wait(timeout=30) == 2
        assert hot.status()["waiting"] == 1
    finally:
        hot.close()


def waiting_process(tmp_path, line: bytes):
    """A --wait process given `line`: (exit status, stderr)."""
    import os
    err = tmp_path / "err"
    with open(err, "wb") as f:
        p = subprocess.Popen(ARGV + ["--wait"], env=dict(os.environ, PYTHONPATH=str(REPO)),
                             stdin=subprocess.PIPE, stderr=f, cwd=REPO)
        p.stdin.write(line)
        p.stdin.close()
        rc = p.wait(timeout=30)
    return rc, err.read_text()


def test_the_assignment_reaches_the_applications_configuration(tmp_path):
    rc, err = waiting_process(tmp_path, b'{"TMEDIA_NAME": "tmedia-x", "TMEDIA_SIP_IP": "not-an-ip"}\n')
    assert rc == 2 and "bad configuration" in err and "not-an-ip" in err


def test_a_bad_assignment_is_a_clear_error(tmp_path):
    rc, err = waiting_process(tmp_path, b'["not", "an object"]\n')
    assert rc == 2 and "bad assignment on stdin" in err


def test_closing_the_pool_ends_every_waiting_process():
    hot, _ = pool(3)
    hot.fill()
    procs = list(hot.waiting)
    hot.close()
    assert [p.returncode for p in procs] == [0, 0, 0]     # EOF: exit 0, not killed
    assert hot.status()["waiting"] == 0


def test_with_none_waiting_take_gives_none():
    hot, _ = pool(0)
    hot.fill()
    assert hot.take({"TMEDIA_NAME": "x"}) is None


def test_a_dead_waiting_process_is_replaced_after_a_pause_not_in_a_loop():
    hot, logged = pool(1)
    now = [100.0]
    try:
        hot.fill(clock=lambda: now[0])
        dead = hot.waiting[0]
        dead.kill()
        dead.wait()
        hot.fill(clock=lambda: now[0])
        assert hot.waiting == [] and any("exited" in m for m in logged)
        now[0] += RETRY_S / 2
        hot.fill(clock=lambda: now[0])
        assert hot.waiting == []                      # still pausing
        now[0] += RETRY_S
        hot.fill(clock=lambda: now[0])
        assert len(hot.waiting) == 1 and hot.waiting[0] is not dead
    finally:
        hot.close()
