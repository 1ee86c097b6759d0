"""The units as the active host sees them: a board's status, which board serves which
unit, and putting the units back on their default boards."""
from __future__ import annotations

from ..testbed import BOARDS, UNITS, Testbed, TestbedError, log
from ..util import wait_for


def unit_status(tb: Testbed, board: str, host: str | None = None) -> dict:
    """The board's last poll reply, as the active host (or `host`) holds it."""
    st = tb.oam(host or tb.master(), "/api/v1/status")
    return (st["units"].get(board) or {}).get("status") or {}


def placement(tb: Testbed) -> dict:
    """unit -> the board serving its VoIP interface, as the active host sees it."""
    return tb.oam(tb.master(), "/api/v1/status")["services"]


def board_of(tb: Testbed, unit: str) -> str:
    board = placement(tb).get(unit)
    if not board:
        raise TestbedError(f"no board serves {unit} now: {placement(tb)}")
    return board


def restore_placement(tb: Testbed) -> None:
    """Put every unit back on its default board (tests that moved one to the spare call
    this at the end, so later tests find tmedia-1 and tmedia-2 on their own boards): one
    at a time, stop the board that holds a unit whose default board is free, and the
    N+1 rule puts it back there (it prefers the default board)."""
    for _ in range(2 * len(UNITS) + 1):
        pl = placement(tb)
        if pl == {u: u for u in UNITS}:
            return
        free = [b for b in BOARDS if b not in pl.values()]
        unit = next((u for u, b in pl.items() if b != u and u in free), None)
        if unit is None:     # every default board is busy: move one unit to the free board
            unit = next(u for u, b in pl.items() if b != u)
        # stopped until the unit has moved, then started: a restart alone can bring the
        # board back before the host declares it dead, and the unit stays where it is
        log(f"restoring: {unit} is on {pl[unit]}; stopping {pl[unit]} until it moves")
        board = tb.container(pl[unit])
        board.stop(timeout=5)
        try:
            wait_for(lambda: placement(tb).get(unit) not in (None, pl[unit]), 30, f"{unit} to move")
        finally:
            board.start()
        tb.wait_healthy(60, quiet=True)
    raise TestbedError(f"could not restore the placement of the units: {placement(tb)}")


def settle(tb: Testbed) -> None:
    """After a unit-level fault that may have moved a unit: the testbed healthy, then
    every unit on its default board."""
    tb.wait_healthy(90, quiet=True)
    restore_placement(tb)


def bring_ports_up(container) -> None:
    container.reload()
    if container.status == "running":
        container.exec_run(["sh", "-c", "for p in vp1 vp2; do ip link set $p up 2>/dev/null; done; true"])


def wait_running(tb: Testbed, board: str, deadline_s: float = 30) -> None:
    """A rebooting board (exit 75, Docker's on-failure restart) running again; started
    by hand if Docker did not."""
    c = tb.container(board)

    def running():
        c.reload()
        return c.status == "running"
    try:   # the reboot restarts the container: wait for it rather than race it
        wait_for(running, deadline_s, f"{board} running again")
    except TestbedError:
        c.start()
