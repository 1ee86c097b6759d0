"""ss7_link_cut: one signalling link of the linkset cut (the ss7 variant)."""
from __future__ import annotations

import time
from dataclasses import dataclass

from ._base import Timers
from ._ss7 import Ss7UnitFault
from .network_cut import NFT_TABLE, remove_cuts

LINK_PORT = 3565        # TMEDIA_SS7_PORT: the link's TCP port on the unit's address
USER_TIMEOUT_S = 3.0    # m2pa.configure_socket: a silent peer fails the link in about 3 s


@dataclass
class Ss7LinkCut(Ss7UnitFault):
    """Drop, silently, the far end's (ss7-peer's) traffic of the link that ends on the
    unit: nftables rules in ss7-peer's network namespace for the unit's address and the
    link's port, both ways. Nothing closes: each end fails the link when its TCP user
    timeout expires (about 3 s with MSUs waiting), MTP3 changes the link's traffic over
    to the other unit's link (the MSUs the far end did not acknowledge sent again there)
    and no call is lost. heal() removes the rules; the far end connects the link again,
    it aligns and MTP3 changes back."""

    kind = "ss7_link_cut"

    @property
    def name(self):
        return f"cut the SS7 link of {self.serving} (on {self.unit})"

    @classmethod
    def max_switchover_s(cls, t: Timers) -> float:
        """The link fails at its TCP user timeout; MSUs sent on it meanwhile wait until
        the changeover: a call placed right at the cut is answered after about 3 s."""
        return USER_TIMEOUT_S + 2.0

    def _ruleset(self) -> str:
        ip = self.tb.ip(self.serving, "voip")
        return (f"table inet {NFT_TABLE} {{\n"
                f"  chain in {{ type filter hook input priority -300; "
                f"ip saddr {ip} tcp sport {LINK_PORT} drop; }}\n"
                f"  chain out {{ type filter hook output priority -300; "
                f"ip daddr {ip} tcp dport {LINK_PORT} drop; }}\n}}\n")

    def inject(self) -> float:
        c = self.tb.container("ss7-peer")
        rules = self._ruleset()
        self._act("nft", lambda: c.exec_run(["sh", "-c", f"printf '%s' '{rules}' | nft -f -"]))
        return self.injected_at

    def heal(self) -> None:
        remove_cuts(self.tb.container("ss7-peer"))
        self.healed_at = time.time()
