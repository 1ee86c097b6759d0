"""The Toolpack service monitor with real child processes (tiny stand-in applications
that heartbeat like app_runner does): crash -> restart, SIGSTOP -> killed and restarted
within the deadline, a busy silent one -> left alone until BUSY_S, Don't Run -> stopped,
quit -> every application stopped."""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from emulator.host import service_monitor, state

STAND_IN = """
import sys, threading
from emulator.host.app_runner import heartbeat
threading.Thread(target=heartbeat, args=(sys.argv[1], int(sys.argv[2])), daemon=True).start()
threading.Event().wait()
"""

# Beats until the file argv[3] exists, then stops beating and spins (always runnable):
# starved or livelocked, not hung.
SPINNER = """
import os, sys, threading, time, json, socket
def beat():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    msg = json.dumps({"app": sys.argv[1], "pid": os.getpid()}).encode()
    while not os.path.exists(sys.argv[3]):
        s.sendto(msg, ("127.0.0.1", int(sys.argv[2])))
        time.sleep(0.05)
threading.Thread(target=beat, daemon=True).start()
while True:
    pass
"""


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def monitor(tmp_path, monkeypatch):
    monkeypatch.setattr(state, "RUN_DIR", str(tmp_path))
    port = free_udp_port()
    m = service_monitor.Monitor(apps=("gateway", "toolpack_engine"),
                                command=lambda app: [sys.executable, "-c", STAND_IN, app, str(port)],
                                port=port, sysmgr_port=free_udp_port())
    m.start_all()
    yield m
    for app in m.apps.values():
        if app.proc and app.proc.poll() is None:
            app.proc.kill()
            app.proc.wait()


def run_until(m, cond, deadline_s, what):
    end = time.monotonic() + deadline_s
    while not cond():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        m.tick()


def kinds(m, app):
    return [e["kind"] for e in m.events if e["app"] == app]


def test_all_start_and_heartbeat(monitor):
    run_until(monitor, lambda: all(a.last_hb for a in monitor.apps.values()), 10, "heartbeats")
    info = state.read("monitor")["apps"]
    assert all(i["state"] == "running" and i["pid"] for i in info.values())


def test_crashed_app_is_restarted_at_once(monitor):
    gw = monitor.apps["gateway"]
    run_until(monitor, lambda: gw.last_hb, 10, "first heartbeat")
    old = gw.proc.pid
    os.kill(old, signal.SIGKILL)
    t0 = time.monotonic()
    run_until(monitor, lambda: gw.proc.pid != old, 5, "restart")
    assert time.monotonic() - t0 < 1.0
    assert kinds(monitor, "gateway")[-2:] == ["crash", "restart"] and gw.restarts == 1
    assert all(e["t"] for e in monitor.events)   # every event has its timestamp


@pytest.fixture
def short_grace(monkeypatch):
    monkeypatch.setattr(service_monitor, "FIRST_BEAT_S", 2.0)


def test_deadlocked_app_is_killed_and_restarted_within_the_deadline(short_grace, monitor):
    eng = monitor.apps["toolpack_engine"]
    run_until(monitor, lambda: eng.last_hb and time.monotonic() - eng.started_at
              > service_monitor.FIRST_BEAT_S, 10, "first heartbeat, past the start's grace")
    old = eng.proc.pid
    os.kill(old, signal.SIGSTOP)
    t0 = time.monotonic()
    run_until(monitor, lambda: eng.proc.pid != old, 10, "deadlock restart")
    took = time.monotonic() - t0
    assert took <= service_monitor.DEADLOCK_S + 0.5, took
    assert "deadlock" in kinds(monitor, "toolpack_engine")


def test_an_app_starved_in_its_start_is_no_deadlock_but_one_hung_past_it_is(short_grace, monitor):
    """A host boots: an application stalled for longer than the deadlock deadline right
    after its first beats is left alone; still silent when the start's grace ends, it is
    killed then."""
    gw, eng = monitor.apps["gateway"], monitor.apps["toolpack_engine"]
    run_until(monitor, lambda: gw.last_hb and eng.last_hb, 10, "first heartbeats")
    # room for a stall past the deadline inside the grace
    assert time.monotonic() - gw.started_at < \
        service_monitor.FIRST_BEAT_S - service_monitor.DEADLOCK_S - 0.5, "too slow a start"
    stalled, hung = gw.proc.pid, eng.proc.pid
    os.kill(stalled, signal.SIGSTOP)
    os.kill(hung, signal.SIGSTOP)
    try:
        run_until(monitor, lambda: time.monotonic() - gw.last_hb > service_monitor.DEADLOCK_S + 0.2,
                  5, "a stall longer than the deadline")
        assert "deadlock" not in kinds(monitor, "gateway")
    finally:
        os.kill(stalled, signal.SIGCONT)
    run_until(monitor, lambda: eng.proc.pid != hung, 10, "the hung one killed after the grace")
    assert time.monotonic() - eng.started_at < 5.0       # the new one's start, just now
    assert "deadlock" in kinds(monitor, "toolpack_engine")
    assert "deadlock" not in kinds(monitor, "gateway") and gw.proc.pid == stalled


def test_a_busy_silent_app_is_starved_not_deadlocked_until_busy_s(short_grace, tmp_path,
                                                                   monkeypatch):
    """Silent but runnable (a machine too busy to schedule it, or a livelock): logged as
    starved past the deadlock deadline, killed as hung only after BUSY_S."""
    monkeypatch.setattr(state, "RUN_DIR", str(tmp_path))
    port, flag = free_udp_port(), tmp_path / "stop-beating"
    m = service_monitor.Monitor(apps=("gateway",), port=port, sysmgr_port=free_udp_port(),
                                command=lambda app: [sys.executable, "-c", SPINNER, app,
                                                     str(port), str(flag)])
    m.start_all()
    gw = m.apps["gateway"]
    try:
        run_until(m, lambda: gw.last_hb and time.monotonic() - gw.started_at
                  > service_monitor.FIRST_BEAT_S, 10, "first heartbeat, past the start's grace")
        old = gw.proc.pid
        flag.touch()
        run_until(m, lambda: time.monotonic() - gw.last_hb > service_monitor.DEADLOCK_S + 0.3,
                  5, "silent past the deadlock deadline")
        assert gw.proc.pid == old and kinds(m, "gateway") == ["start", "starved"]
        run_until(m, lambda: gw.proc.pid != old, 10, "the busy one killed at BUSY_S")
        silent = [e["silent_s"] for e in m.events if e["kind"] == "deadlock"]
        assert len(silent) == 1 and service_monitor.BUSY_S <= silent[0] < service_monitor.BUSY_S + 0.5
    finally:
        for app in m.apps.values():
            app.proc.kill()
            app.proc.wait()


def test_thread_states_of_a_stopped_process_are_not_busy():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        os.kill(proc.pid, signal.SIGSTOP)
        end = time.monotonic() + 5
        while service_monitor.thread_states(proc.pid) != ["T"]:
            assert time.monotonic() < end, service_monitor.thread_states(proc.pid)
            time.sleep(0.01)     # the poll's interval
        os.kill(proc.pid, signal.SIGCONT)
    finally:
        proc.kill()
        proc.wait()
    assert service_monitor.thread_states(proc.pid) == []     # gone


def test_dont_run_stops_and_run_starts_again(monitor):
    gw = monitor.apps["gateway"]
    monitor.apply_run_flags({"gateway": False})
    assert not gw.running() and state.read("monitor")["apps"]["gateway"]["state"] == "stopped"
    monitor.tick()
    assert not gw.running()                      # not restarted while Don't Run
    monitor.apply_run_flags({"gateway": True})
    assert gw.running()


def test_quit_stops_every_application(monitor):
    monitor.quit()                               # no sys_manager answers: it still quits
    assert not any(a.running() for a in monitor.apps.values())
    assert kinds(monitor, None)[:1] == ["quit"]
