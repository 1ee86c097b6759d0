"""unit_app_crash: a unit's SIP application crashes (the on-board monitor reboots it)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..testbed import TestbedError
from ._base import UNIT_TARGET, Fault, Timers, unit_moved_s
from ._units import board_of, settle, unit_status, wait_running


@dataclass
class UnitAppFault(Fault):
    """SIGKILL (crash) or SIGSTOP (deadlock) the SIP application process of a board
    (`unit` is the board). The on-board monitor reboots the board (exit 75, Docker's
    restart); the unit's calls are lost. heal() waits for the board to run again, then
    for the units back on their default boards."""
    unit: str = ""
    sig: str = "KILL"
    serving: str | None = None
    pid: int | None = field(default=None, init=False)

    kind = "unit_app_crash"
    params = {"target": UNIT_TARGET}
    unit_level = True

    @property
    def name(self):
        return f"{'crash' if self.sig == 'KILL' else 'deadlock'} SIP application on {self.unit}"

    @property
    def target(self):
        return self.unit

    @classmethod
    def from_params(cls, tb, params, master, slave):
        return cls(tb, unit=board_of(tb, params["target"]), sig="KILL", serving=params["target"])

    @classmethod
    def max_switchover_s(cls, t: Timers) -> float:
        """The board reboots at once; back before the dead-board time or not, the unit
        is served again within it: unit_moved_s, unit_dead + poll + SIP start + margin = 4.7 s."""
        return unit_moved_s(t)

    def inject(self) -> float:
        app = unit_status(self.tb, self.unit).get("app") or {}
        if not app.get("pid"):
            raise TestbedError(f"{self.unit} runs no SIP application")
        self.pid = int(app["pid"])
        c = self.tb.container(self.unit)
        self._act(f"kill -{self.sig} {self.pid}", lambda: c.exec_run(["kill", f"-{self.sig}", str(self.pid)]))
        return self.injected_at

    def heal(self) -> None:
        wait_running(self.tb, self.unit)
        if self.settle_in_heal:
            settle(self.tb)
        self.healed_at = time.time()
