"""Gratuitous ARP on a unit's VoIP port, captured inside the unit (tcpdump on the port).

A bond failover must announce every address of the bond on the new port: a Linux bridge
forgets the old port when its carrier drops and the unit's own outgoing traffic teaches
it again, but a switch that does not flush would keep sending to the dead port. So the
proof is the announcement itself on the wire of the new port, not calls that happen to
work on this bridge."""
from __future__ import annotations

import io

from .util import wait_for
from .testbed import Testbed, TestbedError


class GarpCapture:
    """ARP frames on `port` of `unit` while the block runs."""

    def __init__(self, tb: Testbed, unit: str, port: str, name: str = "garp"):
        self.tb, self.unit, self.port = tb, unit, port
        self.file = f"/tmp/tb-{name}-{port}.pcap"

    def _exec(self, cmd, **kw):
        return self.tb.container(self.unit).exec_run(cmd, **kw)

    def __enter__(self):
        self._exec(["rm", "-f", self.file])
        self._exec(["tcpdump", "-U", "-n", "-i", self.port, "-w", self.file, "arp"], detach=True)
        # tcpdump writes the 24-byte file header once it listens
        wait_for(lambda: self._exec(["sh", "-c", f"[ $(stat -c %s {self.file} 2>/dev/null || echo 0) -ge 24 ]"])
                 .exit_code == 0, 10, f"tcpdump on {self.unit} {self.port}")
        return self

    def __exit__(self, *exc):
        self._exec(["pkill", "-INT", "-f", f"tcpdump.*{self.file}"])
        wait_for(lambda: self._exec(["pgrep", "-f", f"tcpdump.*{self.file}"]).exit_code != 0, 5,
                 f"tcpdump on {self.unit} to exit")

    def announced(self) -> dict[str, str]:
        """Gratuitous ARP seen: announced IP -> sender MAC."""
        from scapy.layers.l2 import ARP
        from scapy.utils import rdpcap
        res = self._exec(["cat", self.file])
        if res.exit_code != 0:
            raise TestbedError(f"no capture on {self.unit}: {res.output[:200]!r}")
        out = {}
        for pkt in rdpcap(io.BytesIO(res.output)):
            if ARP in pkt and pkt[ARP].psrc == pkt[ARP].pdst:
                out[pkt[ARP].psrc] = pkt[ARP].hwsrc
        return out


def missing_announcements(announced: dict[str, str], addresses: list[str], mac: str) -> list[str]:
    """The bond's addresses ("ip/prefix") with no gratuitous ARP from the bond's MAC."""
    return [a for a in addresses
            if announced.get(a.split("/")[0], "").lower() != mac.lower()]
