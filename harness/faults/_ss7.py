"""What the ss7 variant's fault kinds share: aimed at a unit, acting on the board serving it."""
from __future__ import annotations

from dataclasses import dataclass

from ._base import UNIT_TARGET, Fault
from ._units import board_of


@dataclass
class Ss7UnitFault(Fault):
    unit: str = ""                   # the board serving the unit
    serving: str | None = None       # the unit

    params = {"target": UNIT_TARGET}
    unit_level = True

    @property
    def target(self):
        return self.unit

    @classmethod
    def from_params(cls, tb, params, master, slave):
        return cls(tb, unit=board_of(tb, params["target"]), serving=params["target"])
