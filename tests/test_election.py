"""The election and lease rule of toolpack_sys_manager, with a fake clock (no sleeps)."""
from emulator.host.election import ACTIVE, CANDIDATE, STANDBY, Election


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def make(priority=1):
    clock = Clock()
    return Election(priority, peer_timeout=0.6, lease=1.5, holddown=3.0, clock=clock), clock


def hear(el, role="standby", ready=True, priority=2, paths=(0, 1)):
    for p in paths:
        el.heard_peer(p, role, ready, priority, 0)


def test_preferred_host_becomes_candidate_then_active_with_the_unit_lease():
    el, clock = make(priority=1)
    hear(el)
    el.step(ready=True, units_total=1)
    assert el.role == CANDIDATE
    el.poll_accepted("tmedia-1", clock.t)
    el.step(ready=True, units_total=1)
    assert el.role == ACTIVE and el.epoch == 1


def test_not_preferred_host_stays_standby_while_peer_is_ready():
    el, _ = make(priority=2)
    hear(el, priority=1)
    el.step(ready=True, units_total=1)
    assert el.role == STANDBY


def test_losing_one_path_changes_nothing_losing_both_makes_candidate():
    el, clock = make(priority=2)
    hear(el, role="active", priority=1)
    clock.t += 0.5
    hear(el, role="active", priority=1, paths=(1,))   # ctrl-a silent, ctrl-b alive
    clock.t += 0.5
    el.step(ready=True, units_total=1)
    assert el.role == STANDBY and el.paths_alive() == [1]
    clock.t += 0.8                                   # every path silent, past start-up
    el.step(ready=True, units_total=1)
    assert el.role == CANDIDATE


def test_candidate_refused_by_units_never_becomes_active():
    """Only the links between the hosts are cut: the standby loses the peer but the units
    stay leased to the other host, so it never becomes active (no split brain)."""
    el, clock = make(priority=2)
    clock.t += 2.0                              # past the start-up grace
    for _ in range(50):
        clock.t += 0.2
        el.step(ready=True, units_total=3)
    assert el.role == CANDIDATE
    el.poll_accepted("tmedia-1", clock.t)       # one of three units is not a majority
    el.step(ready=True, units_total=3)
    assert el.role == CANDIDATE
    el.poll_accepted("tmedia-2", clock.t)
    el.step(ready=True, units_total=3)
    assert el.role == ACTIVE


def test_active_hands_over_when_not_ready_and_holds_down():
    el, clock = make(priority=1)
    el.poll_accepted("tmedia-1", clock.t)
    el.role = ACTIVE
    hear(el)
    assert el.step(ready=False, units_total=1) == ["handover"]
    assert el.role == STANDBY and el.units_held() == []
    hear(el, role="standby")
    clock.t += 1.0
    hear(el, role="standby")
    el.step(ready=True, units_total=1)
    assert el.role == STANDBY                   # held down although preferred
    clock.t += 2.5
    hear(el, role="active")
    el.step(ready=True, units_total=1)
    assert el.role == STANDBY                   # the peer took it: stay standby


def test_active_gives_up_lease_before_the_unit_does():
    el, clock = make()
    el.role = ACTIVE
    el.poll_accepted("tmedia-1", clock.t)
    hear(el)
    clock.t += 1.5 * 0.9                       # the unit's lease runs until +1.5 at least
    el.step(ready=True, units_total=1)
    assert el.role == STANDBY


def test_takeover_request_makes_standby_candidate_at_once():
    el, clock = make(priority=2)
    hear(el, role="active", priority=1)
    el.request_takeover()
    el.step(ready=True, units_total=1)
    assert el.role == CANDIDATE


def test_resumed_manager_keeps_role_for_one_lease_then_needs_the_units():
    el, clock = make()
    el.resume_active(4)
    hear(el)
    el.step(ready=True, units_total=1)
    assert el.role == ACTIVE and el.epoch == 4
    el.poll_accepted("tmedia-1", clock.t)
    clock.t += 1.0
    el.step(ready=True, units_total=1)
    assert el.role == ACTIVE
    clock.t += 1.0                              # past the grace and the lease: no units
    el.step(ready=True, units_total=1)
    assert el.role == STANDBY


def test_stale_active_heartbeat_after_takeover_does_not_demote_the_candidate():
    """The peer's last heartbeat before its handover (still 'active') may arrive after
    its takeover request, on the other path: it must not send us back to standby."""
    el, clock = make(priority=2)
    hear(el, role="active", priority=1)
    el.request_takeover(seq=10)
    el.step(ready=True, units_total=1)
    assert el.role == CANDIDATE
    el.heard_peer(0, "active", True, 1, 0, seq=9)     # in flight before the handover
    el.step(ready=True, units_total=1)
    assert el.role == CANDIDATE
    el.poll_accepted("tmedia-1", clock.t)
    el.step(ready=True, units_total=1)
    assert el.role == ACTIVE


def test_at_start_the_peer_gets_time_to_be_heard():
    el, clock = make(priority=2)
    el.step(ready=True, units_total=1)
    assert el.role == STANDBY                   # peer not heard yet, but it may be starting
    hear(el, priority=1)
    clock.t += 1.0
    hear(el, priority=1)
    el.step(ready=True, units_total=1)
    assert el.role == STANDBY                   # the preferred peer is there: it goes first
    clock.t += 2.0                              # the peer falls silent past the grace
    el.step(ready=True, units_total=1)
    assert el.role == CANDIDATE
