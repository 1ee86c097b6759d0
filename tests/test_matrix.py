"""The scenario file loader: the real matrix parses; malformed ones are clear errors
naming the operation and the field; every fault kind's schema is strict."""
import pytest

from harness.faults import REGISTRY, Timers
from scenarios.matrix import MatrixError, load, parse

GOOD = """
defaults: {load: {rate: 5, hold_s: 10, warmup_established: 30, after_s: 15}}
operations:
  - {id: a, seed: s, fault: {kind: kill_process, target: master, app: gateway},
     switchover: true, transient: drop}
"""


def one(fault: str, extra: str = "") -> str:
    """A matrix of one operation `a` with this fault mapping (YAML flow)."""
    return ("defaults: {load: {rate: 5, hold_s: 10, warmup_established: 30, after_s: 15}}\n"
            f"operations:\n  - {{id: a, seed: s, fault: {fault}, switchover: false, "
            f"transient: accept{extra}}}\n")


def raises(text: str, message: str):
    with pytest.raises(MatrixError) as exc:
        parse(text, timers=Timers())
    assert message in str(exc.value), str(exc.value)
    return str(exc.value)


def test_the_shipped_matrix_parses():
    ops = load(timers=Timers())
    assert ops and all(op.load.rate > 0 for op in ops)


def test_every_registered_kind_is_in_the_shipped_matrix():
    assert {op.fault["kind"] for op in load(timers=Timers())} == set(REGISTRY)


def test_defaults_apply():
    (op,) = parse(GOOD)
    assert op.load.hold_s == 10 and op.transient == "drop"


@pytest.mark.parametrize("text, message", [
    ("operations: [", "not valid YAML"),
    ("[1, 2]", "'operations' list"),
    (GOOD.replace("transient: drop", "transient: maybe"), "transient must be"),
    (GOOD.replace("app: gateway", "app: nginx"), "fault.app: must be one of"),
    (GOOD.replace("target: master", "target: both"), "fault.target"),
    (GOOD.replace("kind: kill_process", "kind: meteor"), "fault.kind"),
    (GOOD.replace(", seed: s", ""), "missing ['seed']"),
    (GOOD.replace("rate: 5", "rate: fast"), "load.rate must be a number"),
    (GOOD.replace("rate: 5", "rate: 5, burst: 2"), "load.burst: unknown key"),
    (GOOD.replace("switchover: true", "switchover: yes please"), "switchover must be"),
    (GOOD.replace("transient: drop", "transient: drop, swichover: true"), "swichover: unknown key"),
    (GOOD.replace("defaults: {", "defaults: {max_switchover_s: 5, "), "defaults: a mapping with only"),
    (GOOD.replace("transient: drop", "transient: drop, max_switchover_s: fast"), "max_switchover_s must be"),
])
def test_malformed_matrix_is_a_clear_error(text, message):
    msg = raises(text, message)
    assert "operation" in msg or "operations" in msg or "defaults" in msg or "YAML" in msg


# -- strict fault data: unknown keys, unknown networks, wrong types name the field -------

def test_an_unknown_fault_key_names_the_operation_and_the_field():
    msg = raises(one("{kind: network_cut, target: master, net: [ctrl-a]}"), "fault.net: unknown key")
    assert "operation 'a'" in msg


def test_a_typo_in_nets_is_an_error_not_a_cut_of_every_interface():
    msg = raises(one("{kind: network_cut, target: master, nets: [ctrl-c]}"), "fault.nets")
    assert "'ctrl-c'" in msg and "operation 'a'" in msg


def test_nets_and_peer_together_are_an_error():
    raises(one("{kind: network_cut, target: master, nets: [ctrl-a], peer: true}"), "fault.peer")


# one wrong type per kind's schema: (fault mapping, the field the error names)
WRONG_TYPES = {
    "kill_process": ("{kind: kill_process, target: master, app: [gateway]}", "fault.app: must be str"),
    "deadlock": ("{kind: deadlock, target: 1, app: gateway}", "fault.target: must be str"),
    "host_power_off": ("{kind: host_power_off, target: [master]}", "fault.target: must be str"),
    "host_shutdown": ("{kind: host_shutdown, target: true}", "fault.target: must be str"),
    "network_cut": ("{kind: network_cut, target: master, nets: ctrl-a}", "fault.nets: must be a list"),
    "service_quit": ("{kind: service_quit, target: {host: a}}", "fault.target: must be str"),
    "mysql_shutdown": ("{kind: mysql_shutdown, target: 2}", "fault.target: must be str"),
    "mysql_kill": ("{kind: mysql_kill, target: null}", "fault.target: must be str"),
    "unit_power_off": ("{kind: unit_power_off, target: [tmedia-1]}", "fault.target: must be str"),
    "voip_ports_down": ("{kind: voip_ports_down, target: 1}", "fault.target: must be str"),
    "bond_port_down": ("{kind: bond_port_down, target: tmedia-1, port: 1}", "fault.port: must be str"),
    "bond_port_silent": ("{kind: bond_port_silent, target: tmedia-1, port: [vp1]}", "fault.port: must be str"),
    "voice_path_cut": ("{kind: voice_path_cut, target: tmedia-1, path: '101'}", "fault.path: must be int"),
    "unit_ctrl_cut": ("{kind: unit_ctrl_cut, target: tmedia-1, nets: ctrl-a}", "fault.nets: must be a list"),
    "unit_app_crash": ("{kind: unit_app_crash, target: true}", "fault.target: must be str"),
    "ss7_crash": ("{kind: ss7_crash, target: 2}", "fault.target: must be str"),
    "ss7_link_cut": ("{kind: ss7_link_cut, target: [tmedia-1]}", "fault.target: must be str"),
    "unit_unpolled": ("{kind: unit_unpolled, target: 3.5}", "fault.target: must be str"),
}


def test_every_kind_has_a_wrong_type_case():
    assert set(WRONG_TYPES) == set(REGISTRY)


@pytest.mark.parametrize("kind", sorted(WRONG_TYPES))
def test_a_wrong_type_in_each_kinds_schema_names_the_field(kind):
    fault, message = WRONG_TYPES[kind]
    unit = ", unit: {target: tmedia-1, calls: kept}" if REGISTRY[kind].unit_level else ""
    msg = raises(one(fault, unit), message)
    assert "operation 'a'" in msg


@pytest.mark.parametrize("fault, message", [
    ("{kind: unit_ctrl_cut, target: tmedia-1, nets: [ctrl-a, ctrl-b]}", "fault.nets: must have 1 item"),
    ("{kind: unit_ctrl_cut, target: tmedia-1, nets: [voip]}", "fault.nets: unknown value 'voip'"),
    ("{kind: unit_ctrl_cut, target: tmedia-1}", "fault.nets: required"),
    ("{kind: voice_path_cut, target: tmedia-1, path: 103}", "fault.path: must be one of 101, 102"),
    ("{kind: unit_power_off, target: tmedia-3}", "fault.target: must be one of tmedia-1, tmedia-2"),
    ("{kind: unit_power_off, target: master}", "fault.target"),
    ("{kind: bond_port_down, target: tmedia-1, port: vp3}", "fault.port"),
])
def test_unit_kinds_values_are_checked(fault, message):
    raises(one(fault, ", unit: {target: tmedia-1, calls: kept}"), message)


@pytest.mark.parametrize("extra, message", [
    ("", "unit: required for kind unit_power_off"),
    (", unit: {target: tmedia-2, calls: lost}", "unit.target 'tmedia-2' is not fault.target"),
    (", unit: {target: tmedia-1, calls: moved}", "unit.calls must be one of lost, kept, isup-lost"),
    (", unit: {target: tmedia-1, calls: lost, media: gone}", "unit.media: unknown key"),
])
def test_a_unit_operation_says_which_unit_fails_and_what_happens_to_its_calls(extra, message):
    raises(one("{kind: unit_power_off, target: tmedia-1}", extra), message)


def test_a_host_operation_has_no_unit_block():
    raises(one("{kind: host_power_off, target: slave}", ", unit: {target: tmedia-1, calls: kept}"),
           "unit: only for a unit-level fault kind")


def test_unit_outcome_is_parsed():
    (op,) = parse(one("{kind: unit_power_off, target: tmedia-1}", ", unit: {target: tmedia-1, calls: lost}"))
    assert (op.unit.target, op.unit.calls) == ("tmedia-1", "lost")


# -- max_switchover_s: from the kind and the HA timers, overridable --------------------

def test_max_switchover_s_comes_from_the_kind_and_the_timers():
    (op,) = parse(GOOD, timers=Timers())
    assert op.max_switchover_s == pytest.approx(REGISTRY["kill_process"].max_switchover_s(Timers()))
    (slow,) = parse(GOOD, timers=Timers(poll_s=1.0))
    assert slow.max_switchover_s == pytest.approx(op.max_switchover_s + 1.0 - Timers().poll_s)


def test_an_operation_overrides_max_switchover_s():
    (op,) = parse(GOOD.replace("transient: drop", "transient: drop, max_switchover_s: 9"))
    assert op.max_switchover_s == 9.0


def test_the_shipped_matrix_bounds_follow_the_kinds():
    ops = {op.id: op for op in load(timers=Timers())}
    assert ops["kill-master-gateway"].max_switchover_s < ops["power-off-master"].max_switchover_s \
        < ops["unit-power-off"].max_switchover_s


PROFILES = """
loads:
  heavy: {rate: 50, media_rate: 6, hold_s: 8, warmup_established: 300, after_s: 6}
  light: {rate: 5, hold_s: 10, warmup_established: 30, after_s: 12}
defaults: {load: heavy}
operations:
  - {id: a, seed: s, fault: {kind: kill_process, target: master, app: gateway},
     switchover: true, transient: drop}
  - {id: b, seed: s, fault: {kind: kill_process, target: master, app: gateway},
     switchover: true, transient: drop, load: light}
  - {id: c, seed: s, fault: {kind: kill_process, target: master, app: gateway},
     switchover: true, transient: drop, load: {hold_s: 4}}
"""


def test_load_profiles_by_name_the_default_and_an_override():
    a, b, c = parse(PROFILES, timers=Timers())
    assert (a.load.rate, a.load.media_rate, a.load.media) == (50, 6, 6)
    assert (b.load.rate, b.load.media_rate, b.load.media) == (5, None, 5)   # replaced, not merged
    assert (c.load.rate, c.load.hold_s) == (50, 4)
    a, b, c = parse(PROFILES, timers=Timers(), profile="light")             # LOAD=light
    assert a.load.rate == 5 and c.load.rate == 5 and c.load.hold_s == 4


def test_bad_load_profiles_are_clear_errors():
    with pytest.raises(MatrixError, match="load profile 'nope' is not defined"):
        parse(PROFILES, timers=Timers(), profile="nope")
    raises(PROFILES.replace("media_rate: 6", "media_rate: 60"), "media_rate must be > 0 and at most rate")
    raises(PROFILES.replace("load: light}", "load: lite}"), "load profile 'lite' is not defined")


def test_a_failed_operation_keeps_every_nodes_log(tmp_path, monkeypatch):
    """The matrix's test saves the nodes' logs beside a failed operation's verdict (and
    only then), and a log that cannot be saved never hides the verdict."""
    import scenarios.test_matrix as tm

    class Verdict:
        def __init__(self, ok):
            self.ok = ok

        def summary(self):
            return "summary"

    class Tb:
        saved = []
        server_hosts = ["host-a"]

        def save_logs(self, out):
            self.saved.append(out)
            if out.parent.name == "broken":
                raise OSError("disk full")

        def container(self, name):
            class C:
                def logs(self, **_):
                    return (b"2026-12-06T12:00:01Z tmedia-2 no poll for 1.6 s: giving up tmedia-2's interface\n"
                            b"2026-12-06T12:00:02Z tmedia-2 routed\n")
            return C()

    class Op:
        def __init__(self, id):
            self.id = id

    monkeypatch.setattr(tm, "allure_attach", lambda d: None)
    for name, ok in (("fine", True), ("failed", False), ("broken", False)):
        monkeypatch.setattr(tm, "run_operation", lambda tb, f, op, d, ok=ok: Verdict(ok))
        if ok:
            tm.test_operation(Tb(), None, tmp_path, Op(name))
        else:
            with pytest.raises(AssertionError, match="summary") as err:
                tm.test_operation(Tb(), None, tmp_path, Op(name))
            # the nodes' events come with the verdict (a unit's fence here, on each board)
            assert "event  tmedia-1: 2026-12-06T12:00:01Z tmedia-2 no poll for 1.6 s" in str(err.value)
            assert "routed" not in str(err.value)
    assert Tb.saved == [tmp_path / "failed" / "logs", tmp_path / "broken" / "logs"]
