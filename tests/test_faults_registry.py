"""The fault registry without Docker: one file per kind, the fault time stamped before
the action, exit statuses checked, targets resolved from live roles and placement, the
history of each fault's window, the sweeps, the switchover bounds from the HA timers."""
from __future__ import annotations

import importlib
import itertools
import pkgutil
from collections import namedtuple
from types import SimpleNamespace

import docker
import pytest

import harness.faults as faults
from harness.faults import (REGISTRY, FaultSet, FaultSpecError, Timers, _base, _host_ctl, _set,
                            from_spec, validate)
from harness.testbed import NET_INDEX, OCTET
from harness.testbed import TestbedError as TbError

Exec = namedtuple("Exec", "exit_code output")


class Clock:
    """time.time() of the registry's base: 1, 2, 3, ... so 'before' is exact."""

    def __init__(self):
        self.n = itertools.count(1)

    def __call__(self):
        return float(next(self.n))


class FakeContainer:
    def __init__(self, name, clock, exit_code=0, output=b""):
        self.name, self.clock = name, clock
        self.exit_code, self.output = exit_code, output
        self.status, self.labels = "running", {"com.docker.compose.service": name}
        self.calls: list[tuple[float, object]] = []

    def exec_run(self, cmd):
        self.calls.append((self.clock(), cmd))
        return Exec(self.exit_code, self.output)

    def kill(self):
        self.calls.append((self.clock(), "kill"))

    def reload(self):
        pass

    def start(self):
        self.calls.append((self.clock(), "start"))
        self.status = "running"


class FakeTb:
    env = {"TB_NET": "10.9"}
    db_hosts = ("host-a", "host-b")      # the hosts run the servers (the external-db variant: db-a, db-b)

    def __init__(self, clock, services=None, db_main="host-a"):
        self.clock = clock
        self.nodes = {n: FakeContainer(n, clock) for n in OCTET}
        self.status = {"services": services or {"tmedia-1": "tmedia-1", "tmedia-2": "tmedia-2"},
                       "database": {"main": {"ip": self.ip(db_main)}},
                       "apps": {a: {"state": "running", "pid": 40 + i} for i, a in enumerate(faults.APPS)},
                       "units": {b: {"status": {"bond": {"active_port": "vp2"}, "app": {"pid": 77}}}
                                 for b in ("tmedia-1", "tmedia-2", "tmedia-3")}}

    def container(self, name):
        return self.nodes[name]

    def containers(self):
        return list(self.nodes.values())

    def oam(self, host, path, **kw):
        return self.status

    def db_view(self):
        return self.status["database"]

    def ip(self, node, net="ctrl-a"):
        return f"{self.env['TB_NET']}.{NET_INDEX[net]}.{OCTET[node]}"

    def master(self):
        return "host-a"


@pytest.fixture
def tb(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(_base, "time", SimpleNamespace(time=clock))
    return FakeTb(clock)


# -- one class per kind, one file per kind ---------------------------------------------

def test_every_kind_is_one_module_named_after_it():
    modules = [m.name for m in pkgutil.iter_modules(faults.__path__) if not m.name.startswith("_")]
    assert sorted(modules) == sorted(REGISTRY)
    for name in modules:
        mod = importlib.import_module(f"harness.faults.{name}")
        own = [c for c in vars(mod).values() if isinstance(c, type) and c.__module__ == mod.__name__
               and c.__dict__.get("kind")]
        assert [c.kind for c in own] == [name], name


def test_the_unit_level_kinds_of_the_matrix_are_registered():
    assert {"unit_power_off", "voip_ports_down", "bond_port_down", "bond_port_silent", "voice_path_cut",
            "unit_ctrl_cut", "unit_app_crash", "unit_unpolled", "ss7_crash", "ss7_link_cut"} == {k for k, c in REGISTRY.items() if c.unit_level}


def test_a_kind_registered_twice_is_an_error():
    with pytest.raises(TypeError, match="registered twice"):
        type("Again", (faults.HostPowerOff,), {"kind": "host_power_off"})


def test_the_old_names_still_import():
    from harness.faults import (Deadlock, HostPowerOff, HostShutdown, KillProcess, MysqlKill,  # noqa: F401
                                MysqlShutdown, NetworkCut, PortDown, ServiceQuit, UnitAppFault, ctl,
                                exec_checked, heal_all, placement, restore_placement, unit_status,
                                wait_for)


# -- _act: stamp before, exit status checked --------------------------------------------

@pytest.mark.parametrize("make", [
    lambda tb: faults.NetworkCut(tb, host="host-a", nets=("ctrl-a",)),
    lambda tb: faults.Deadlock(tb, host="host-a", app="gateway"),
    lambda tb: faults.KillProcess(tb, host="host-b", app="toolpack_engine"),
    lambda tb: faults.HostPowerOff(tb, host="host-a"),
    lambda tb: faults.PortDown(tb, unit="tmedia-1"),
    lambda tb: faults.VoipPortsDown(tb, unit="tmedia-1"),
    lambda tb: faults.UnitAppFault(tb, unit="tmedia-2"),
], ids=["network_cut", "deadlock", "kill_process", "host_power_off", "bond_port_down",
        "voip_ports_down", "unit_app_crash"])
def test_the_fault_time_is_stamped_immediately_before_the_action(tb, make):
    fault = make(tb)
    t = fault.inject()
    acted_at = tb.container(fault.target).calls[-1][0]
    assert t == fault.injected_at == acted_at - 1     # the clock tick right before


def test_a_failed_sigstop_raises_with_its_output(tb):
    tb.container("host-a").exit_code, tb.container("host-a").output = 1, b"kill: (41) - No such process"
    with pytest.raises(TbError, match="No such process"):
        faults.Deadlock(tb, host="host-a", app="toolpack_sys_manager").inject()


def test_a_failed_nft_raises_with_its_output(tb):
    tb.container("host-b").exit_code, tb.container("host-b").output = 1, b"Error: syntax error"
    with pytest.raises(TbError, match="exit 1.*syntax error"):
        faults.NetworkCut(tb, host="host-b").inject()


def test_a_docker_api_error_is_a_testbed_error(tb):
    def kill():
        raise docker.errors.APIError("container is not running")
    tb.container("host-a").kill = kill
    with pytest.raises(TbError, match="not running"):
        faults.HostPowerOff(tb, host="host-a").inject()


def test_a_failed_shutdown_is_raised_by_heal(tb):
    def stop(timeout):
        raise docker.errors.APIError("stop failed")
    tb.container("host-b").stop = stop
    fault = faults.HostShutdown(tb, host="host-b")
    fault.inject()
    with pytest.raises(TbError, match="stop failed"):
        fault.heal()


# -- from_spec: the target from live roles and the units' placement ---------------------

def test_host_targets_follow_the_live_roles(tb):
    f = from_spec(tb, {"kind": "kill_process", "target": "slave", "app": "gateway"}, "host-b", "host-a")
    assert (f.target, f.app, f.kind) == ("host-a", "gateway", "kill_process")
    f = from_spec(tb, {"kind": "host_power_off", "target": "slave"}, "host-a", "host-b")
    assert f.target == "host-b"


def test_network_cut_of_the_links_to_the_peer(tb):
    f = from_spec(tb, {"kind": "network_cut", "target": "master", "peer": True}, "host-a", "host-b")
    assert f.peers == (tb.ip("host-b", "ctrl-a"), tb.ip("host-b", "ctrl-b")) and f.nets is None
    f = from_spec(tb, {"kind": "network_cut", "target": "master", "nets": ["ctrl-b"]}, "host-a", "host-b")
    assert "10.9.2.0/24" in f._ruleset() and "10.9.1.0/24" not in f._ruleset()


def test_a_cut_over_ssh_keeps_the_harness_session_and_nothing_else(tb):
    """Over SSH the cut must leave the harness's own session (its heal goes over it):
    that one flow is accepted before the drop, in both directions, and only that one."""
    f = from_spec(tb, {"kind": "network_cut", "target": "master"}, "host-a", "host-b")
    rules = f._ruleset(("10.9.1.1", 22))
    chain_in = next(line for line in rules.splitlines() if "chain in" in line)
    chain_out = next(line for line in rules.splitlines() if "chain out" in line)
    assert chain_in.index("ip saddr 10.9.1.1 tcp dport 22 accept") < chain_in.index("drop")
    assert chain_out.index("ip daddr 10.9.1.1 tcp sport 22 accept") < chain_out.index("drop")
    assert rules.count("accept") == 2 and "accept" not in f._ruleset()


@pytest.mark.parametrize("kind", sorted(k for k, c in REGISTRY.items() if c.unit_level))
def test_a_unit_target_resolves_to_the_board_serving_it(tb, kind):
    tb.status["services"] = {"tmedia-1": "tmedia-3", "tmedia-2": "tmedia-2"}
    spec = {"kind": kind, "target": "tmedia-1"}
    if kind == "unit_ctrl_cut":
        spec["nets"] = ["ctrl-a"]
    f = from_spec(tb, spec, "host-a", "host-b")
    # a silent port is made in the switch (its target); the board it hits is its unit
    board = f.unit if kind == "bond_port_silent" else f.target
    assert board == "tmedia-3" and f.serving == "tmedia-1"


def test_unit_network_kinds_cut_what_they_say(tb):
    path = from_spec(tb, {"kind": "voice_path_cut", "target": "tmedia-2", "path": 102}, "host-a", "host-b")
    assert 'iifname { "vx102" }' in path._ruleset()
    # the ARP probes of the path pass no inet hook: the device's own hooks drop them
    assert 'hook ingress device "vx102"' in path._ruleset() and 'hook egress device "vx102"' in path._ruleset()
    ctrl = from_spec(tb, {"kind": "unit_ctrl_cut", "target": "tmedia-1", "nets": ["ctrl-b"]}, "host-a", "host-b")
    assert "10.9.2.0/24" in ctrl._ruleset() and "10.9.1.0/24" not in ctrl._ruleset()
    unpolled = from_spec(tb, {"kind": "unit_unpolled", "target": "tmedia-1"}, "host-a", "host-b")
    assert "10.9.1.0/24, 10.9.2.0/24" in unpolled._ruleset()


def test_bond_port_down_takes_the_active_port(tb):
    f = from_spec(tb, {"kind": "bond_port_down", "target": "tmedia-1"}, "host-a", "host-b")
    f.inject()
    assert f.resolved == "vp2" and tb.container("tmedia-1").calls[-1][1] == ["ip", "link", "set", "vp2", "down"]


def test_voip_ports_down_takes_both_ports_in_one_action(tb):
    f = from_spec(tb, {"kind": "voip_ports_down", "target": "tmedia-2"}, "host-a", "host-b")
    f.inject()
    (_, cmd), = tb.container("tmedia-2").calls
    assert "vp1 down" in cmd[-1] and "vp2 down" in cmd[-1]


def test_unit_power_off_kills_the_board(tb):
    f = from_spec(tb, {"kind": "unit_power_off", "target": "tmedia-2"}, "host-a", "host-b")
    f.inject()
    assert tb.container("tmedia-2").calls[-1][1] == "kill"


def test_from_spec_rejects_what_validate_rejects(tb):
    with pytest.raises(FaultSpecError) as exc:
        from_spec(tb, {"kind": "network_cut", "target": "master", "nets": ["ctrl-c"]}, "host-a", "host-b")
    assert exc.value.field == "fault.nets"


def test_a_param_bool_is_not_an_int():
    with pytest.raises(FaultSpecError, match="fault.path: must be int"):
        validate({"kind": "voice_path_cut", "target": "tmedia-1", "path": True})


def test_defaults_are_filled_in():
    _, params = validate({"kind": "voice_path_cut", "target": "tmedia-1"})
    assert params == {"target": "tmedia-1", "path": 101}


# -- MySQL "on master": the master's own server, the main put back there first -----------

def test_mysql_target_is_the_masters_own_server_and_records_its_role(tb):
    tb.status["database"]["main"]["ip"] = tb.ip("host-b")         # the main moved to the slave
    f = from_spec(tb, {"kind": "mysql_kill", "target": "master"}, "host-a", "host-b")
    assert (f.target, f.server) == ("host-a", "backup") and "(backup)" in f.name
    f = from_spec(tb, {"kind": "mysql_shutdown", "target": "slave"}, "host-a", "host-b")
    assert (f.target, f.server, f.action) == ("host-b", "main", "shutdown")


def test_prepare_puts_the_database_main_back_on_the_masters_host(tb, monkeypatch):
    tb.status["database"]["main"]["ip"] = tb.ip("host-b")
    done = []

    role = {"host-a": "replica"}

    def ctl(tb_, host, what, action):
        if action == "status":
            return {"data": {"agent": {"role": role[host]}}}
        done.append((host, what, action))
        if action == "shutdown":      # the master's replica is promoted
            role["host-a"] = "main"
            tb.status["database"]["main"]["ip"] = tb.ip("host-a")
        return {"message": "ok", "data": {}}
    monkeypatch.setattr(_host_ctl, "ctl", ctl)
    monkeypatch.setattr(_host_ctl, "mysql_rejoined", lambda tb_, host: True)
    faults.prepare(tb, {"kind": "mysql_kill", "target": "master"}, "host-a", "host-b")
    assert done == [("host-b", "mysql", "shutdown"), ("host-b", "mysql", "start")]
    done.clear()
    faults.prepare(tb, {"kind": "mysql_kill", "target": "slave"}, "host-a", "host-b")
    assert done == []      # already there: nothing moved


def test_with_external_database_hosts_mysql_targets_the_main_and_the_backup_host(tb):
    tb.db_hosts = ("db-a", "db-b")
    tb.status["database"]["main"]["ip"] = tb.ip("db-a")
    f = from_spec(tb, {"kind": "mysql_kill", "target": "master"}, "host-b", "host-a")
    assert (f.target, f.server) == ("db-a", "main") and f.name == "kill MySQL on db-a (main)"
    f = from_spec(tb, {"kind": "mysql_shutdown", "target": "slave"}, "host-a", "host-b")
    assert (f.target, f.server) == ("db-b", "backup")


def test_with_external_database_hosts_prepare_puts_the_main_back_on_db_a(tb, monkeypatch):
    tb.db_hosts = ("db-a", "db-b")
    tb.status["database"]["main"]["ip"] = tb.ip("db-b")           # an earlier failover
    done, role = [], {"db-a": "replica"}

    def ctl(tb_, host, what, action):
        if action == "status":
            return {"data": {"agent": {"role": role[host]}}}
        done.append((host, action))
        if action == "shutdown":
            role["db-a"] = "main"
            tb.status["database"]["main"]["ip"] = tb.ip("db-a")
        return {"message": "ok", "data": {}}
    monkeypatch.setattr(_host_ctl, "ctl", ctl)
    monkeypatch.setattr(_host_ctl, "mysql_rejoined", lambda tb_, host: True)
    faults.prepare(tb, {"kind": "mysql_kill", "target": "master"}, "host-b", "host-a")
    assert done == [("db-b", "shutdown"), ("db-b", "start")]      # never a Toolpack host


def test_the_mysql_sweep_starts_the_servers_where_they_run(tb, monkeypatch):
    started = []
    monkeypatch.setattr(_host_ctl, "ctl", lambda tb_, h, what, action: started.append((h, what)) or
                        {"message": "mysql is already running"})
    _host_ctl.sweep_host_ctl(tb, "mysql")
    tb.db_hosts = ("db-a", "db-b")
    _host_ctl.sweep_host_ctl(tb, "mysql")
    _host_ctl.sweep_host_ctl(tb, "service")
    assert sorted(started) == [("db-a", "mysql"), ("db-b", "mysql"), ("host-a", "mysql"),
                               ("host-a", "service"), ("host-b", "mysql"), ("host-b", "service")]


def test_ctl_kinds_take_the_time_init_reports(tb, monkeypatch):
    import harness.faults.mysql_kill as mk
    monkeypatch.setattr(mk, "ctl", lambda *a: {"message": "killed", "data": {"last_exit": {"signalled_at": 0.5}}})
    f = faults.MysqlKill(tb, host="host-a")
    assert f.inject() == 0.5


# -- FaultSet: each fault's window in the history; heal_all from the registry -------------

class FakeHistory:
    def __init__(self):
        self.events = []

    def event(self, kind, **fields):
        self.events.append((kind, fields))


class Recorded(faults.HostPowerOff):
    def heal(self):
        self.healed_at = 100.0 + len(self.host)


def test_fault_set_writes_inject_and_heal_events(tb, monkeypatch):
    monkeypatch.setattr(_set, "heal_all", lambda tb_: None)
    h = FakeHistory()
    fs = FaultSet(tb, history=h)
    a, b = Recorded(tb, host="host-a"), Recorded(tb, host="tmedia-1")
    fs.inject(a)
    fs.inject(b)
    fs.heal()
    assert h.events == [
        ("fault", {"action": "inject", "name": "power off host-a", "fault_kind": "host_power_off",
                   "target": "host-a", "t_fault": a.injected_at}),
        ("fault", {"action": "inject", "name": "power off tmedia-1", "fault_kind": "host_power_off",
                   "target": "tmedia-1", "t_fault": b.injected_at}),
        ("fault", {"action": "heal", "name": "power off tmedia-1", "t_healed": 108.0}),
        ("fault", {"action": "heal", "name": "power off host-a", "t_healed": 106.0})]


def test_a_failed_heal_heals_the_rest_and_writes_no_heal_event(tb, monkeypatch):
    swept = []
    monkeypatch.setattr(_set, "heal_all", lambda tb_: swept.append(tb_))

    class Broken(Recorded):
        def heal(self):
            raise TbError("still down")
    h = FakeHistory()
    fs = FaultSet(tb, history=h)
    fs.inject(Recorded(tb, host="host-a"))
    fs.inject(Broken(tb, host="host-b"))
    with pytest.raises(TbError, match="power off host-b: still down"):
        fs.heal()
    assert [f["name"] for k, f in h.events if f["action"] == "heal"] == ["power off host-a"]
    assert swept == [tb]


def test_without_history_nothing_is_written(tb, monkeypatch):
    monkeypatch.setattr(_set, "heal_all", lambda tb_: None)
    fs = FaultSet(tb)
    fs.inject(Recorded(tb, host="host-a"))
    fs.heal()
    assert fs.history is None and not fs.faults


def test_each_distinct_sweep_runs_once_containers_first_services_last(monkeypatch):
    order = [c.kind for c in faults.sweeps()]
    assert order[0] == "host_power_off" and order[-1] == "service_quit"
    assert order.index("mysql_kill") < order.index("service_quit")
    assert set(order) == {"host_power_off", "bond_port_down", "bond_port_silent", "deadlock", "network_cut",
                          "mysql_kill", "service_quit"}
    ran = []
    for cls in faults.sweeps():
        monkeypatch.setattr(cls, "sweep", classmethod(lambda c, tb, k=cls.kind: ran.append(k)))
    faults.heal_all(object())
    assert ran == order


def test_the_sweeps_clean_a_fake_testbed(tb):
    tb.container("host-b").status = "exited"
    faults.HostPowerOff.sweep(tb)
    faults.NetworkCut.sweep(tb)
    faults.PortDown.sweep(tb)
    assert tb.container("host-b").calls[0][1] == "start"
    cmds = [" ".join(c) for _, c in tb.container("host-a").calls if isinstance(c, list)]
    assert any("nft delete table inet tbfault" in c and "nft delete table netdev tbfault" in c
               for c in cmds), cmds
    assert any("vp1 vp2" in c[-1] for _, c in tb.container("tmedia-3").calls if isinstance(c, list))
    assert not any("vp1 vp2" in str(c) for _, c in tb.container("host-a").calls)


# -- max_switchover_s from the HA timers -------------------------------------------------

def test_the_bounds_are_the_sums_of_the_timers():
    t = Timers()
    m = faults.CALL_MARGIN_S
    assert REGISTRY["kill_process"].max_switchover_s(t) == pytest.approx(0.1 + m)
    assert REGISTRY["service_quit"].max_switchover_s(t) == pytest.approx(0.1 + m)
    assert REGISTRY["deadlock"].max_switchover_s(t) == pytest.approx(0.5 + 0.1 + m)
    assert REGISTRY["host_power_off"].max_switchover_s(t) == pytest.approx(1.0 + 0.1 + m)
    assert REGISTRY["network_cut"].max_switchover_s(t) == pytest.approx(1.0 + 0.1 + m)
    assert REGISTRY["unit_power_off"].max_switchover_s(t) == pytest.approx(2.0 + 0.1 + faults.SIP_START_S + m)


def test_the_default_timers_keep_their_order():
    """lease < fence < dead-board time < watchdog: the holder gives a unit up before the
    unit frees itself, which fences itself before the host moves it, long before its
    watchdog reboots it; and the peer is declared lost only after several heartbeats."""
    t = Timers()
    assert t.lease_s < t.fence_s < t.unit_dead_s < t.watchdog_s
    assert t.peer_timeout_s >= 4 * t.hb_s and t.lease_s >= 4 * t.poll_s


def test_each_bound_follows_its_own_timer():
    base, slow_deadlock = Timers(), Timers(deadlock_s=3.0)
    assert REGISTRY["deadlock"].max_switchover_s(slow_deadlock) == pytest.approx(
        REGISTRY["deadlock"].max_switchover_s(base) + 2.5)
    assert REGISTRY["kill_process"].max_switchover_s(slow_deadlock) == REGISTRY["kill_process"].max_switchover_s(base)
    long_lease = Timers(lease_s=2.5)
    assert REGISTRY["host_power_off"].max_switchover_s(long_lease) == pytest.approx(
        REGISTRY["host_power_off"].max_switchover_s(base) + 1.5)
    # the peer timeout bounds it when it is the longer of the two
    assert REGISTRY["host_power_off"].max_switchover_s(Timers(peer_timeout_s=2.0)) == pytest.approx(
        2.0 + 0.1 + faults.CALL_MARGIN_S)


def test_timers_from_the_environment_in_ms():
    t = Timers.from_env({"TB_LEASE_MS": "2000", "TMEDIA_WATCHDOG_MS": "7000", "TB_POLL_INTERVAL_MS": ""})
    assert (t.lease_s, t.watchdog_s, t.poll_s) == (2.0, 7.0, Timers().poll_s)


def test_the_fault_events_fit_a_real_history(tb, tmp_path, monkeypatch):
    from harness.history import History, load, of_kind
    monkeypatch.setattr(_set, "heal_all", lambda tb_: None)
    with History(tmp_path / "h.jsonl") as h:
        fs = FaultSet(tb, history=h)
        fs.inject(Recorded(tb, host="host-a"))
        fs.heal()
    ev = load(tmp_path / "h.jsonl")
    assert of_kind(ev, "fault", action="inject")[0]["fault_kind"] == "host_power_off"
    assert of_kind(ev, "fault", action="heal")[0]["t_healed"] == 106.0


def test_a_closed_history_does_not_stop_the_healing(tb, monkeypatch, tmp_path):
    """An operation that raised closed its history with a fault still in place; the
    fixture's heal at teardown must still heal every fault and run the sweep."""
    from harness.history import History
    swept = []
    monkeypatch.setattr(_set, "heal_all", lambda tb_: swept.append(tb_))
    h = History(tmp_path / "history.jsonl")
    fs = FaultSet(tb, history=h)
    a, b = Recorded(tb, host="host-a"), Recorded(tb, host="host-b")
    fs.inject(a)
    fs.inject(b)
    h.close()
    with pytest.raises(TbError, match="history of power off host-b's heal"):
        fs.heal()
    assert a.healed_at and b.healed_at and swept == [tb] and not fs.faults


# -- restore_placement: each unit back on its own board ---------------------------------

class _Cluster:
    """Boards and the N+1 rule as the active host applies them: a unit whose board is
    down moves to a free running board, its own board first. The host sees a board down
    only while it is stopped: a restart is over before the host would notice."""

    def __init__(self, placement):
        self.pl, self.down, self.log = dict(placement), set(), []

    def placement(self):
        for unit, board in sorted(self.pl.items()):
            if board in self.down:
                free = [b for b in ("tmedia-1", "tmedia-2", "tmedia-3")
                        if b not in self.down and b not in self.pl.values()]
                if free:
                    self.pl[unit] = unit if unit in free else free[0]
        return dict(self.pl)

    def container(self, name):
        cluster = self

        class Board:
            def stop(self, timeout=None):
                cluster.log.append(("stop", name))
                cluster.down.add(name)

            def start(self):
                cluster.log.append(("start", name))
                cluster.down.discard(name)

            def restart(self, timeout=None):
                cluster.log.append(("restart", name))
        return Board()

    def oam(self, host, path):
        return {"services": self.placement()}

    def master(self):
        return "host-a"

    def wait_healthy(self, *a, **k):
        return None


@pytest.mark.parametrize("start", [
    {"tmedia-1": "tmedia-3", "tmedia-2": "tmedia-2"},
    {"tmedia-1": "tmedia-2", "tmedia-2": "tmedia-1"},     # the chaos run left them swapped
    {"tmedia-1": "tmedia-2", "tmedia-2": "tmedia-3"},
])
def test_restore_placement_puts_each_unit_back_on_its_own_board(start):
    from harness.faults._units import restore_placement
    tb = _Cluster(start)
    restore_placement(tb)
    assert tb.placement() == {"tmedia-1": "tmedia-1", "tmedia-2": "tmedia-2"}
    assert not tb.down, "every board stopped to move a unit is started again"
