"""service_quit: quit (gracefully) the Toolpack service of the master or the slave."""
from __future__ import annotations

import time
from dataclasses import dataclass

from ..testbed import TestbedError, log
from ..util import wait_for
from ._base import CALL_MARGIN_S, HostFault, Timers
from ._host_ctl import ctl, start_container, sweep_host_ctl


@dataclass
class ServiceQuit(HostFault):
    """The seed's "Quit (graceful) Toolpack service": SIGTERM to the service monitor,
    which hands the active role over and stops its applications; the tool returns when
    it has exited. heal() starts the service again and waits until its 4 applications
    run (the host rejoins as standby). The fault time is the one init reports it sent
    the signal at (stamped before the ctl call, refined from its reply)."""
    heal_deadline_s: float = 60.0

    kind = "service_quit"
    sweep_order = 90       # after the containers run again

    @property
    def name(self):
        return f"quit the Toolpack service on {self.host}"

    @classmethod
    def max_switchover_s(cls, t: Timers) -> float:
        """The quitting monitor releases the leases and sends takeover; the peer's next
        poll gets them: poll + margin = 0.1 + 0.6 = 0.7 s."""
        return t.poll_s + CALL_MARGIN_S

    def inject(self) -> float:
        reply = self._act("ctl service quit", lambda: ctl(self.tb, self.host, "service", "quit"))
        self.injected_at = (reply["data"].get("last_quit") or {}).get("signalled_at", self.injected_at)
        log(f"fault: {reply['message']} on {self.host}")
        return self.injected_at

    def _apps_running(self):
        try:
            apps = self.tb.oam(self.host, "/api/v1/status", timeout=1.5)["apps"]
        except TestbedError:
            return False
        return len(apps) >= 4 and all(a.get("state") == "running" for a in apps.values())

    def heal(self) -> None:
        if not start_container(self.tb, self.host):
            log(f"heal: {ctl(self.tb, self.host, 'service', 'start')['message']} on {self.host}")
        wait_for(self._apps_running, self.heal_deadline_s,
                 f"the Toolpack service's applications running on {self.host}", interval=0.3)
        self.healed_at = time.time()

    @classmethod
    def sweep(cls, tb) -> None:
        """The Toolpack service running on every running host (`start` of a running one
        changes nothing)."""
        sweep_host_ctl(tb, "service")

