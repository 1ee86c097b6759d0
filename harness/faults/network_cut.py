"""network_cut: disconnect the network(s) of the master or the slave (nftables)."""
from __future__ import annotations

import time
from dataclasses import dataclass

from ..testbed import NET_INDEX
from ..util import each
from ._base import HOST_TARGET, FaultSpecError, HostFault, Param, host_of

NFT_TABLE = "tbfault"


@dataclass
class NetworkCut(HostFault):
    """Disconnect the network(s) of a node: nftables drop rules inside its own network
    namespace, ahead of conntrack (priority -300), so flows already established stop
    too. `nets` None cuts every interface but loopback; else only those networks."""
    nets: tuple[str, ...] | None = None
    peers: tuple[str, ...] = ()      # instead: cut only the traffic with these addresses
    own: tuple[str, ...] = ()        # instead: cut only these addresses of the node's own
    ifaces: tuple[str, ...] = ()     # instead: cut only these interfaces (a virtual port)
    serving: str | None = None       # a unit-level kind: the unit the board serves

    kind = "network_cut"
    # nets absent: every interface; peer: only the traffic with the other host
    params = {"target": HOST_TARGET, "nets": Param(list, choices=tuple(NET_INDEX), items=(1, len(NET_INDEX))),
              "peer": Param(bool, default=False)}

    @property
    def name(self):
        if self.peers:
            return f"cut {self.host} from {', '.join(self.peers)}"
        if self.own:
            return f"cut {', '.join(self.own)} of {self.host}"
        if self.ifaces:
            return f"cut {', '.join(self.ifaces)} of {self.host}"
        return f"cut {'+'.join(self.nets) if self.nets else 'all networks'} of {self.host}"

    @classmethod
    def check(cls, params):
        if params.get("nets") and params.get("peer"):
            raise FaultSpecError("fault.peer", "cuts the links to the peer host: not with nets")

    @classmethod
    def from_params(cls, tb, params, master, slave):
        host = host_of(params["target"], master, slave)
        other = slave if host == master else master
        peers = tuple(tb.ip(other, n) for n in ("ctrl-a", "ctrl-b")) if params["peer"] else ()
        return cls(tb, host=host, nets=tuple(params["nets"]) if params["nets"] else None, peers=peers)

    # max_switchover_s: the default (the cut host's leases lapse, the peer takes them)

    def _ruleset(self, keep: tuple[str, int] | None = None) -> str:
        """`keep` (address, port): the harness's own SSH session with the node, which the
        cut leaves alone (a real machine's management path) so that it can be healed."""
        if self.peers:
            ips = ", ".join(self.peers)
            match_in, match_out = f"ip saddr {{ {ips} }}", f"ip daddr {{ {ips} }}"
        elif self.own:
            ips = ", ".join(self.own)
            match_in, match_out = f"ip daddr {{ {ips} }}", f"ip saddr {{ {ips} }}"
        elif self.ifaces:
            names = ", ".join(f'"{i}"' for i in self.ifaces)
            match_in, match_out = f"iifname {{ {names} }}", f"oifname {{ {names} }}"
        elif self.nets is None:
            match_in, match_out = 'iifname != "lo"', 'oifname != "lo"'
        else:
            subnets = ", ".join(f"{self.tb.env['TB_NET']}.{NET_INDEX[n]}.0/24" for n in self.nets)
            match_in, match_out = f"ip saddr {{ {subnets} }}", f"ip daddr {{ {subnets} }}"
        keep_in = keep_out = ""
        if keep:
            keep_in = f"ip saddr {keep[0]} tcp dport {keep[1]} accept; "
            keep_out = f"ip daddr {keep[0]} tcp sport {keep[1]} accept; "
        rules = (f"table inet {NFT_TABLE} {{\n"
                 f"  chain in {{ type filter hook input priority -300; {keep_in}{match_in} drop; }}\n"
                 f"  chain out {{ type filter hook output priority -300; {keep_out}{match_out} drop; }}\n"
                 f"}}\n")
        if self.ifaces:
            # what no inet hook sees: frames of packet sockets (the voice paths' ARP
            # probes and their replies) pass the device's netdev hooks only
            chains = "".join(
                f"  chain {d}_{hook} {{ type filter hook {hook} device \"{d}\" priority -300; policy drop; }}\n"
                for d in self.ifaces for hook in ("ingress", "egress"))
            rules += f"table netdev {NFT_TABLE} {{\n{chains}}}\n"
        return rules

    def inject(self) -> float:
        c = self.tb.container(self.host)
        rules = self._ruleset(c.management() if hasattr(c, "management") else None)
        self._act("nft", lambda: c.exec_run(["sh", "-c", f"printf '%s' '{rules}' | nft -f -"]))
        return self.injected_at

    def heal(self) -> None:
        remove_cuts(self.tb.container(self.host))
        self.healed_at = time.time()

    @classmethod
    def sweep(cls, tb) -> None:
        """No cut left in any container of the project."""
        each(tb.containers(), remove_cuts)


def remove_cuts(container) -> None:
    container.reload()
    if container.status == "running":
        # one exec for both families; an absent table: nft says so, nothing changes
        container.exec_run(["sh", "-c", f"nft delete table inet {NFT_TABLE}; "
                                        f"nft delete table netdev {NFT_TABLE}; true"])
