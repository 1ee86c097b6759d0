"""host_power_off: disconnect the power of the master or the slave."""
from __future__ import annotations

import time
from dataclasses import dataclass

from ..testbed import log
from ._base import HostFault


@dataclass
class HostPowerOff(HostFault):
    """Disconnect the power: SIGKILL the node's container (no graceful anything). Any
    node: the matrix's kind is a host; unit_power_off is the unit's."""
    kind = "host_power_off"
    sweep_order = 0        # every container running before the other sweeps

    @property
    def name(self):
        return f"power off {self.host}"

    # max_switchover_s: the default (a host lost: max(peer_timeout, lease) + poll + margin)

    def inject(self) -> float:
        self._act("power off (docker kill)", self.tb.container(self.host).kill)
        return self.injected_at

    def heal(self) -> None:
        c = self.tb.container(self.host)
        c.reload()
        if c.status != "running":
            c.start()
        self.healed_at = time.time()

    @classmethod
    def sweep(cls, tb) -> None:
        """Every container of the project running and unpaused."""
        for c in tb.containers():
            c.reload()
            if c.status == "paused":
                log(f"sweep: unpausing {c.name}")
                c.unpause()
            elif c.status in ("exited", "created", "dead"):
                log(f"sweep: starting {c.name}")
                c.start()
