"""The controller lease a unit grants to one host's sys_manager (ARCHITECTURE.md, unit control).

Pure logic with an injectable clock, so the rules that make two active hosts impossible
are unit-tested without sockets or sleeps:

- a poll is accepted when the unit has no controller, when it comes from the current
  controller, or when the current lease has expired (no accepted poll for `lease_ms`);
- an accepted poll sets controller, epoch, gateways and the lease;
- `release` from the current controller clears the lease at once (graceful handover).

Not thread-safe: the control agent serialises access. `LeaseLog` writes the changes
down for the harness.
"""
from __future__ import annotations

import json
import os
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


class LeaseLog:
    """The unit's lease changes as JSON lines in the container's own file system, for the
    harness to read with `docker exec` (a network cut does not hide them):
    `{"t", "unit", "event": "granted"|"expired"|"released"|"lost", "holder", "epoch", ...}`
    with time.time() stamps, flushed at once. Renewals are not logged (5 a second).

    The lease lives in the board's memory, so a board that dies (reboot, power-off) ends
    it without a line: while a lease is held the control agent touches a liveness stamp
    (`<path>.alive`), and the next boot writes `lost` at that stamp."""

    def __init__(self, path: str, unit: str, clock: Callable[[], float] = time.time):
        self.path, self.unit, self.clock = path, unit, clock
        self.stamp_path = path + ".alive"
        self.held: Optional[str] = None     # the holder of the last line written

    def _write(self, rec: dict) -> dict:
        rec = {"t": self.clock(), "unit": self.unit, **rec}
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")
            f.flush()
        return rec

    def boot(self) -> Optional[dict]:
        """At board start: close a lease the previous run left held. Returns that line."""
        last = None
        try:
            with open(self.path) as f:
                for raw in f:
                    try:
                        last = json.loads(raw)
                    except ValueError:
                        pass     # a line torn by the death
        except FileNotFoundError:
            return None
        if not isinstance(last, dict) or last.get("event") != "granted":
            return None
        try:
            stamp = os.stat(self.stamp_path).st_mtime
        except FileNotFoundError:
            stamp = 0.0
        return self._write({"t": max(stamp, float(last.get("t", 0.0))), "event": "lost",
                            "holder": last.get("holder"), "epoch": last.get("epoch"),
                            "why": "board restarted while leased"})

    def granted(self, holder: str, epoch, lease_ms: int, change: str,
                previous_ended_at: Optional[float] = None) -> dict:
        if self.held is not None and self.held != holder:
            # the previous lease expired just before this poll, unseen by the expiry check
            self.ended("expired", self.held, None, previous_ended_at)
        self.held = holder
        return self._write({"event": "granted", "holder": holder, "epoch": epoch,
                            "lease_ms": lease_ms, "change": change})

    def ended(self, event: str, holder: str, epoch, at: Optional[float] = None) -> dict:
        """`expired` (at: when it ran out, wall clock) or `released`."""
        self.held = None
        rec = {"event": event, "holder": holder, "epoch": epoch}
        if at is not None:
            rec["t"] = at
        return self._write(rec)

    def alive(self) -> None:
        if self.held is None:
            return
        t = self.clock()
        try:
            os.utime(self.stamp_path, (t, t))
        except FileNotFoundError:
            open(self.stamp_path, "a").close()
            os.utime(self.stamp_path, (t, t))
