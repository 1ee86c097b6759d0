"""Roles observed three ways: the emulator's role and lease logs (written with fake
clocks, crashes simulated by dropping the writer) and harness/roles.py judging fixture
logs with a split brain, a power-off, a doubly held lease and calls answered by the
wrong gateway. No Docker, no sockets."""
from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest

from emulator.host import state
from emulator.host.election import ACTIVE, CANDIDATE, STANDBY, Election
from emulator.host.role_log import RoleLog
from emulator.host.settings import Settings
from emulator.host.toolpack_sys_manager import SysManager
from emulator.tmedia.control import ControlAgent
from emulator.tmedia.counters import Counters
from emulator.tmedia.lease import LeaseLog
from harness import roles as R
from harness.sipp import CallRecord
from harness import testbed
from harness.verdict import FAILED, OK, UNKNOWN


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


def lines(path) -> list[dict]:
    return [json.loads(raw) for raw in path.read_text().splitlines()]


# ---- emulator: the host's role log -----------------------------------------------------
def test_role_log_closes_a_dead_active_run_at_its_last_stamp(tmp_path):
    clock = Clock(1000.0)
    path = tmp_path / "roles.jsonl"
    log = RoleLog("host-a", str(path), clock)
    log.write(STANDBY, 0, "started")
    clock.t = 1001.0
    log.write(ACTIVE, 1, "holds the lease of 3/3 units")
    for _ in range(5):                 # ticks while active
        clock.t += 0.02
        log.alive()
    died_at = clock.t
    # power-off: no closing line; the host comes back much later
    clock.t = 1060.0
    again = RoleLog("host-a", str(path), clock)
    assert again.died_active()["last_alive"] == pytest.approx(died_at)
    down = again.close_dead("host booted")
    assert down["role"] == "down" and down["t"] == pytest.approx(died_at)
    assert [r["role"] for r in lines(path)] == [STANDBY, ACTIVE, "down"]
    assert again.close_dead("host booted") is None     # closed once


def test_role_log_without_a_stamp_closes_at_the_active_line(tmp_path):
    clock = Clock(50.0)
    log = RoleLog("host-b", str(tmp_path / "r.jsonl"), clock)
    log.write(ACTIVE, 2, "x")
    clock.t = 90.0
    assert log.close_dead("boot")["t"] == 50.0


def test_role_log_leaves_a_clean_run_alone_and_skips_a_torn_line(tmp_path):
    path = tmp_path / "r.jsonl"
    log = RoleLog("host-a", str(path), Clock(1.0))
    log.write(ACTIVE, 1, "x")
    log.write(STANDBY, 1, "handover")
    assert log.died_active() is None
    with open(path, "a") as f:
        f.write('{"t": 3, "role": "act')           # died while writing
    assert log.died_active() is None and log.close_dead("boot") is None


def manager(tmp_path, monkeypatch, role_log: RoleLog) -> SysManager:
    """The sys_manager's role bookkeeping without its sockets."""
    monkeypatch.setattr(state, "RUN_DIR", str(tmp_path / "run"))
    s = Settings(host="host-a", peer="host-b", ctrl_ips=("10.0.1.11", "10.0.2.11"),
                 peer_ctrl_ips=("10.0.1.12", "10.0.2.12"),
                 units={u: ("x", "y") for u in ("tmedia-1", "tmedia-2", "tmedia-3")},
                 db_main="", db_backup="", db_role="main", db_password="", repl_password="",
                 oam_token="", priority=1)
    m = SysManager.__new__(SysManager)
    m.s, m.role_log, m.why, m.published_role = s, role_log, "started", None
    m.el = Election(s.priority, s.peer_timeout, s.lease, s.handover_holddown)
    m.units = {u: {} for u in s.units}
    m.next_publish = float("inf")      # only the role part of publish()
    m.sent = []
    m.hb = m.units_sock = SimpleNamespace(sendto=lambda data, addr: m.sent.append(addr))
    m.hb_seq = 0
    m._resume_or_close(state.read("role"))
    return m


def test_sys_manager_logs_transitions_and_a_restart_that_resumes_continues(tmp_path, monkeypatch):
    path = tmp_path / "roles.jsonl"
    m = manager(tmp_path, monkeypatch, RoleLog("host-a", str(path)))
    m.publish()
    m.el.role = CANDIDATE
    m.publish()
    m.el.role, m.el.epoch = ACTIVE, 1
    m.publish()
    m.role_log.alive()
    # SIGKILL: the monitor restarts it at once; role.json (tmpfs) still says active
    m2 = manager(tmp_path, monkeypatch, RoleLog("host-a", str(path)))
    assert m2.el.role == ACTIVE and m2.el.epoch == 1
    m2.publish()                       # nothing new to publish: it never stopped being active
    recs = lines(path)
    assert [r["role"] for r in recs] == [STANDBY, CANDIDATE, ACTIVE, ACTIVE]
    assert "resumed" in recs[-1]["why"]
    ivs = R.role_intervals(recs, until=time.time() + 1)
    assert [iv.role for iv in ivs] == [STANDBY, CANDIDATE, ACTIVE]   # one interval


def test_sys_manager_restarted_after_more_than_a_lease_closes_and_does_not_resume(
        tmp_path, monkeypatch):
    path = tmp_path / "roles.jsonl"
    stopped_at = time.time() - 5.0       # SIGSTOPped, killed and restarted 5 s later
    log = RoleLog("host-a", str(path), Clock(stopped_at - 1))
    log.write(ACTIVE, 3, "holds the lease of 3/3 units")
    log.clock = Clock(stopped_at)
    log.alive()
    monkeypatch.setattr(state, "RUN_DIR", str(tmp_path / "run"))
    state.write("role", {"role": ACTIVE, "epoch": 3})
    m = manager(tmp_path, monkeypatch, RoleLog("host-a", str(path)))
    assert m.el.role == STANDBY
    m.publish()
    recs = lines(path)
    assert [r["role"] for r in recs] == [ACTIVE, "down", STANDBY]
    assert recs[1]["t"] == pytest.approx(stopped_at) and "not resumed" in recs[1]["why"]


def test_sys_manager_logs_why_it_lost_the_majority(tmp_path, monkeypatch):
    path = tmp_path / "roles.jsonl"
    m = manager(tmp_path, monkeypatch, RoleLog("host-a", str(path)))
    m.el.role, m.el.epoch = ACTIVE, 1
    m.publish()
    m.el.role = STANDBY                # the network cut: polls unanswered (rule 2/5)
    m.publish()
    assert lines(path)[-1]["why"] == "lost the lease majority (holds 0/3 units)"
    m.el.role = ACTIVE
    m.publish()
    m.el.role = STANDBY
    m.apply(["handover"], "local engine or gateway down")   # sockets: none sent in a test
    m.publish()
    assert lines(path)[-1]["why"] == "handover: local engine or gateway down"


# ---- emulator: the unit's lease log ---------------------------------------------------
GW = [["10.0.1.11", 7100]]


def poll(controller, seq=1):
    return {"op": "poll", "seq": seq, "controller": controller, "epoch": 1, "lease_ms": 1500,
            "gateways": GW}


def test_lease_log_records_grant_expiry_takeover_release_and_a_board_death(tmp_path):
    mono, wall = Clock(10.0), Clock(5000.0)
    path = tmp_path / "lease.jsonl"
    agent = ControlAgent("tmedia-1", Counters(), log=lambda m: None, clock=mono,
                         lease_log=LeaseLog(str(path), "tmedia-1", wall))

    def tick(dt):
        mono.t += dt
        wall.t += dt
        agent.check_expiry()

    assert agent.handle(poll("host-a"))["ok"]
    tick(1.0)
    assert agent.handle(poll("host-a"))["ok"]          # renewal: not logged
    tick(1.6)                                          # host-a silent: expires at 5002.5
    assert agent.handle(poll("host-b"))["ok"]
    assert agent.handle({"op": "release", "controller": "host-b"})["ok"]
    assert agent.handle(poll("host-a"))["ok"]
    tick(0.1)
    died_at = wall.t
    recs = lines(path)
    assert [(r["event"], r["holder"]) for r in recs] == [
        ("granted", "host-a"), ("expired", "host-a"), ("granted", "host-b"),
        ("released", "host-b"), ("granted", "host-a")]
    assert recs[1]["t"] == pytest.approx(5002.5)
    # the board reboots while leased: the next boot closes the lease at the last stamp
    wall.t += 30
    lost = LeaseLog(str(path), "tmedia-1", wall).boot()
    assert lost["event"] == "lost" and lost["holder"] == "host-a"
    assert lost["t"] == pytest.approx(died_at)
    assert LeaseLog(str(path), "tmedia-1", wall).boot() is None


def test_lease_log_writes_an_expiry_the_check_did_not_see_before_a_takeover(tmp_path):
    mono, wall = Clock(10.0), Clock(100.0)
    path = tmp_path / "lease.jsonl"
    agent = ControlAgent("tmedia-2", Counters(), log=lambda m: None, clock=mono,
                         lease_log=LeaseLog(str(path), "tmedia-2", wall))
    agent.handle(poll("host-a"))
    mono.t += 2.0
    wall.t += 2.0
    agent.handle(poll("host-b"))       # no check_expiry in between
    recs = lines(path)
    assert [r["event"] for r in recs] == ["granted", "expired", "granted"]
    assert recs[1]["t"] == pytest.approx(101.5)
    assert R.double_holders(R.lease_intervals(recs, 200.0)) == []


# ---- harness: fixture logs ------------------------------------------------------------
def role(t, host, r, epoch=1, why=""):
    return {"t": t, "host": host, "role": r, "epoch": epoch, "why": why}


def lease(t, unit, event, holder):
    return {"t": t, "unit": unit, "event": event, "holder": holder, "epoch": 1}


T_FAULT = 110.0
UNTIL = 130.0

CLEAN_SWITCHOVER_HOSTS = {
    "host-a": [role(90, "host-a", STANDBY), role(91, "host-a", ACTIVE),
               role(110.05, "host-a", STANDBY, why="handover")],
    "host-b": [role(90, "host-b", STANDBY), role(110.1, "host-b", CANDIDATE),
               role(110.3, "host-b", ACTIVE, 2)],
}


def leases_moving(t_release=110.05, t_grant=110.2, a_end_event="released"):
    return {u: [lease(90.5, u, "granted", "host-a"), lease(t_release, u, a_end_event, "host-a"),
                lease(t_grant, u, "granted", "host-b")] for u in R.UNITS}


def views(hosts, units, unreadable=None, since=100.0):
    return R.RoleViews(since=since, read_at=UNTIL, hosts=hosts, units=units,
                       unreadable=unreadable or {})


def call(cid, answer_t, gateway, invite_t=None):
    return CallRecord(cid, invite_t=answer_t - 0.05 if invite_t is None else invite_t,
                      answer_t=answer_t, gateway=gateway)


SWITCHOVER_CALLS = [call("c1", 105.0, "host-a"), call("c2", 110.02, "host-a"),
                    call("c3", 110.5, "host-b"), call("c4", 120.0, "host-b")]
T_SW = 110.5


def by_name(checks):
    return {c.name: c for c in checks}


def judge(v, calls=SWITCHOVER_CALLS, switchover=True, t_sw=T_SW):
    return by_name(R.judge(v, calls, T_FAULT, t_sw, "host-a", "host-b", switchover, UNTIL))


def test_clean_switchover_is_ok_in_all_three_views():
    c = judge(views(CLEAN_SWITCHOVER_HOSTS, leases_moving()))
    assert {n: x.status for n, x in c.items()} == {
        R.CHECK_HOSTS: OK, R.CHECK_LEASES: OK, R.CHECK_SIP: OK}
    assert c[R.CHECK_HOSTS].data["switchover_s"] == pytest.approx(0.3)
    assert c[R.CHECK_HOSTS].data["active_at_end"] == ["host-b"]
    assert c[R.CHECK_SIP].data["by_gateway"] == {"host-a": 2, "host-b": 2}


def test_split_brain_two_overlapping_active_intervals_is_caught():
    hosts = {"host-a": CLEAN_SWITCHOVER_HOSTS["host-a"][:2] + [role(112.0, "host-a", STANDBY)],
             "host-b": CLEAN_SWITCHOVER_HOSTS["host-b"]}
    assert R.overlaps({h: R.role_intervals(x, UNTIL) for h, x in hosts.items()}) == [
        ("host-a", "host-b", 110.3, 112.0)]
    c = judge(views(hosts, leases_moving()))[R.CHECK_HOSTS]
    assert c.status == FAILED and "both active from 110.300 to 112.000" in c.detail
    assert c.data["overlaps"] == [["host-a", "host-b", 110.3, 112.0]]


def test_power_off_interval_ends_at_the_down_line_not_at_the_return():
    # host-a powered off at 110.0 (last stamp), back at 125: init writes the down line
    hosts = {"host-a": [role(91, "host-a", ACTIVE), role(110.0, "host-a", "down", why="boot"),
                        role(125.5, "host-a", STANDBY)],
             "host-b": [role(90, "host-b", STANDBY), role(110.7, "host-b", CANDIDATE),
                        role(111.6, "host-b", ACTIVE, 2)]}
    units = leases_moving(t_release=111.5, t_grant=111.5, a_end_event="expired")
    c = judge(views(hosts, units), calls=[call("c1", 105, "host-a"), call("c2", 112, "host-b")],
              t_sw=112)
    assert c[R.CHECK_HOSTS].status == OK and c[R.CHECK_LEASES].status == OK
    assert c[R.CHECK_HOSTS].data["switchover_s"] == pytest.approx(1.6)
    # without the down line the open interval would run to `until`: a split brain
    open_ = dict(hosts, **{"host-a": hosts["host-a"][:1]})
    assert judge(views(open_, units))[R.CHECK_HOSTS].status == FAILED


def test_a_unit_leased_to_two_hosts_at_once_is_caught():
    units = leases_moving()
    units["tmedia-2"] = [lease(90.5, "tmedia-2", "granted", "host-a"),
                         lease(110.2, "tmedia-2", "granted", "host-b"),
                         lease(111.0, "tmedia-2", "expired", "host-a")]
    c = judge(views(CLEAN_SWITCHOVER_HOSTS, units))[R.CHECK_LEASES]
    assert c.status == FAILED
    assert "tmedia-2 leased to host-a and host-b at once from 110.200 to 111.000" in c.detail


def test_a_lease_held_by_a_host_that_is_not_active_is_caught():
    units = leases_moving()
    units["tmedia-3"] = [lease(90.5, "tmedia-3", "granted", "host-a"),
                         lease(110.05, "tmedia-3", "released", "host-a"),
                         lease(100.0 + 10.1, "tmedia-3", "granted", "host-b")]
    # host-b holds tmedia-3 but is never active
    hosts = dict(CLEAN_SWITCHOVER_HOSTS, **{"host-b": [role(90, "host-b", STANDBY)]})
    c = judge(views(hosts, units))[R.CHECK_LEASES]
    assert c.status == FAILED and "while host-b was not active" in c.detail


def test_an_active_host_without_the_lease_majority_is_caught():
    units = {u: [lease(90.5, u, "granted", "host-a"), lease(100.5, u, "expired", "host-a")]
             for u in R.UNITS}
    hosts = {"host-a": [role(91, "host-a", ACTIVE)], "host-b": [role(90, "host-b", STANDBY)]}
    c = R.lease_findings({u: R.clip(R.lease_intervals(x, UNTIL), 100, UNTIL)
                          for u, x in units.items()},
                         {h: R.clip(R.role_intervals(x, UNTIL), 100, UNTIL)
                          for h, x in hosts.items()}, 3)
    assert c == ["host-a active from 100.500 to 130.000 (29.500 s) without the lease of a "
                 "majority of the 3 units"]


def test_a_call_answered_by_the_old_master_after_the_switchover_is_caught():
    late = SWITCHOVER_CALLS + [call("c5", 113.0, "host-a", invite_t=112.9)]
    c = judge(views(CLEAN_SWITCHOVER_HOSTS, leases_moving()), calls=late)[R.CHECK_SIP]
    assert c.status == FAILED and "call c5 answered by the old master host-a" in c.detail
    # a call routed by the old master just before t_sw and answered just after is no finding
    edge = SWITCHOVER_CALLS + [call("c6", 110.6, "host-a", invite_t=110.0)]
    assert judge(views(CLEAN_SWITCHOVER_HOSTS, leases_moving()), calls=edge)[R.CHECK_SIP].status == OK


NO_SWITCHOVER_HOSTS = {"host-a": [role(91, "host-a", ACTIVE)],
                       "host-b": [role(90, "host-b", STANDBY)]}
NO_SWITCHOVER_UNITS = {u: [lease(90.5, u, "granted", "host-a")] for u in R.UNITS}


def test_no_switchover_operation_clean_and_with_a_call_answered_by_the_slave():
    v = views(NO_SWITCHOVER_HOSTS, NO_SWITCHOVER_UNITS)
    calls = [call("c1", 105, "host-a"), call("c2", 115, "host-a")]
    c = judge(v, calls=calls, switchover=False, t_sw=None)
    assert {x.status for x in c.values()} == {OK}
    assert c[R.CHECK_HOSTS].data["switchover_s"] is None
    bad = judge(v, calls=calls + [call("c3", 116, "host-b")], switchover=False, t_sw=None)
    assert bad[R.CHECK_SIP].status == FAILED and "call c3 answered by host-b" in bad[R.CHECK_SIP].detail


def test_no_switchover_expected_but_the_slave_became_active_or_the_master_left():
    hosts = {"host-a": [role(91, "host-a", ACTIVE), role(111, "host-a", STANDBY),
                        role(113, "host-a", ACTIVE, 3)],
             "host-b": [role(90, "host-b", STANDBY), role(111.2, "host-b", ACTIVE, 2),
                        role(112.5, "host-b", STANDBY)]}
    c = judge(views(hosts, NO_SWITCHOVER_UNITS), calls=[call("c1", 105, "host-a")],
              switchover=False, t_sw=None)[R.CHECK_HOSTS]
    assert c.status == FAILED
    assert "host-b became active at 111.200" in c.detail
    assert "host-a was not active from 111.000 to 113.000" in c.detail


def test_wrong_host_active_at_the_end_fails():
    hosts = {"host-a": [role(91, "host-a", ACTIVE), role(110.05, "host-a", STANDBY)],
             "host-b": [role(90, "host-b", STANDBY)]}
    c = judge(views(hosts, leases_moving()))[R.CHECK_HOSTS]
    assert c.status == FAILED and "nobody" in c.detail and "never became active" in c.detail


def test_nothing_to_judge_is_unknown_never_ok():
    v = views({"host-a": NO_SWITCHOVER_HOSTS["host-a"]}, {},
              unreadable={"host-b": "cannot exec", **{u: "down" for u in R.UNITS}})
    c = judge(v, calls=[], switchover=False, t_sw=None)
    assert {x.status for x in c.values()} == {UNKNOWN}
    # a host with no line up to `until`: its role is unknown
    late = {"host-a": NO_SWITCHOVER_HOSTS["host-a"], "host-b": [role(UNTIL + 1, "host-b", STANDBY)]}
    assert judge(views(late, NO_SWITCHOVER_UNITS), switchover=False,
                 t_sw=None)[R.CHECK_HOSTS].status == UNKNOWN
    # one unit unreadable, no finding in the others: partial, unknown
    part = dict(NO_SWITCHOVER_UNITS)
    del part["tmedia-3"]
    c = judge(views(NO_SWITCHOVER_HOSTS, part, unreadable={"tmedia-3": "down"}),
              calls=[call("c1", 105, "host-a")], switchover=False, t_sw=None)[R.CHECK_LEASES]
    assert c.status == UNKNOWN and "partial" in c.detail
    # a switchover expected but none in the calls: the SIP rule cannot be applied
    assert judge(views(CLEAN_SWITCHOVER_HOSTS, leases_moving()),
                 t_sw=None)[R.CHECK_SIP].status == UNKNOWN


# ---- harness: collect -----------------------------------------------------------------
class FakeContainer:
    def __init__(self, files, stamps=None):
        self.files, self.stamps = files, stamps or {}

    def exec_run(self, cmd):
        if cmd[0] == "date":           # date -r <stamp> +%s.%N: the stamp's mtime
            if cmd[2] not in self.stamps:
                return SimpleNamespace(exit_code=1, output=b"date: No such file\n")
            return SimpleNamespace(exit_code=0, output=f"{self.stamps[cmd[2]]:.9f}\n".encode())
        assert cmd[0] == "cat"
        if cmd[1] not in self.files:
            return SimpleNamespace(exit_code=1, output=b"cat: No such file or directory\n")
        return SimpleNamespace(exit_code=0, output=self.files[cmd[1]].encode())


class FakeTestbed:
    def __init__(self, containers):
        self.containers = containers

    def container(self, name):
        if name not in self.containers:
            raise testbed.TestbedError(f"no container for {name}")
        return self.containers[name]


def jl(recs) -> str:
    return "".join(json.dumps(r) + "\n" for r in recs) + '{"t": 1, "ro'   # a torn last line


def test_collect_reads_every_log_and_says_what_it_could_not_read():
    tb = FakeTestbed({
        "host-a": FakeContainer({R.ROLE_LOG: jl(NO_SWITCHOVER_HOSTS["host-a"])}),
        "host-b": FakeContainer({}),
        "tmedia-1": FakeContainer({R.LEASE_LOG: jl(NO_SWITCHOVER_UNITS["tmedia-1"])}),
        "tmedia-2": FakeContainer({R.LEASE_LOG: jl(NO_SWITCHOVER_UNITS["tmedia-2"])}),
    })
    v = R.collect(tb, since=100.0)
    assert v.hosts == {"host-a": NO_SWITCHOVER_HOSTS["host-a"]}
    assert sorted(v.units) == ["tmedia-1", "tmedia-2"]
    assert v.partial and sorted(v.unreadable) == ["host-b", "tmedia-3"]
    assert "exit 1" in v.unreadable["host-b"] and "no container" in v.unreadable["tmedia-3"]


def test_collect_closes_an_interval_whose_writer_is_dead_at_its_stamp():
    now = time.time()
    a = [role(now - 60, "host-a", ACTIVE)]
    b = [role(now - 70, "host-b", STANDBY), role(now - 40, "host-b", ACTIVE, 2)]
    tb = FakeTestbed({
        # host-a powered off 50 s ago and started again; its init has not closed it yet
        "host-a": FakeContainer({R.ROLE_LOG: jl(a)}, {R.ROLE_LOG + ".alive": now - 50}),
        "host-b": FakeContainer({R.ROLE_LOG: jl(b)}, {R.ROLE_LOG + ".alive": now - 0.02}),
        "tmedia-1": FakeContainer({R.LEASE_LOG: jl([lease(now - 60, "tmedia-1", "granted",
                                                          "host-a")])},
                                  {R.LEASE_LOG + ".alive": now - 58}),
    })
    v = R.collect(tb, since=now - 100)
    assert v.hosts["host-a"][-1]["role"] == "down"
    assert v.hosts["host-a"][-1]["t"] == pytest.approx(now - 50)
    assert v.hosts["host-b"] == b                       # alive: left open
    assert v.units["tmedia-1"][-1]["event"] == "lost"
    ivs = {h: R.role_intervals(x, now) for h, x in v.hosts.items()}
    assert R.overlaps(ivs) == []


def test_close_stale_leaves_closed_and_fresh_logs_alone():
    closed = [role(10, "host-a", ACTIVE), role(20, "host-a", STANDBY)]
    assert R.close_stale(closed, 15.0, 100.0) == closed
    open_ = closed[:1]
    assert R.close_stale(open_, 99.5, 100.0) == open_     # stamped 0.5 s ago: alive
    assert R.close_stale(open_, None, 100.0) == open_     # no stamp: cannot tell
    assert R.close_stale(open_, 30.0, 100.0)[-1]["t"] == 30.0


def test_a_slow_loop_iteration_is_reported_with_its_slowest_step():
    """toolpack_sys_manager logs an iteration that came late (heartbeats and polls waited):
    the step that took the time, or that the process was not scheduled at all."""
    from emulator.host.toolpack_sys_manager import SLOW_TICK_S, TickTimer
    t = [0.0]
    timer = TickTimer(clock=lambda: t[0])
    assert timer.start() is None
    for step, took in (("reading the sockets", 0.001), ("the role log's liveness stamp", 0.9),
                       ("sleeping", 0.02)):
        t[0] += took
        timer.mark(step)
    report = timer.start()
    assert report.startswith("slow tick: 0.92 s") and "the role log's liveness stamp took 0.90 s" in report
    t[0] += 0.001
    timer.mark("reading the sockets")
    t[0] += SLOW_TICK_S + 0.2
    timer.mark("sleeping")
    assert "not scheduled: its 20 ms sleep took 0.50 s" in timer.start()
    t[0] += 0.05
    timer.mark("sleeping")
    assert timer.start() is None           # on time: nothing to say
