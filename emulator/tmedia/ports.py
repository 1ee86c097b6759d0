"""The unit's VoIP ports: two ports bonded active-backup under one MAC, built from tc.

Our kernels have no bonding driver (nor 802.1Q, netem or dummy interfaces), so the bond is made of
what every kernel has:

    bond0 <-veth-> bond0p   bond0 carries the unit's addresses and MAC
    bond0p ingress  --mirred egress redirect-->  active port  (what the unit sends)
    active port ingress --mirred egress redirect--> bond0p    (what the unit receives)

Both ports carry bond0's MAC and have ARP off and no address, so the inactive port is
silent and what arrives on it dies in its own stack (our kernels have no tc drop
action). Failover moves both redirects to the other port and sends a gratuitous ARP
for every address, so the switches learn the MAC on the new port. The ports are
Docker interfaces on the networks `voip-p1` and `voip-p2`, found by the addresses
Docker gave them and renamed vp1/vp2 (Compose attaches networks in no fixed order).

`BondLogic` is the decision (which port, when), pure and unit-tested; `Bond` applies it
with `ip` and `tc`. Link state is read from /sys/class/net/<port>/carrier.
"""
from __future__ import annotations

import hashlib
import socket
import struct
import subprocess
from dataclasses import dataclass, field
from typing import Callable, Optional

BOND, PEER = "bond0", "bond0p"
PORTS = ("vp1", "vp2")


@dataclass
class BondLogic:
    """Active-backup selection: keep the active port while its link is up (no
    fail-back: every move costs an interruption); else take the other one if up."""
    ports: tuple = PORTS
    active: Optional[str] = None
    failovers: int = 0
    link: dict = field(default_factory=dict)     # port -> bool

    def update(self, link: dict) -> Optional[str]:
        """New link states; returns the port to switch to, or None for no change.
        The bond is down (active None) when no port has link."""
        self.link = dict(link)
        if self.active is not None and self.link.get(self.active):
            return None
        up = [p for p in self.ports if self.link.get(p)]
        new = up[0] if up else None
        if new == self.active:
            return None
        if self.active is not None and new is not None:
            self.failovers += 1
        self.active = new
        return new or "down"

    @property
    def up(self) -> bool:
        return self.active is not None

    def status(self) -> dict:
        return {"up": self.up, "active_port": self.active, "failovers": self.failovers,
                "ports": {p: ("up" if self.link.get(p) else "down") for p in self.ports}}


def unit_mac(name: str) -> str:
    """A stable locally administered MAC for a unit's bond (02:... from its name)."""
    h = hashlib.sha256(name.encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in h[:5])


def garp_frame(mac: str, ip: str) -> bytes:
    """A gratuitous ARP request (sender = target = ip), padded to the Ethernet minimum."""
    m = bytes.fromhex(mac.replace(":", ""))
    a = socket.inet_aton(ip)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + m + a + b"\0" * 6 + a
    return (b"\xff" * 6 + m + b"\x08\x06" + arp).ljust(60, b"\0")


def run(*args: str, stdin: str | None = None) -> str:
    """Run a command; raise RuntimeError with its stderr when it fails."""
    p = subprocess.run(args, capture_output=True, text=True, input=stdin)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {p.stderr.strip() or p.returncode}")
    return p.stdout


def iface_with_address(ip: str) -> str:
    for line in run("ip", "-o", "-4", "addr", "show").splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[3].split("/")[0] == ip:
            return parts[1]
    raise RuntimeError(f"no interface has address {ip}")


def carrier(port: str) -> bool:
    try:
        with open(f"/sys/class/net/{port}/carrier") as f:
            return f.read().strip() == "1"
    except OSError:          # EINVAL while the interface is administratively down
        return False


class Bond:
    def __init__(self, mac: str, log: Callable[[str], None] = print,
                 link_fn: Callable[[str], bool] = carrier):
        self.mac, self.log, self.link_fn = mac, log, link_fn
        self.logic = BondLogic()
        self.addresses: list[str] = []           # "ip/prefix" on bond0

    def build(self, port_ips: tuple) -> None:
        """Rename the Docker interfaces holding port_ips to vp1/vp2 and build the bond
        (after a container restart everything is built anew: nothing is left over)."""
        for port, ip in zip(PORTS, port_ips):
            dev = iface_with_address(ip)
            run("ip", "link", "set", dev, "down")
            if dev != port:
                run("ip", "link", "set", dev, "name", port)
            run("ip", "addr", "flush", "dev", port)
            run("ip", "link", "set", port, "address", self.mac, "arp", "off")
        run("ip", "link", "add", BOND, "type", "veth", "peer", "name", PEER)
        run("ip", "link", "set", BOND, "address", self.mac)
        for dev in (BOND, PEER) + PORTS:
            run("ip", "link", "set", dev, "up")
        for dev in (PEER,) + PORTS:
            run("tc", "qdisc", "add", "dev", dev, "ingress")
        self.check()

    @staticmethod
    def redirects(active: str) -> list[str]:
        """The tc commands that point the bond at `active` ("down": at no port): every
        redirect removed, then both ways between bond0p and the port. One `tc -batch`
        runs them: five tc processes started one after another took tens of ms on a busy
        machine, every one of them a gap in the media."""
        cmds = [f"filter del dev {dev} parent ffff:" for dev in (PEER,) + PORTS]
        if active != "down":
            cmds += [f"filter add dev {dev} parent ffff: protocol all u32 match u32 0 0 "
                     f"action mirred egress redirect dev {to}"
                     for dev, to in ((PEER, active), (active, PEER))]
        return cmds

    def check(self) -> Optional[str]:
        """Read the links and fail over when the active one is down. Returns the new
        active port, "down" when no port has link, or None for no change."""
        old = self.logic.active
        change = self.logic.update({p: self.link_fn(p) for p in PORTS})
        if change is None:
            return None
        run("tc", "-batch", "-", stdin="".join(c + "\n" for c in self.redirects(change)))
        if change != "down":
            self.announce()
        self.log(f"bond: {old or 'no port'} -> {change} (links {self.logic.status()['ports']}, "
                 f"failovers {self.logic.failovers})")
        return change

    def announce(self) -> None:
        """Gratuitous ARP for every address, so switches and peers learn the new port."""
        if not self.logic.up:
            return
        try:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            s.bind((BOND, 0))
            try:
                for a in self.addresses:
                    s.send(garp_frame(self.mac, a.split("/")[0]))
            finally:
                s.close()
        except OSError as exc:
            self.log(f"bond: gratuitous ARP failed: {exc}")

    def set_addresses(self, addresses: list) -> None:
        """Carry exactly `addresses` ("ip/prefix") on the bond, announcing new ones."""
        for a in self.addresses:
            if a not in addresses:
                run("ip", "addr", "del", a, "dev", BOND)
        added = [a for a in addresses if a not in self.addresses]
        for a in added:
            run("ip", "addr", "add", a, "dev", BOND)
        self.addresses = list(addresses)
        if added:
            self.announce()

    def status(self) -> dict:
        return dict(self.logic.status(), addresses=list(self.addresses), mac=self.mac)


def peer_on(vport_address: str, peer: str) -> str:
    """A peer's address on a virtual port's segment: the testbed gives every host the
    same last octet on each VLAN subnet (/24) as on the VoIP network."""
    return vport_address.split("/")[0].rsplit(".", 1)[0] + "." + peer.rsplit(".", 1)[1]


class VirtualPorts:
    """Virtual ports (the seed's VLANs) on the bond: one VXLAN interface per VLAN id
    (VNI = VLAN id, `vx<id>`), with its own MAC and address, on a segment of its own.
    Our kernels have no 802.1Q; VXLAN isolates as truly (a frame of one VNI never
    reaches another) and runs over the bond, so a port failover or a move to the spare
    carries the virtual ports along. The underlay source is the served unit's address
    on the bond; frames go to every peer in `peers` (head-end replication: static
    all-zero FDB entries), and the peers learn where to answer from what they receive.

    Source routing pins each port's traffic to its segment: what leaves from a virtual
    port's address reaches the peers (their VoIP addresses) through their address on
    that segment (peer_on), so a media relay bound to it is a voice path of its own."""

    def __init__(self, peers: tuple, log: Callable[[str], None] = print):
        self.peers, self.log = tuple(peers), log
        self.current: list = []          # [(vlan id, "ip/prefix"), ...]

    def set(self, vlans: list, local_ip: Optional[str]) -> None:
        vlans = [(int(v), a) for v, a in vlans] if local_ip else []
        if vlans == self.current:
            return
        for vid, address in self.current:
            run("ip", "rule", "del", "from", address.split("/")[0], "lookup", str(vid))
            run("ip", "link", "del", f"vx{vid}")     # its routes go with it
        for vid, address in vlans:
            dev = f"vx{vid}"
            run("ip", "link", "add", dev, "type", "vxlan", "id", str(vid), "local", local_ip,
                "dev", BOND, "dstport", "4789")
            for peer in self.peers:
                run("bridge", "fdb", "append", "00:00:00:00:00:00", "dev", dev, "dst", peer)
            run("ip", "addr", "add", address, "dev", dev)
            run("ip", "link", "set", dev, "up")
            for peer in self.peers:
                run("ip", "route", "add", peer, "via", peer_on(address, peer), "dev", dev, "table", str(vid))
            run("ip", "rule", "add", "from", address.split("/")[0], "lookup", str(vid))
        self.current = vlans
        self.announce()

    def announce(self) -> None:
        for vid, address in self.current:
            dev = f"vx{vid}"
            try:
                with open(f"/sys/class/net/{dev}/address") as f:
                    mac = f.read().strip()
                s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
                try:
                    s.bind((dev, 0))
                    s.send(garp_frame(mac, address.split("/")[0]))
                finally:
                    s.close()
            except OSError as exc:
                self.log(f"vport {dev}: gratuitous ARP failed: {exc}")

    def status(self) -> list:
        out = []
        for vid, a in self.current:
            try:
                with open(f"/sys/class/net/vx{vid}/address") as f:
                    mac = f.read().strip()
            except OSError:
                mac = None
            out.append({"vlan": vid, "interface": f"vx{vid}", "address": a, "mac": mac})
        return out
