"""Unit N+1: which board serves which unit's VoIP interface, decided by the active host's
toolpack_sys_manager from the boards' poll replies. Pure (clock passed in), unit-tested.

The boards hold the truth (each reports the unit it serves, `serves`), so a new active
host learns the assignment from its first poll round and forgets nothing at a host
switchover. The rule:

1. A board is *up* while it answers polls (within `dead_s`) and its bond has link;
   it is *dead* when this host has polled it for `dead_s` and heard nothing for
   `dead_s`. A board neither up nor dead is *unknown* (just started polling it).
2. A unit is served by the up board that reports it. No fail-back: a unit stays on the
   board that serves it, so a failed board that returns becomes the spare.
3. A unit nobody up serves goes to its default board if that is up and free, else to
   the first up and free board (the spare) - but only once no board is unknown: the
   silent one may still be serving it. `dead_s` is longer than the boards' fence time,
   so a board cut off from both hosts has given up its address before it moves.
4. Two up boards reporting one unit (cannot happen by rule 3; a safety net): the
   default board keeps it, else the first by name; the other is told to serve nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class BoardView:
    first_poll: Optional[float] = None     # when this host started polling it
    last_reply: Optional[float] = None     # last ok reply (monotonic)
    serves: Optional[str] = None           # from that reply
    bond_up: bool = True

    def state(self, now: float, dead_s: float) -> str:
        if self.last_reply is not None and now - self.last_reply <= dead_s:
            return "up" if self.bond_up else "down"
        if self.first_poll is not None and now - self.first_poll >= dead_s:
            return "dead"
        return "unknown"


def plan(boards: dict, services: dict, defaults: dict, now: float, dead_s: float) -> list:
    """[(board, unit or None), ...]: the `assume` requests to send now.

    boards: name -> BoardView; services: unit -> address (ip/prefix);
    defaults: unit -> its default board."""
    states = {b: v.state(now, dead_s) for b, v in boards.items()}
    up = sorted(b for b, s in states.items() if s == "up")
    orders = []
    holder = {}
    for unit in services:
        claim = [b for b in up if boards[b].serves == unit]
        if not claim:
            continue
        keep = defaults.get(unit) if defaults.get(unit) in claim else claim[0]
        holder[unit] = keep
        orders += [(b, None) for b in claim if b != keep]
    if "unknown" in states.values():
        return orders
    busy = set(holder.values()) | {b for b, _ in orders}
    free = [b for b in up if boards[b].serves is None and b not in busy]
    for unit in services:
        if unit in holder or not free:
            continue
        board = defaults.get(unit) if defaults.get(unit) in free else free[0]
        free.remove(board)
        orders.append((board, unit))
    return orders
