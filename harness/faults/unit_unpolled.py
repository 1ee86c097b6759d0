"""unit_unpolled: no host polls a unit (both its control networks cut): the watchdog."""
from __future__ import annotations

import time
from dataclasses import dataclass

from ._base import UNIT_TARGET, Timers, unit_moved_s
from ._units import board_of, settle, wait_running
from .network_cut import NetworkCut, remove_cuts


@dataclass
class UnitUnpolled(NetworkCut):
    """Both control networks cut on the board serving the unit: its lease lapses, it
    gives up its interfaces (fence), the active host moves the unit to the spare
    (dead-board time), and the watchdog reboots the board (which clears the cut); the
    unit's calls are lost. heal() removes the cut if it is still there, waits for the
    board to run, then for the units back on their default boards."""
    kind = "unit_unpolled"
    params = {"target": UNIT_TARGET}
    unit_level = True

    @property
    def name(self):
        return f"no host polls {self.host} (serving {self.serving}): ctrl-a and ctrl-b cut"

    @classmethod
    def from_params(cls, tb, params, master, slave):
        return cls(tb, host=board_of(tb, params["target"]), nets=("ctrl-a", "ctrl-b"),
                   serving=params["target"])

    @classmethod
    def max_switchover_s(cls, t: Timers) -> float:
        """Unpolled from the fault: the board fences itself (1.5 s), the host moves the
        unit after the dead-board time (the watchdog, 5 s, reboots the board later):
        unit_moved_s, unit_dead + poll + SIP start + margin = 4.7 s."""
        return unit_moved_s(t)

    def heal(self) -> None:
        remove_cuts(self.tb.container(self.host))
        wait_running(self.tb, self.host)
        if self.settle_in_heal:
            settle(self.tb)
        self.healed_at = time.time()
