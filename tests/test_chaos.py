"""The chaos run's judge (harness/chaos_check.py) and its plan (scenarios/chaos.py), no
Docker. A clean synthetic run passes; each defect a broken system would show is made by
changing calls of it, and the judge must name it with its step."""
from dataclasses import replace

import pytest

from harness.chaos_check import FaultMark, Window, gaps, judge
from harness.sipp import CallRecord
from scenarios.chaos import ChaosError, load_config, plan

RATE = 20


def call(i: int, t: float, gw: str = "host-a", hold: float = 4.0, **changes) -> CallRecord:
    c = CallRecord(f"c{i}", invite_t=t, final_t=t + 0.05, answer_t=t + 0.05, final_code=200,
                   bye_sent_t=t + hold, bye_ok_t=t + hold + 0.01, bye_code=200,
                   end_t=t + hold + 0.01, ended=True, outcome="completed", far_bye=True,
                   gateway=gw)
    return replace(c, **changes)


def refused(c: CallRecord, code: int = 503) -> CallRecord:
    return replace(c, answer_t=None, final_code=code, final_reason="Service Unavailable",
                   bye_sent_t=None, bye_ok_t=None, bye_code=None, end_t=c.final_t,
                   outcome="failed", far_bye=None, gateway=None)


def run_with_double(t1=100.0, t2=103.0, sw=104.0, until=160.0):
    """Calls at RATE/s from 90 s to `until`; a double fault (the backup database killed
    at t1, the master powered off at t2): host-a answers until t2, host-b from `sw`;
    calls placed in [t2, sw) get no answer (the switchover)."""
    calls = []
    for i in range(int((until - 90) * RATE)):
        t = 90 + i / RATE
        if t2 <= t < sw:
            calls.append(replace(call(i, t), answer_t=None, final_code=None, final_t=None,
                                 bye_sent_t=None, bye_ok_t=None, bye_code=None, end_t=t + 8,
                                 outcome="unanswered", far_bye=None, gateway=None,
                                 abort="recv timeout"))
        else:
            calls.append(call(i, t, "host-a" if t < t2 else "host-b"))
    w = Window("step 1 master-down-backup-db-down",
               (FaultMark("kill MySQL on host-b", t1, 1.7), FaultMark("power off host-a", t2, 1.7)),
               t_end=130.0, transient="drop", switchover=True, old_master="host-a")
    return calls, w


def test_a_clean_run_passes():
    calls, w = run_with_double()
    v = judge(calls, [w], {})
    assert v.ok, v.violations
    assert v.counts["transient_dropped"] >= RATE          # the switchover's unanswered calls
    assert v.counts["settled"] > 1000


def test_refusing_one_percent_of_new_calls_during_a_double_fault_is_caught():
    calls, w = run_with_double()
    # one call in a hundred placed after the switchover refused 503, while no database
    # is reachable: the defect the chaos run must catch
    late = [i for i, c in enumerate(calls) if 106 <= c.invite_t < 130][::100]
    for i in late:
        calls[i] = refused(calls[i])
    v = judge(calls, [w], {})
    assert len(v.violations) == len(late) > 0
    assert all(x.startswith("step 1 master-down-backup-db-down: call ") and "placed while settled"
               in x and "rejected with 503" in x for x in v.violations)


def test_a_refusal_between_windows_is_caught_too():
    calls, w = run_with_double()
    i = next(i for i, c in enumerate(calls) if c.invite_t >= 150)
    calls[i] = refused(calls[i], 500)
    v = judge(calls, [w], {})
    assert v.violations == [f"no fault: call {calls[i].call_id} placed while settled: "
                            "rejected with 500 Service Unavailable"]


def test_transient_calls_may_be_dropped_only_where_the_window_says_drop():
    calls, w = run_with_double()
    assert judge(calls, [replace(w, transient="accept")], {}).violations  # no answer: not ok
    i = next(i for i, c in enumerate(calls) if 103 <= c.invite_t < 104)
    calls[i] = refused(calls[i], 486)      # a drop may only be 503 or no answer
    v = judge(calls, [w], {})
    assert [x for x in v.violations if "transient call" in x and "rejected with 486" in x]


def test_an_established_call_lost_is_caught_unless_its_unit_failed():
    calls, w = run_with_double()
    i = next(i for i, c in enumerate(calls) if c.invite_t >= 101 and c.answer_t)
    calls[i] = replace(calls[i], peer_bye_t=103.5, bye_sent_t=None, bye_ok_t=None,
                       bye_code=None, end_t=103.5)
    v = judge(calls, [w], {})
    assert any("released by the network" in x for x in v.violations)
    v = judge(calls, [w], {}, lost_ok={calls[i].call_id})
    assert v.ok and v.counts["lost"] == 1


def test_a_hung_call_is_caught():
    calls, w = run_with_double()
    calls[5] = replace(calls[5], ended=False, bye_ok_t=None, bye_code=None)
    assert any("never ended" in x for x in judge(calls, [w], {}).violations)


def test_a_slow_switchover_is_caught_and_a_superseded_one_is_not():
    calls, w = run_with_double(sw=106.0)            # 3 s after the power-off, bound 1.7 s
    v = judge(calls, [w], {})
    assert any("first new call answered 3.0" in x and "power off host-a" in x
               for x in v.violations)
    # the first fault (the database) needs no switchover: the master answers at once,
    # and its bound is not judged once the second fault comes first
    assert not any("kill MySQL" in x for x in v.violations)


def test_no_new_call_answered_after_a_fault_is_caught():
    calls, w = run_with_double()
    calls = [c if c.invite_t < 103 else refused(c) for c in calls]
    v = judge(calls, [w], {})
    assert any("no call placed after power off host-a was answered" in x for x in v.violations)


def test_gaps_in_the_load():
    assert gaps([1, 2, 3, 7, 8], 0, 10) == 4
    assert gaps([], 0, 10) == 10


# ---- the plan --------------------------------------------------------------------------
def test_a_seed_always_gives_the_same_plan_and_a_prefix_is_the_shorter_plan():
    cfg = load_config()
    a, b = plan(cfg, 42, 30), plan(cfg, 42, 30)
    assert a == b
    assert plan(cfg, 42, 7) == a[:7]
    assert plan(cfg, 43, 30) != a


def test_the_plans_cover_every_double_fault_and_singles_of_the_matrix():
    cfg = load_config()
    names = {s.name for seed in range(5) for s in plan(cfg, seed, 20)}
    assert {d.name for d in cfg.doubles} <= names
    assert len(names & {s.name for s in cfg.singles}) >= 10
    for s in plan(cfg, 1, 50):
        assert cfg.gap_s[0] <= s.gap_s <= cfg.gap_s[1]
        assert len(s.bounds) == sum(1 for a in s.actions if a.fault)
        assert (s.unit is None) == (s.unit_bound_s is None)


def test_the_double_faults_as_defined():
    cfg = load_config()
    d = {s.name: s for s in cfg.doubles}
    nodb = d["master-down-backup-db-down"]
    assert [a.fault["kind"] for a in nodb.actions] == ["mysql_kill", "host_power_off"]
    assert [a.fault["target"] for a in nodb.actions] == ["slave", "master"]
    assert d["mysql-kill-during-reload"].actions[0].reload
    assert d["unit-failure-during-switchover"].unit == "tmedia-2"
    assert d["unit-ctrl-cut-during-switchover"].unit_calls == "lost"


@pytest.mark.parametrize("text, field", [
    ("run: [1\n", "not valid YAML"),
    ("run: {}\n", "exactly 'run' and 'doubles'"),
    ("run: {load: {rate: 20, media_rate: 2, hold_s: 4}, write_period_s: 0.5, gap_s: [5, 3], "
     "hold_s: [1, 2], double_share: 0.4, heal_deadline_s: 60}\ndoubles: []\n", "run.gap_s"),
    ("run: {load: {rate: 20, media_rate: 2, hold_s: 4}, write_period_s: 0.5, gap_s: [1, 3], "
     "hold_s: [1, 2], double_share: 0.4, heal_deadline_s: 60}\n"
     "doubles: [{id: x, switchover: true, transient: drop, actions: "
     "[{at_s: 0, fault: {kind: host_power_off, target: nobody}}]}]\n", "fault.target"),
    ("run: {load: {rate: 20, media_rate: 2, hold_s: 4}, write_period_s: 0.5, gap_s: [1, 3], "
     "hold_s: [1, 2], double_share: 0.4, heal_deadline_s: 60}\n"
     "doubles: [{id: x, switchover: true, transient: drop, actions: "
     "[{at_s: 0, fault: {kind: unit_power_off, target: tmedia-1}}]}]\n", "double 'x'.unit"),
])
def test_a_malformed_chaos_file_is_a_clear_error(tmp_path, text, field):
    p = tmp_path / "chaos.yaml"
    p.write_text(text)
    with pytest.raises(ChaosError, match=field.replace("[", r"\[").replace(".", r"\.")):
        load_config(p)


# ---- the shrink ------------------------------------------------------------------------
def test_shrink_finds_the_shortest_failing_prefix_by_replay(monkeypatch, tmp_path):
    """A system that fails once the third step has run: a failed run of 6 steps whose
    first violation names step 5 shrinks to 3 steps, by replays of prefixes only."""
    import scenarios.chaos as chaos

    replays = []

    def fake_run(tb, cfg, seed, out, *, duration_s=None, steps=None):
        replays.append(steps)
        return chaos.RunResult(seed, [None] * steps, ["step 3 x: refused"] if steps >= 3 else [],
                               {}, {}, [], out, 0.0, 1.0)
    monkeypatch.setattr(chaos, "run", fake_run)
    failed = chaos.RunResult(9, [None] * 6, ["step 5 y: call c1 placed while settled: rejected"],
                             {}, {}, [], tmp_path, 0.0, 1.0)
    assert failed.first_failing_step() == 4
    assert chaos.shrink(None, load_config(), 9, failed, tmp_path, budget_s=60) == 3
    assert all(n <= 5 for n in replays) and 3 in replays and 2 in replays


def test_a_violation_of_the_whole_run_shrinks_from_the_last_step(tmp_path):
    import scenarios.chaos as chaos
    r = chaos.RunResult(9, [None] * 4, ["writes: 1 acknowledged writes missing on the main"],
                        {}, {}, [], tmp_path, 0.0, 1.0)
    assert r.first_failing_step() == 3


def test_a_failed_run_prints_the_nodes_events_in_time_order(tmp_path):
    """CI keeps only what a failed run prints: the deadlock kills, reboots and role
    changes of every node come with the violations, in the order they happened."""
    import scenarios.chaos as chaos

    class Container:
        def __init__(self, text):
            self.text = text

        def logs(self, **_):
            return self.text.encode()

    logs = {
        "host-a": "2026-12-06T12:37:15.200Z 12:37:15.200 toolpack: deadlock gateway {'silent_s': 0.6}\n"
                  "2026-12-06T12:37:14.100Z 12:37:14.100 toolpack_sys_manager: standby -> active (epoch 9)\n",
        "tmedia-2": "2026-12-06T12:37:14.900Z tmedia-2 REBOOT: no host polled for 5.0 s\n"
                    "2026-12-06T12:37:14.950Z tmedia-2 routed a call\n",
    }

    class Tb:
        server_hosts = ["host-a", "host-b"]

        def container(self, name):
            if name not in logs:
                raise KeyError(name)
            return Container(logs[name])

    from harness import logscan
    events = logscan.notable_events(Tb(), 0.0)
    assert [e.split(": ", 1)[0] for e in events[:3]] == ["host-a", "tmedia-2", "host-a"]
    assert "routed a call" not in " ".join(events)
    assert any("logs not read" in e and e.startswith("host-b") for e in events)
    r = chaos.RunResult(25, [], ["step 3 x: call c placed while settled: rejected"],
                        {"steps": 0, "faults": 0, "calls": 1, "transient": 0,
                         "transient_dropped": 0, "lost": 0},
                        {"acked": 0, "tried": 0, "missing": 0}, [], tmp_path, 0.0, 1.0, events)
    out = chaos.summary(r)
    assert "deadlock gateway" in out and "REBOOT" in out and out.index("REBOOT") < out.index("deadlock gateway")
