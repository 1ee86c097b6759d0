"""bond_port_silent: a VoIP port keeps its link but passes no frames (a hung switch port)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..testbed import TestbedError
from ._base import CALL_MARGIN_S, UNIT_TARGET, Fault, Param, Timers
from ._units import board_of, unit_status

SWITCH = "voip-sw"
TABLE = "tbfault_port"       # a bridge-family table of its own in the switch
# the network each port of every board is on (compose/testbed.yml)
PORT_NET = {"vp1": "voip-p1", "vp2": "voip-p2"}


def switch_port(tb, net: str) -> str:
    """The switch's interface on Docker network `net`, found by its MAC (its address was
    moved to the bridge at start, so the MAC is what identifies it)."""
    c = tb.container(SWITCH)
    nets = c.attrs["NetworkSettings"]["Networks"]
    mac = next(v["MacAddress"] for k, v in nets.items() if k.endswith(f"_{net}") or k == net)
    res = c.exec_run(["ip", "-o", "link"])
    for line in res.output.decode().splitlines():
        if mac.lower() in line.lower():
            return line.split(":")[1].strip().split("@")[0]
    raise TestbedError(f"{SWITCH} has no interface with MAC {mac} ({net})")


@dataclass
class PortSilent(Fault):
    """The switch drops every frame from the port's MACs (the bond's and the port's own
    probe MAC) and every frame to them on that port's side, in a bridge-family nftables
    table of its own inside voip-sw: the port's carrier stays up. The unit's port monitor
    sees it by its ARP probes going unanswered (emulator/tmedia/port_probe.py) and the
    bond fails over as for a link down, 0.5 s later."""
    unit: str = ""
    port: str = "active"
    serving: str | None = None
    resolved: str | None = field(default=None, init=False)

    kind = "bond_port_silent"
    params = {"target": UNIT_TARGET, "port": Param(str, choices=("active", "vp1", "vp2"), default="active")}
    unit_level = True

    @property
    def name(self):
        return f"{self.unit} {self.resolved or self.port} silent, link up"

    @property
    def target(self):
        return SWITCH

    @classmethod
    def from_params(cls, tb, params, master, slave):
        return cls(tb, unit=board_of(tb, params["target"]), port=params["port"], serving=params["target"])

    @classmethod
    def max_switchover_s(cls, t: Timers) -> float:
        """No host switchover: the ARP monitor's window (0.5 s) and the failover, then the
        next new call: 0.5 + margin = 1.1 s."""
        return 0.5 + CALL_MARGIN_S

    def ruleset(self, dev: str, macs: list[str]) -> str:
        m = ", ".join(macs)
        return (f"table bridge {TABLE} {{\n"
                f"  chain pre {{ type filter hook prerouting priority -300; iifname \"{dev}\" ether saddr {{ {m} }} drop; }}\n"
                f"  chain post {{ type filter hook postrouting priority -300; oifname \"{dev}\" ether daddr {{ {m} }} drop; }}\n"
                f"}}\n")

    def inject(self) -> float:
        bond = unit_status(self.tb, self.unit).get("bond") or {}
        self.resolved = bond.get("active_port") if self.port == "active" else self.port
        if self.resolved not in PORT_NET:
            raise TestbedError(f"{self.unit} has no active VoIP port: {bond}")
        probe = ((bond.get("arp_monitor") or {}).get("ports") or {}).get(self.resolved) or {}
        macs = [bond["mac"]] + ([probe["mac"]] if probe.get("mac") else [])
        rules = self.ruleset(switch_port(self.tb, PORT_NET[self.resolved]), macs)
        c = self.tb.container(SWITCH)
        self._act(f"silence {self.resolved}", lambda: c.exec_run(["sh", "-c", f"printf '%s' '{rules}' | nft -f -"]))
        return self.injected_at

    def heal(self) -> None:
        self.sweep(self.tb)
        self.healed_at = time.time()

    @classmethod
    def sweep(cls, tb) -> None:
        c = tb.container(SWITCH)
        c.reload()
        if c.status == "running":
            c.exec_run(["nft", "delete", "table", "bridge", TABLE])
