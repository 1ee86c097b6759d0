"""unit_power_off: a unit's board loses power."""
from __future__ import annotations

from dataclasses import dataclass

from ._base import UNIT_TARGET, Timers, unit_moved_s
from ._units import board_of, settle
from .host_power_off import HostPowerOff


@dataclass
class UnitPowerOff(HostPowerOff):
    """SIGKILL the container of the board serving the unit: silent for the dead-board
    time, the active host moves the unit to the spare (N+1); its calls are lost. heal()
    starts the board (it returns as the spare), then puts the units back on their
    default boards."""
    serving: str | None = None

    kind = "unit_power_off"
    params = {"target": UNIT_TARGET}
    unit_level = True

    @property
    def name(self):
        return f"power off {self.host}" + (f" (serving {self.serving})" if self.serving else "")

    @classmethod
    def from_params(cls, tb, params, master, slave):
        return cls(tb, host=board_of(tb, params["target"]), serving=params["target"])

    @classmethod
    def max_switchover_s(cls, t: Timers) -> float:
        """The silent board's unit is moved after the dead-board time: unit_moved_s,
        unit_dead + poll + SIP start + margin = 4.7 s."""
        return unit_moved_s(t)

    def heal(self) -> None:
        super().heal()
        if self.settle_in_heal:
            settle(self.tb)
