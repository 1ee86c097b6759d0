"""Faults: each has inject() and heal(); heal() is idempotent and always runs (test end,
failure, Ctrl-C, or `make heal`). Everything a fault touches is inside our own compose
project (found by its labels), so a sweep never touches anything else."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from .testbed import HOSTS, Testbed, TestbedError, log


def wait_for(cond, deadline_s: float, what: str, interval: float = 0.1):
    """Poll cond() until it returns a truthy value; raise with `what` at the deadline."""
    end = time.monotonic() + deadline_s
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > end:
            raise TestbedError(f"timed out after {deadline_s:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Fault:
    tb: Testbed
    injected_at: float | None = field(default=None, init=False)
    healed_at: float | None = field(default=None, init=False)

    name = "fault"

    def inject(self) -> float: ...
    def heal(self) -> None: ...


@dataclass
class KillProcess(Fault):
    """SIGKILL one Toolpack application on a host (pid from the host's OAM status). The
    service monitor restarts it; heal() waits for that and, if it does not happen,
    restarts the host container so the next test starts from a whole testbed."""
    host: str = ""
    app: str = ""
    pid: int | None = field(default=None, init=False)

    @property
    def name(self):
        return f"kill {self.app} on {self.host}"

    def inject(self) -> float:
        info = self.tb.oam(self.host, "/api/v1/status")["apps"][self.app]
        if info.get("state") != "running" or not info.get("pid"):
            raise TestbedError(f"{self.app} on {self.host} is not running: {info}")
        self.pid = int(info["pid"])
        self.injected_at = time.time()
        res = self.tb.container(self.host).exec_run(["kill", "-KILL", str(self.pid)])
        if res.exit_code != 0:
            raise TestbedError(f"kill {self.pid} failed: {res.output.decode(errors='replace')}")
        log(f"fault: killed {self.app} (pid {self.pid}) on {self.host}")
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


class FaultSet:
    """The faults of one test: healed in reverse order, whatever happened."""

    def __init__(self, tb: Testbed):
        self.tb = tb
        self.faults: list[Fault] = []

    def inject(self, fault: Fault) -> float:
        self.faults.append(fault)   # registered first: a half-injected fault is healed too
        return fault.inject()

    def heal(self) -> None:
        errors = []
        while self.faults:
            fault = self.faults.pop()
            try:
                fault.heal()
            except Exception as exc:   # heal the rest, then report
                errors.append(f"{fault.name}: {exc}")
        heal_all(self.tb)
        if errors:
            raise TestbedError("healing failed: " + "; ".join(errors))


def heal_all(tb: Testbed) -> None:
    """Sweep for leftovers of any fault (also of a killed run): every container of the
    project running and unpaused."""
    for c in tb.containers():
        c.reload()
        if c.status == "paused":
            log(f"sweep: unpausing {c.name}")
            c.unpause()
        elif c.status in ("exited", "created", "dead"):
            log(f"sweep: starting {c.name}")
            c.start()
