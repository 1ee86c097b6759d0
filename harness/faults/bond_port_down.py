"""bond_port_down: the active port of a unit's bond loses its link."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..testbed import TestbedError
from ._base import CALL_MARGIN_S, UNIT_TARGET, Fault, Param, Timers
from ._units import board_of, bring_ports_up, unit_status


@dataclass
class PortDown(Fault):
    """A VoIP port's link goes down (`ip link set vpN down` on the board: both ends lose
    carrier). `unit` is the board (container); port "active": the port the bond uses at
    injection time. The bond fails over to the other port; calls are kept."""
    unit: str = ""
    port: str = "active"
    serving: str | None = None       # from the matrix: the unit the board serves
    resolved: str | None = field(default=None, init=False)

    kind = "bond_port_down"
    params = {"target": UNIT_TARGET, "port": Param(str, choices=("active", "vp1", "vp2"), default="active")}
    unit_level = True

    @property
    def name(self):
        return f"link down {self.unit} {self.resolved or self.port}" + (
            f" (serving {self.serving})" if self.serving else "")

    @property
    def target(self):
        return self.unit

    @classmethod
    def from_params(cls, tb, params, master, slave):
        return cls(tb, unit=board_of(tb, params["target"]), port=params["port"], serving=params["target"])

    @classmethod
    def max_switchover_s(cls, t: Timers) -> float:
        """No host switchover, nothing moves (a 10 ms carrier poll and the failover):
        the next new call is answered, margin = 0.6 s."""
        return CALL_MARGIN_S

    def _resolve_port(self) -> str:
        port = self.port
        if port == "active":
            port = (unit_status(self.tb, self.unit).get("bond") or {}).get("active_port")
            if port not in ("vp1", "vp2"):
                raise TestbedError(f"{self.unit} has no active VoIP port")
        return port

    def inject(self) -> float:
        self.resolved = self._resolve_port()
        c = self.tb.container(self.unit)
        self._act(f"link down {self.resolved}", lambda: c.exec_run(["ip", "link", "set", self.resolved, "down"]))
        return self.injected_at

    def heal(self) -> None:
        bring_ports_up(self.tb.container(self.unit))
        self.healed_at = time.time()

    @classmethod
    def sweep(cls, tb) -> None:
        """No VoIP port of a board left down."""
        for c in tb.containers():
            if c.labels.get("com.docker.compose.service", "").startswith("tmedia"):
                bring_ports_up(c)
