"""kill_process: SIGKILL one Toolpack application on the master or the slave."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..testbed import TestbedError, log
from ..util import wait_for
from ._base import CALL_MARGIN_S, HOST_TARGET, HostFault, Param, Timers, host_of

APPS = ("tboamapp", "toolpack_sys_manager", "toolpack_engine", "gateway")


@dataclass
class KillProcess(HostFault):
    """SIGKILL one Toolpack application on a host (pid from the host's OAM status). The
    service monitor restarts it; heal() waits for that and, if it does not happen,
    restarts the host container so the next test starts from a whole testbed."""
    app: str = ""
    pid: int | None = field(default=None, init=False)

    kind = "kill_process"
    params = {"target": HOST_TARGET, "app": Param(str, choices=APPS, required=True)}
    signal = "KILL"

    @property
    def name(self):
        return f"kill {self.app} on {self.host}"

    @classmethod
    def from_params(cls, tb, params, master, slave):
        return cls(tb, host=host_of(params["target"], master, slave), app=params["app"])

    @classmethod
    def max_switchover_s(cls, t: Timers) -> float:
        """The monitor restarts the app at once, sys_manager sees the new pid (20 ms
        tick), releases the leases and sends takeover; the peer's next poll gets them:
        poll + margin = 0.1 + 0.6 = 0.7 s."""
        return t.poll_s + CALL_MARGIN_S

    def inject(self) -> float:
        info = self.tb.oam(self.host, "/api/v1/status")["apps"][self.app]
        if info.get("state") != "running" or not info.get("pid"):
            raise TestbedError(f"{self.app} on {self.host} is not running: {info}")
        self.pid = int(info["pid"])
        c = self.tb.container(self.host)
        self._act(f"kill -{self.signal} {self.pid}",
                  lambda: c.exec_run(["kill", f"-{self.signal}", str(self.pid)]))
        return self.injected_at

    def _back(self):
        try:
            info = self.tb.oam(self.host, "/api/v1/status", timeout=1.5)["apps"][self.app]
        except TestbedError:
            return False
        return info.get("state") == "running" and info.get("pid") != self.pid

    def heal(self) -> None:
        try:
            wait_for(self._back, 15, f"{self.app} restarted on {self.host}")
        except TestbedError:
            log(f"heal: {self.app} did not come back on {self.host}; restarting the host")
            self.tb.container(self.host).restart(timeout=10)
        self.healed_at = time.time()
