"""The HA rule of toolpack_sys_manager, as a pure state machine (clock injected, no I/O).

The rule, written down:
1. Each host heartbeats its peer over ctrl-a and ctrl-b. The peer is alive while ANY path
   has been heard within `peer_timeout`; losing one path changes nothing.
2. A host is *active* only while it holds the controller lease of a strict majority of the
   TMedia units. A unit grants its lease to one controller and hands it to another only
   after `lease` seconds without a poll from the holder (or an explicit release). Two
   hosts can never both hold a majority, so there are never two active hosts, even when
   only the links between the hosts are cut and both still reach the units: the cut-off
   standby tries, is refused by every unit, and stays a candidate.
3. A standby becomes a *candidate* (starts polling to take the leases) when it is ready
   (its engine and gateway run) and: the peer is lost (or, at start, not heard within
   3 peer timeouts), or the peer asks it to take over,
   or neither is active and it is preferred (lower priority) or the peer is not ready.
4. An active host that is no longer ready (its engine or gateway died, or the service is
   quitting) hands over: it releases the units, asks the peer to take over and stays
   standby for `holddown` so that it does not take the role straight back.
5. A lease counts as held until (send time of the accepted poll + lease * 0.9): the unit
   started its lease after we sent, so we give it up strictly before the unit does.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

STANDBY, CANDIDATE, ACTIVE = "standby", "candidate", "active"


@dataclass
class PeerView:
    role: str = "unknown"
    ready: bool = False
    priority: int = 99
    last_heard: dict = field(default_factory=dict)   # path index -> monotonic time
    min_seq: int = 0      # heartbeats older than the peer's last takeover request are stale


class Election:
    def __init__(self, priority: int, peer_timeout: float, lease: float, holddown: float,
                 clock=time.monotonic):
        self.priority = priority
        self.peer_timeout = peer_timeout
        self.lease = lease
        self.holddown = holddown
        self.clock = clock
        self.role = STANDBY
        self.epoch = 0
        self.peer = PeerView()
        self.holddown_until = 0.0
        self.takeover_requested = False
        self.lease_until: dict[str, float] = {}      # unit -> held until
        # at start, give the peer time to be heard so the preferred host wins the first
        # election instead of whichever started first
        self.startup_until = clock() + 3 * peer_timeout

    # ---- inputs -------------------------------------------------------------------
    def heard_peer(self, path: int, role: str, ready: bool, priority: int, epoch: int,
                   seq: int = 0) -> None:
        self.peer.last_heard[path] = self.clock()
        self.epoch = max(self.epoch, epoch)
        if seq < self.peer.min_seq:
            return      # sent before the peer handed over (other path, or reordered)
        self.peer.role, self.peer.ready, self.peer.priority = role, ready, priority

    def request_takeover(self, seq: int = 0) -> None:
        """The peer handed over: it is standby from its heartbeat `seq` on."""
        self.takeover_requested = True
        self.peer.role = STANDBY
        self.peer.min_seq = max(self.peer.min_seq, seq)

    def poll_accepted(self, unit: str, sent_at: float) -> None:
        self.lease_until[unit] = sent_at + self.lease * 0.9

    def resume_active(self, epoch: int) -> None:
        """A restarted sys_manager on the active host keeps the role (no switchover); if
        the units say otherwise, the first refused poll round demotes it (rule 2)."""
        self.role, self.epoch = ACTIVE, epoch
        now = self.clock()
        self.lease_until = {}
        self._resumed_at = now

    # ---- views --------------------------------------------------------------------
    def paths_alive(self) -> list[int]:
        now = self.clock()
        return sorted(p for p, t in self.peer.last_heard.items() if now - t < self.peer_timeout)

    def peer_alive(self) -> bool:
        return bool(self.paths_alive())

    def units_held(self) -> list[str]:
        now = self.clock()
        return sorted(u for u, t in self.lease_until.items() if t > now)

    def holds_majority(self, units_total: int) -> bool:
        return 2 * len(self.units_held()) > units_total

    # ---- the step -----------------------------------------------------------------
    def step(self, ready: bool, units_total: int) -> list[str]:
        """Advance the state machine; returns actions for the caller: 'handover'."""
        now = self.clock()
        peer_alive = self.peer_alive()
        if self.role == ACTIVE:
            if not ready:
                return self._hand_over(now)
            grace = getattr(self, "_resumed_at", None)
            if grace is not None and now - grace < self.lease:
                return []           # a resumed manager gets one lease period to re-poll
            self._resumed_at = None
            if not self.holds_majority(units_total):
                self.role = STANDBY  # the units obey someone else, or we reach too few
            return []
        if self.role == CANDIDATE:
            if not ready or (peer_alive and self.peer.role == ACTIVE):
                self.role = STANDBY
                self.takeover_requested = False
            elif self.holds_majority(units_total):
                self.role = ACTIVE
                self.epoch += 1
                self.takeover_requested = False
            return []
        # STANDBY
        if not ready:
            return []
        if self.takeover_requested or (not peer_alive and now >= self.startup_until):
            self.role = CANDIDATE
            return []
        if not peer_alive:
            return []
        if now < self.holddown_until:
            return []
        if self.peer.role not in (ACTIVE, CANDIDATE) and (
                not self.peer.ready or self.priority < self.peer.priority):
            self.role = CANDIDATE
        return []

    def _hand_over(self, now: float) -> list[str]:
        self.role = STANDBY
        self.holddown_until = now + self.holddown
        self.lease_until = {}
        return ["handover"]

    def quit(self) -> list[str]:
        """Graceful quit of the service: hand over if active."""
        if self.role == ACTIVE:
            return self._hand_over(self.clock())
        self.role = STANDBY
        return []
