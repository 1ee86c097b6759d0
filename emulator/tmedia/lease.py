"""The controller lease a unit grants to one host's sys_manager (ARCHITECTURE.md, unit control).

Pure logic with an injectable clock, so the rules that make two active hosts impossible
are unit-tested without sockets or sleeps:

- a poll is accepted when the unit has no controller, when it comes from the current
  controller, or when the current lease has expired (no accepted poll for `lease_ms`);
- an accepted poll sets controller, epoch, gateways and the lease;
- `release` from the current controller clears the lease at once (graceful handover).

Not thread-safe: the control agent serialises access.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional


@dataclass(frozen=True)
class LeaseState:
    controller: str
    epoch: object
    gateways: tuple            # ((host, port), ...) of the controller's gateway
    lease_ms: int
    expires_at: float          # clock() value


@dataclass(frozen=True)
class PollResult:
    accepted: bool
    state: Optional[LeaseState]    # the lease after the poll (the holder's when refused)
    change: Optional[str]          # "acquired" | "taken over" | None (renewal or refusal)
    previous: Optional[LeaseState] = None
    expires_in_ms: int = 0         # on refusal: how long the holder's lease still runs


class Lease:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._state: Optional[LeaseState] = None
        self._expiry_reported = False

    # --- queries -------------------------------------------------------------------
    def holder(self) -> Optional[LeaseState]:
        """The last granted lease, expired or not (None after release)."""
        return self._state

    def current(self) -> Optional[LeaseState]:
        """The lease if it is still running, else None."""
        st = self._state
        if st is None or self.clock() >= st.expires_at:
            return None
        return st

    def expires_in_ms(self) -> int:
        st = self._state
        if st is None:
            return 0
        return max(0, int(round((st.expires_at - self.clock()) * 1000)))

    # --- operations -----------------------------------------------------------------
    def poll(self, controller: str, epoch, lease_ms: int, gateways) -> PollResult:
        now = self.clock()
        old = self._state
        running = old is not None and now < old.expires_at
        if running and old.controller != controller:
            return PollResult(False, old, None,
                              expires_in_ms=max(0, int(round((old.expires_at - now) * 1000))))
        new = LeaseState(controller, epoch, tuple((str(h), int(p)) for h, p in gateways),
                         int(lease_ms), now + lease_ms / 1000.0)
        self._state = new
        self._expiry_reported = False
        if old is None:
            change = "acquired"
        elif old.controller != controller:
            change = "taken over"
        elif not running:
            change = "renewed after expiry"
        else:
            change = None
        return PollResult(True, new, change, previous=old)

    def release(self, controller: str) -> bool:
        """Clear the lease if `controller` holds it (expired or not). True when the unit is
        now free of `controller`; False when another controller holds the lease."""
        st = self._state
        if st is None:
            return True
        if st.controller != controller:
            return False
        self._state = None
        self._expiry_reported = False
        return True

    def check_expiry(self) -> Optional[LeaseState]:
        """The expired lease, once, the first time it is seen expired (for the log)."""
        st = self._state
        if st is None or self._expiry_reported or self.clock() < st.expires_at:
            return None
        self._expiry_reported = True
        return st
