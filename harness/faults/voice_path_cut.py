"""voice_path_cut: one of a unit's two voice paths (VLAN 101 or 102) is lost."""
from __future__ import annotations

from dataclasses import dataclass

from ._base import CALL_MARGIN_S, UNIT_TARGET, Param, Timers
from ._units import board_of
from .network_cut import NetworkCut


@dataclass
class VoicePathCut(NetworkCut):
    """The path is lost at the unit: whatever crosses its virtual port vx<path> is
    dropped, both ways. New calls take the other path once the probes see it down;
    calls on the lost path are not moved (their media stop, their signalling on the
    bond goes on to the BYE)."""
    kind = "voice_path_cut"
    params = {"target": UNIT_TARGET, "path": Param(int, choices=(101, 102), default=101)}
    unit_level = True

    @property
    def name(self):
        return f"voice path {self.ifaces[0][2:]} of {self.serving} lost ({self.ifaces[0]} cut on {self.host})"

    @classmethod
    def from_params(cls, tb, params, master, slave):
        return cls(tb, host=board_of(tb, params["target"]), ifaces=(f"vx{params['path']}",),
                   serving=params["target"])

    @classmethod
    def max_switchover_s(cls, t: Timers) -> float:
        """No host switchover; new calls keep their signalling on the bond: the next new
        call is answered, margin = 0.6 s."""
        return CALL_MARGIN_S
