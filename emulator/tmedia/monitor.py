"""On-board monitoring and the hardware-style watchdog of a unit, as pure rules with an
injected clock (unit-tested without sleeps); board.py acts on their verdicts by
rebooting the unit (the board exits, Docker's restart policy starts the container anew).

- `Watchdog`: armed by the first accepted poll, kicked by every one after. It expires
  when no host has polled for `timeout` seconds (both control networks cut, both hosts
  down). Its timeout must be longer than the controller lease: a host switchover leaves
  a gap of about one lease between the old controller's last poll and the new one's
  first, and that must never trip it.
- `AppWatch`: the SIP application process must send its first heartbeat within
  `startup` seconds, and its reactor must have run within the last `deadlock` seconds
  (each heartbeat says how long ago it last ran: a SIGSTOPped process goes silent, a
  stuck reactor's age grows, a busy one's stays small); a process that exits is a crash.
"""
from __future__ import annotations

import time
from typing import Callable, Optional


class Watchdog:
    def __init__(self, timeout: float, clock: Callable[[], float] = time.monotonic):
        self.timeout, self.clock = timeout, clock
        self.last_kick: Optional[float] = None     # None: not armed yet

    def kick(self) -> None:
        self.last_kick = self.clock()

    def since_kick(self) -> Optional[float]:
        """Seconds since the last poll; None before the first."""
        return None if self.last_kick is None else self.clock() - self.last_kick

    def expired(self) -> bool:
        since = self.since_kick()
        return since is not None and since > self.timeout

    def status(self) -> dict:
        since = self.since_kick()
        return {"timeout_s": self.timeout, "armed": since is not None,
                "since_last_poll_s": None if since is None else round(since, 3)}


class AppWatch:
    def __init__(self, deadlock: float, startup: float, clock: Callable[[], float] = time.monotonic):
        self.deadlock, self.startup, self.clock = deadlock, startup, clock
        self.started_at: Optional[float] = None
        self.last_hb: Optional[float] = None       # when its reactor last ran
        self.last_reply: Optional[float] = None    # when its last heartbeat came

    def started(self) -> None:
        self.started_at, self.last_hb, self.last_reply = self.clock(), None, None

    def stopped(self) -> None:
        self.started_at = self.last_hb = self.last_reply = None

    def heartbeat(self, reactor_age: float = 0.0) -> None:
        """A heartbeat came; `reactor_age`: how long ago the application's reactor last
        ran, as it reports (its heartbeat is answered off the reactor)."""
        self.last_reply = self.clock()
        self.last_hb = self.last_reply - max(0.0, reactor_age)

    def verdict(self, exit_code: Optional[int]) -> Optional[str]:
        """None while the application is fine (or not running), else why to reboot."""
        if self.started_at is None:
            return None
        if exit_code is not None:
            return f"SIP application crashed (exit status {exit_code})"
        now = self.clock()
        if self.last_hb is None:
            if now - self.started_at > self.startup:
                return f"SIP application did not start within {self.startup:g} s"
            return None
        if now - self.last_reply > self.deadlock:
            return f"SIP application deadlocked (no heartbeat for {now - self.last_reply:.2f} s)"
        if now - self.last_hb > self.deadlock:
            return f"SIP application deadlocked (its reactor has not run for {now - self.last_hb:.2f} s)"
        return None
