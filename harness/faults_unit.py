"""Faults on the TMedia units: a VoIP port's link down, the SIP application crashed or
deadlocked (the on-board monitor reboots the unit). A unit powered off is
faults.HostPowerOff on the unit's container; its control networks cut, faults.NetworkCut.
heal() is idempotent, and faults.heal_all brings every port up again."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from .faults import Fault, exec_checked, wait_for
from .testbed import BOARDS, UNITS, TestbedError, log


def unit_status(tb, board: str, host: str | None = None) -> dict:
    """The board's last poll reply, as the active host (or `host`) holds it."""
    st = tb.oam(host or tb.master(), "/api/v1/status")
    return (st["units"].get(board) or {}).get("status") or {}


def placement(tb) -> dict:
    """unit -> the board serving its VoIP interface, as the active host sees it."""
    return tb.oam(tb.master(), "/api/v1/status")["services"]


def restore_placement(tb) -> None:
    """Put every unit back on its default board (tests that moved one to the spare call
    this at the end, so later tests find tmedia-1 and tmedia-2 on their own boards): one
    at a time, reboot the board that holds a unit whose default board is free, and the
    N+1 rule puts it back there (it prefers the default board)."""
    for _ in range(2 * len(UNITS) + 1):
        pl = placement(tb)
        if pl == {u: u for u in UNITS}:
            return
        free = [b for b in BOARDS if b not in pl.values()]
        unit = next((u for u, b in pl.items() if b != u and u in free), None)
        if unit is None:     # every default board is busy: move one unit to the free board
            unit = next(u for u, b in pl.items() if b != u)
        log(f"restoring: {unit} is on {pl[unit]}; rebooting {pl[unit]}")
        tb.container(pl[unit]).restart(timeout=5)
        wait_for(lambda: placement(tb).get(unit) not in (None, pl[unit]), 30, f"{unit} to move")
        tb.wait_healthy(60, quiet=True)
    raise TestbedError(f"could not restore the placement of the units: {placement(tb)}")


def bring_ports_up(container) -> None:
    container.reload()
    if container.status == "running":
        container.exec_run(["sh", "-c", "for p in vp1 vp2; do ip link set $p up 2>/dev/null; done; true"])


@dataclass
class PortDown(Fault):
    """A VoIP port's link goes down (`ip link set vpN down` on the unit: both ends lose
    carrier). port "active": the port the bond uses at injection time."""
    unit: str = ""
    port: str = "active"
    resolved: str | None = field(default=None, init=False)

    @property
    def name(self):
        return f"link down {self.unit} {self.resolved or self.port}"

    def inject(self) -> float:
        port = self.port
        if port == "active":
            port = (unit_status(self.tb, self.unit).get("bond") or {}).get("active_port")
            if port not in ("vp1", "vp2"):
                raise TestbedError(f"{self.unit} has no active VoIP port")
        self.resolved = port
        self.injected_at = time.time()
        exec_checked(self.tb, self.unit, ["ip", "link", "set", port, "down"], f"link down {port}")
        log(f"fault: {self.name}")
        return self.injected_at

    def heal(self) -> None:
        bring_ports_up(self.tb.container(self.unit))
        self.healed_at = time.time()


@dataclass
class UnitAppFault(Fault):
    """SIGKILL (crash) or SIGSTOP (deadlock) the unit's SIP application process."""
    unit: str = ""
    sig: str = "KILL"
    pid: int | None = field(default=None, init=False)

    @property
    def name(self):
        return f"{'crash' if self.sig == 'KILL' else 'deadlock'} SIP application on {self.unit}"

    def inject(self) -> float:
        app = unit_status(self.tb, self.unit).get("app") or {}
        if not app.get("pid"):
            raise TestbedError(f"{self.unit} runs no SIP application")
        self.pid = int(app["pid"])
        self.injected_at = time.time()
        exec_checked(self.tb, self.unit, ["kill", f"-{self.sig}", str(self.pid)],
                     f"kill -{self.sig} {self.pid}")
        log(f"fault: {self.name} (pid {self.pid})")
        return self.injected_at

    def heal(self) -> None:
        c = self.tb.container(self.unit)

        def running():
            c.reload()
            return c.status == "running"
        try:   # the reboot restarts the container: wait for it rather than race it
            wait_for(running, 30, f"{self.unit} running again")
        except TestbedError:
            c.start()
        self.healed_at = time.time()
