"""The unit's controller lease (emulator/tmedia/lease.py) under a fake clock: the rules
that keep two hosts from controlling one unit at once."""
from __future__ import annotations

import pytest

from emulator.tmedia.lease import Lease

GW_A = [("172.28.1.11", 7100), ("172.28.2.11", 7100)]
GW_B = [("172.28.1.12", 7100), ("172.28.2.12", 7100)]


class FakeClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def lease(clock):
    return Lease(clock)


def test_a_free_unit_accepts_the_first_poll(lease):
    assert lease.holder() is None and lease.current() is None
    res = lease.poll("host-a", 3, 1500, GW_A)
    assert res.accepted and res.change == "acquired"
    st = lease.current()
    assert (st.controller, st.epoch, st.lease_ms, st.gateways) == ("host-a", 3, 1500, tuple(GW_A))
    assert lease.expires_in_ms() == 1500


def test_the_controller_renews_its_lease(lease, clock):
    lease.poll("host-a", 3, 1500, GW_A)
    clock.advance(1.0)
    res = lease.poll("host-a", 3, 1500, GW_A)
    assert res.accepted and res.change is None       # a renewal is not a change
    assert lease.expires_in_ms() == 1500
    clock.advance(1.4)
    assert lease.current().controller == "host-a"    # 2.4 s after the first poll: still held


def test_another_controller_is_refused_while_the_lease_runs(lease, clock):
    lease.poll("host-a", 3, 1500, GW_A)
    clock.advance(0.7)
    res = lease.poll("host-b", 4, 1500, GW_B)
    assert not res.accepted
    assert res.state.controller == "host-a" and res.expires_in_ms == 800
    assert lease.current().controller == "host-a" and lease.current().gateways == tuple(GW_A)


def test_the_lease_expires_exactly_at_lease_ms(lease, clock):
    lease.poll("host-a", 3, 1500, GW_A)
    clock.advance(1.4999)
    assert lease.current() is not None
    assert not lease.poll("host-b", 4, 1500, GW_B).accepted
    clock.advance(0.0001)
    assert lease.current() is None
    assert lease.holder().controller == "host-a"     # remembered, but no longer in force


def test_a_standby_takes_over_only_after_expiry(lease, clock):
    lease.poll("host-a", 3, 1500, GW_A)
    clock.advance(1.5)
    res = lease.poll("host-b", 4, 2000, GW_B)
    assert res.accepted and res.change == "taken over" and res.previous.controller == "host-a"
    st = lease.current()
    assert (st.controller, st.epoch, st.lease_ms, st.gateways) == ("host-b", 4, 2000, tuple(GW_B))
    # the old controller coming back is now the one refused
    res = lease.poll("host-a", 3, 1500, GW_A)
    assert not res.accepted and res.state.controller == "host-b" and res.expires_in_ms == 2000


def test_the_controller_polling_again_after_expiry(lease, clock):
    lease.poll("host-a", 3, 1500, GW_A)
    clock.advance(5)
    res = lease.poll("host-a", 3, 1500, GW_A)
    assert res.accepted and res.change == "renewed after expiry"


def test_each_poll_sets_its_own_lease_length(lease, clock):
    lease.poll("host-a", 3, 1500, GW_A)
    lease.poll("host-a", 3, 500, GW_A)
    clock.advance(0.5)
    assert lease.current() is None


def test_release_by_the_controller_frees_the_unit_at_once(lease, clock):
    lease.poll("host-a", 3, 1500, GW_A)
    assert lease.release("host-a") is True
    assert lease.holder() is None and lease.current() is None
    res = lease.poll("host-b", 4, 1500, GW_B)       # graceful handover: no wait for expiry
    assert res.accepted and res.change == "acquired"


def test_release_by_another_controller_is_refused(lease):
    lease.poll("host-a", 3, 1500, GW_A)
    assert lease.release("host-b") is False
    assert lease.current().controller == "host-a"


def test_release_is_idempotent(lease):
    assert lease.release("host-a") is True           # nothing held
    lease.poll("host-a", 3, 1500, GW_A)
    assert lease.release("host-a") is True
    assert lease.release("host-a") is True           # a retransmitted release


def test_expiry_is_reported_once(lease, clock):
    lease.poll("host-a", 3, 1500, GW_A)
    assert lease.check_expiry() is None
    clock.advance(2)
    assert lease.check_expiry().controller == "host-a"
    assert lease.check_expiry() is None
    lease.poll("host-a", 3, 1500, GW_A)
    clock.advance(2)
    assert lease.check_expiry().controller == "host-a"   # a new lease can expire again
