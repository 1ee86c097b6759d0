"""What the harness uses the registry for: a fault from a matrix entry (from_spec), the
faults of one test healed whatever happens (FaultSet), the sweep of every kind (heal_all)."""
from __future__ import annotations

import itertools

from ..testbed import Testbed, TestbedError
from ..util import each
from ._base import REGISTRY, Fault, validate


def from_spec(tb: Testbed, spec: dict, master: str, slave: str) -> Fault:
    """The fault a matrix `fault:` mapping describes, its target resolved from the live
    roles (master, slave) and, for a unit, the board serving it now."""
    cls, params = validate(spec)
    return cls.from_params(tb, params, master, slave)


def prepare(tb: Testbed, spec: dict, master: str, slave: str) -> None:
    """What the kind needs done before the operation's load starts (e.g. the database
    main back on the master's host for a MySQL fault)."""
    cls, params = validate(spec)
    cls.prepare(tb, params, master, slave)


class FaultSet:
    """The faults of one test: healed in reverse order, whatever happened. With a
    `history` (anything with .event(kind, **fields), e.g. harness.history.History) each
    fault's window is written: `fault action=inject` when it is in, `fault action=heal`
    once its heal() returned. The fault's kind is `fault_kind` (`kind` is the event's)."""

    def __init__(self, tb: Testbed, history=None):
        self.tb = tb
        self.history = history
        self.faults: list[Fault] = []
        self.swept = False     # heal() swept, and nothing was injected since

    def inject(self, fault: Fault) -> float:
        self.swept = False
        self.faults.append(fault)   # registered first: a half-injected fault is healed too
        t_fault = fault.inject()
        if self.history is not None:
            self.history.event("fault", action="inject", name=fault.name, fault_kind=fault.kind,
                               target=fault.target, t_fault=t_fault)
        return t_fault

    def heal(self) -> None:
        errors = []
        while self.faults:
            fault = self.faults.pop()
            try:
                fault.heal()
            except Exception as exc:   # heal the rest, then report
                errors.append(f"{fault.name}: {exc}")
                continue
            if self.history is not None:
                try:
                    self.history.event("fault", action="heal", name=fault.name,
                                       t_healed=fault.healed_at)
                except ValueError as exc:   # a closed history must not stop the healing
                    errors.append(f"history of {fault.name}'s heal: {exc}")
        if not self.swept:           # a second heal with nothing injected since: no sweep
            heal_all(self.tb)
            self.swept = not errors
        if errors:
            raise TestbedError("healing failed: " + "; ".join(errors))


def sweeps() -> list[type[Fault]]:
    """One class per distinct sweep (a kind that inherits its parent's sweep adds none),
    containers first (sweep_order), then by kind."""
    seen, out = set(), []
    for cls in sorted(REGISTRY.values(), key=lambda c: (c.sweep_order, c.kind)):
        owner = next(k for k in cls.__mro__ if "sweep" in k.__dict__)
        if owner is not Fault and owner not in seen:
            seen.add(owner)
            out.append(cls)
    return out


def heal_all(tb: Testbed) -> None:
    """Sweep for leftovers of any fault (also of a killed run): every kind's sweep, e.g.
    every container of the project running and unpaused, no cut left, no VoIP port down,
    no process left stopped, MySQL and the Toolpack service running. Sweeps of one
    `sweep_order` touch different things, so they run side by side (a sweep is mostly
    waiting for `docker exec`); the orders follow one another."""
    for _, group in itertools.groupby(sweeps(), key=lambda c: c.sweep_order):
        each(list(group), lambda cls: cls.sweep(tb))
