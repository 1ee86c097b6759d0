"""ss7_crash: the SS7 process of a unit crashes (the ss7 variant)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..testbed import TestbedError
from ..util import wait_for
from ._base import Timers
from ._ss7 import Ss7UnitFault
from ._units import unit_status


@dataclass
class Ss7Crash(Ss7UnitFault):
    """SIGKILL the SS7 node (`python -m emulator.ss7.spread`) of the board serving the
    unit. Its link and mate connection close at once: the other unit's node takes over
    if this one was active (or changes this unit's link's traffic over if it was the
    standby), and this unit's trunk group goes down with the calls on it (their SIP side
    was in the process). The unit's SIP calls do not notice. The board starts the node
    again (its on-board monitor, after 1 s): it comes back standby and its group up.
    heal() waits for that."""
    pid: int | None = field(default=None, init=False)

    kind = "ss7_crash"

    @property
    def name(self):
        return f"crash the SS7 process on {self.unit}" + (f" (serving {self.serving})" if self.serving else "")

    @classmethod
    def max_switchover_s(cls, t: Timers) -> float:
        """The other unit's node sees the mate connection close at once (DEAD_S, 0.5 s,
        when no FIN comes), takes over and answers the next IAM: 1 s with margin."""
        return 1.0 + 2.0

    def inject(self) -> float:
        ss7 = unit_status(self.tb, self.unit).get("ss7") or {}
        if not ss7.get("pid") or not ss7.get("running"):
            raise TestbedError(f"{self.unit} runs no SS7 node")
        self.pid = int(ss7["pid"])
        c = self.tb.container(self.unit)
        self._act(f"kill -KILL {self.pid} (SS7 node)", lambda: c.exec_run(["kill", "-KILL", str(self.pid)]))
        return self.injected_at

    def heal(self) -> None:
        def back():
            st = unit_status(self.tb, self.unit).get("ss7") or {}
            return st.get("running") and st.get("pid") != self.pid and st.get("mate_connected") \
                and st.get("role") in ("active", "standby")
        wait_for(back, 30, f"{self.unit}'s SS7 node started again and joined its mate")
        self.healed_at = time.time()
