"""voip_ports_down: both VoIP ports of a unit lose their link."""
from __future__ import annotations

from dataclasses import dataclass

from ._base import CALL_MARGIN_S, SIP_START_S, UNIT_TARGET, Timers
from ._units import board_of, settle
from .bond_port_down import PortDown


@dataclass
class VoipPortsDown(PortDown):
    """vp1 and vp2 down at once (one `docker exec`): the bond is down, the board gives
    up its interfaces and the active host moves them to the spare (N+1); the calls on
    the unit are lost. heal() brings the ports up and the units back on their default
    boards."""
    port: str = "vp1+vp2"

    kind = "voip_ports_down"
    params = {"target": UNIT_TARGET}

    @classmethod
    def from_params(cls, tb, params, master, slave):
        return cls(tb, unit=board_of(tb, params["target"]), serving=params["target"])

    @classmethod
    def max_switchover_s(cls, t: Timers) -> float:
        """The board reports its bond down in the next poll reply, the host moves the
        unit at once (no dead-board wait), the spare starts the SIP stacks:
        poll + SIP start + margin = 0.1 + 2.0 + 0.6 = 2.7 s."""
        return t.poll_s + SIP_START_S + CALL_MARGIN_S

    def _resolve_port(self) -> str:
        return self.port

    def inject(self) -> float:
        self.resolved = self.port
        c = self.tb.container(self.unit)
        self._act("link down vp1 and vp2",
                  lambda: c.exec_run(["sh", "-c", "ip link set vp1 down && ip link set vp2 down"]))
        return self.injected_at

    def heal(self) -> None:
        super().heal()
        if self.settle_in_heal:
            settle(self.tb)
