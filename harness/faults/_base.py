"""The fault registry's base: a fault kind is one subclass of Fault with a `kind` (the
matrix's `fault.kind`) and its parameter schema, found by that name in REGISTRY. Every
fault acts through Fault._act, which stamps the fault time just before the action and
checks its exit status."""
from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any, Callable, ClassVar

import docker

from ..testbed import UNITS, Testbed, TestbedError, log

REGISTRY: dict[str, type["Fault"]] = {}


class FaultSpecError(ValueError):
    """A fault specification that does not fit its kind's schema; `field` names the key."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class Param:
    """One parameter of a kind: its type (str, bool, int or list of str), the allowed
    values (of each item for a list), whether it is required, its default, and for a
    list the allowed number of items."""
    type: type
    choices: tuple | None = None
    required: bool = False
    default: Any = None
    items: tuple[int, int] | None = None

    def check(self, name: str, value) -> Any:
        where = f"fault.{name}"
        # bool is an int in Python: a `true` where a number is expected is still an error
        if self.type is list:
            if not isinstance(value, list):
                raise FaultSpecError(where, f"must be a list, not {type(value).__name__} {value!r}")
            if self.items and not self.items[0] <= len(value) <= self.items[1]:
                lo, hi = self.items
                raise FaultSpecError(where, f"must have {lo if lo == hi else f'{lo} to {hi}'} "
                                            f"item(s), not {len(value)}")
            for v in value:
                if not isinstance(v, str):
                    raise FaultSpecError(where, f"items must be strings, not {v!r}")
                if self.choices is not None and v not in self.choices:
                    raise FaultSpecError(where, f"unknown value {v!r} (known: {', '.join(self.choices)})")
            return list(value)
        if not isinstance(value, self.type) or (self.type is not bool and isinstance(value, bool)):
            raise FaultSpecError(where, f"must be {self.type.__name__}, not {type(value).__name__} {value!r}")
        if self.choices is not None and value not in self.choices:
            raise FaultSpecError(where, f"must be one of {', '.join(map(str, self.choices))}, not {value!r}")
        return value


HOST_TARGET = Param(str, choices=("master", "slave"), required=True)
UNIT_TARGET = Param(str, choices=UNITS, required=True)   # a unit (its VoIP interfaces)


@dataclass(frozen=True)
class Timers:
    """The HA timers (README "HA timers"), in seconds; from_env reads the same variables
    as the testbed's containers, so a bound follows the timers the testbed runs with."""
    hb_s: float = 0.05
    peer_timeout_s: float = 0.4
    poll_s: float = 0.1
    lease_s: float = 1.0
    deadlock_s: float = 0.5
    unit_dead_s: float = 2.0
    watchdog_s: float = 5.0
    fence_s: float = 1.5

    ENV: ClassVar[dict[str, str]] = {
        "hb_s": "TB_HB_INTERVAL_MS", "peer_timeout_s": "TB_PEER_TIMEOUT_MS",
        "poll_s": "TB_POLL_INTERVAL_MS", "lease_s": "TB_LEASE_MS", "deadlock_s": "TB_DEADLOCK_MS",
        "unit_dead_s": "TB_UNIT_DEAD_MS", "watchdog_s": "TMEDIA_WATCHDOG_MS",
        "fence_s": "TMEDIA_FENCE_MS"}

    @classmethod
    def from_env(cls, env) -> "Timers":
        return cls(**{f.name: float(env[cls.ENV[f.name]]) / 1000 for f in fields(cls)
                      if env.get(cls.ENV[f.name])})


# The first new call after the takeover: the next INVITE (every 40 ms at 25 calls/s a
# unit; 0.2 s with the light load), its route request and answer, the 20 ms tick of
# sys_manager, scheduling on 2 busy cores.
CALL_MARGIN_S = 0.6
# A board given a unit starts the unit's SIP stacks before they answer (measured ~1.3 s
# idle, up to 2 s at the production load while the failed board reboots beside it).
SIP_START_S = 2.0


@dataclass
class Fault:
    """A fault: inject() returns the fault time; heal() is idempotent and always runs
    (test end, failure, Ctrl-C); the classmethod sweep() removes what a killed run of
    this kind may have left (`make heal`)."""
    tb: Testbed
    injected_at: float | None = field(default=None, init=False)
    healed_at: float | None = field(default=None, init=False)
    # a unit-level heal may also put the units back on their default boards (a harness
    # chore, no system behaviour: it reboots boards). Off by default: the matrix runner
    # settles after the calls through the heal are judged, tests/integration/test_units.py
    # restores the placement once at the end of its module
    settle_in_heal: bool = field(default=False, init=False)

    kind: ClassVar[str | None] = None          # set by each registered kind
    params: ClassVar[dict[str, Param]] = {}
    unit_level: ClassVar[bool] = False         # the target is a unit, not master/slave
    sweep_order: ClassVar[int] = 50            # containers first, host services last

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if "kind" in cls.__dict__ and cls.kind:
            if cls.kind in REGISTRY:
                raise TypeError(f"fault kind {cls.kind!r} registered twice "
                                f"({REGISTRY[cls.kind].__name__}, {cls.__name__})")
            REGISTRY[cls.kind] = cls

    @property
    def name(self) -> str:
        return self.kind or type(self).__name__

    @property
    def target(self) -> str:
        """The node (container) the fault hits."""
        raise NotImplementedError

    # ---- the registry's side: from matrix parameters to a fault -----------------------
    @classmethod
    def check(cls, params: dict) -> None:
        """Rules across parameters (each one is checked against its Param already)."""

    @classmethod
    def prepare(cls, tb: Testbed, params: dict, master: str, slave: str) -> None:
        """Bring the testbed to where the fault means what the matrix says (before the
        load starts: it may take a while). Most kinds need nothing."""

    @classmethod
    def from_params(cls, tb: Testbed, params: dict, master: str, slave: str) -> "Fault":
        raise NotImplementedError

    @classmethod
    def max_switchover_s(cls, t: Timers) -> float:
        """Upper bound of fault -> first new call answered (by the new active gateway
        after a switchover). Default, a host lost: the peer takes the units' leases once
        they expire (the peer lost after peer_timeout, within that), at its next poll:
        max(peer_timeout, lease) + poll + margin = 1.0 + 0.1 + 0.6 = 1.7 s."""
        return max(t.peer_timeout_s, t.lease_s) + t.poll_s + CALL_MARGIN_S

    @classmethod
    def sweep(cls, tb: Testbed) -> None:
        """Remove leftovers of a killed run of this kind (idempotent)."""

    # ---- acting -----------------------------------------------------------------------
    def inject(self) -> float:
        raise NotImplementedError

    def heal(self) -> None:
        raise NotImplementedError

    def _act(self, what: str, fn: Callable[[], Any]) -> Any:
        """Do the fault's action: the fault time is stamped immediately before it (the
        fault begins when the action does); a `docker exec` result with a non-zero exit
        status, or a Docker API error, raises TestbedError with its output. Faults whose
        node reports when it acted (the host's ctl reply) refine injected_at afterwards."""
        self.injected_at = time.time()
        try:
            res = fn()
        except docker.errors.APIError as exc:
            raise TestbedError(f"{what} on {self.target} failed: {exc}") from exc
        code = getattr(res, "exit_code", None)
        if code not in (None, 0):
            out = res.output.decode(errors="replace") if isinstance(res.output, bytes) else res.output
            raise TestbedError(f"{what} on {self.target} failed (exit {code}): {out}")
        log(f"fault: {self.name}")
        return res


@dataclass
class HostFault(Fault):
    """A fault on a node named by `host`; from the matrix, the master or the slave."""
    host: str = ""

    params = {"target": HOST_TARGET}

    @property
    def target(self) -> str:
        return self.host

    @classmethod
    def from_params(cls, tb: Testbed, params: dict, master: str, slave: str) -> "Fault":
        return cls(tb, host=host_of(params["target"], master, slave))


def unit_moved_s(t: Timers) -> float:
    """A unit served again by another board (or its own, rebooted): moved at a poll
    after the dead-board time, then the SIP stacks start:
    unit_dead + poll + SIP start + margin = 2.0 + 0.1 + 2.0 + 0.6 = 4.7 s."""
    return t.unit_dead_s + t.poll_s + SIP_START_S + CALL_MARGIN_S


def fault_class(kind: str) -> type[Fault]:
    """The registered class of a kind (KeyError names the known kinds)."""
    try:
        return REGISTRY[kind]
    except KeyError:
        raise KeyError(f"unknown fault kind {kind!r} (known: {', '.join(sorted(REGISTRY))})") from None


def validate(spec) -> tuple[type[Fault], dict]:
    """A matrix `fault:` mapping against its kind's schema: (class, parameters with the
    defaults filled in). Unknown keys, missing or mistyped values raise FaultSpecError."""
    if not isinstance(spec, dict):
        raise FaultSpecError("fault", f"must be a mapping, not {type(spec).__name__}")
    kind = spec.get("kind")
    if not isinstance(kind, str) or kind not in REGISTRY:
        raise FaultSpecError("fault.kind", f"must be one of {', '.join(sorted(REGISTRY))}, not {kind!r}")
    cls = REGISTRY[kind]
    unknown = [k for k in spec if k != "kind" and k not in cls.params]
    if unknown:
        raise FaultSpecError(f"fault.{unknown[0]}", f"unknown key for kind {kind} "
                                                    f"(known: {', '.join(cls.params)})")
    params = {}
    for name, p in cls.params.items():
        if name not in spec:
            if p.required:
                raise FaultSpecError(f"fault.{name}", f"required for kind {kind}")
            params[name] = p.default
            continue
        params[name] = p.check(name, spec[name])
    cls.check(params)
    return cls, params


def host_of(target: str, master: str, slave: str) -> str:
    return master if target == "master" else slave
