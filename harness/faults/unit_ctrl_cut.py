"""unit_ctrl_cut: one control network of a unit is lost."""
from __future__ import annotations

from dataclasses import dataclass

from ._base import CALL_MARGIN_S, UNIT_TARGET, Param, Timers
from ._units import board_of
from .network_cut import NetworkCut


@dataclass
class UnitCtrlCut(NetworkCut):
    """nftables cut of one control network on the board serving the unit: polls, route
    requests and call events go over the other one; nothing changes."""
    kind = "unit_ctrl_cut"
    params = {"target": UNIT_TARGET,
              "nets": Param(list, choices=("ctrl-a", "ctrl-b"), required=True, items=(1, 1))}
    unit_level = True

    @property
    def name(self):
        return f"cut {self.nets[0]} of {self.host} (serving {self.serving})"

    @classmethod
    def from_params(cls, tb, params, master, slave):
        return cls(tb, host=board_of(tb, params["target"]), nets=tuple(params["nets"]),
                   serving=params["target"])

    @classmethod
    def max_switchover_s(cls, t: Timers) -> float:
        """No host switchover, nothing moves: the next new call is answered, margin = 0.6 s."""
        return CALL_MARGIN_S
