"""Loads and validates scenarios/matrix.yaml; a malformed file is a clear error naming the
entry and the field, never a half-run matrix. What a fault entry may say comes from the
fault registry (harness.faults): its kinds, their parameters and their switchover bounds."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness.faults import REGISTRY, FaultSpecError, Timers, validate
from harness.testbed import UNITS

MATRIX = Path(__file__).with_name("matrix.yaml")
FAULT_KINDS = {kind: set(cls.params) for kind, cls in REGISTRY.items()}
OP_KEYS = {"id", "seed", "fault", "switchover", "transient", "load", "max_switchover_s", "unit",
           "expect", "ss7"}
REQUIRED = ("id", "seed", "fault", "switchover", "transient")
LOAD_KEYS = ("rate", "hold_s", "warmup_established", "after_s")
# media_rate: calls/s of `rate` that carry RTP (default: all); isup_rate: on the ss7
# variant, ISUP calls/s each way besides `rate` (the far end's calls to SIP, and SIP calls
# to the units' trunk groups), split over tmedia-1 and tmedia-2
LOAD_OPTIONAL = ("media_rate", "isup_rate")
SS7_KEYS = {"isup_active"}
# lost: the failed unit's calls may be lost; kept: none may; isup-lost: only its ISUP calls
# (those on its trunk group, both ways) may, its SIP calls are kept (its SS7 process failed)
CALLS = ("lost", "kept", "isup-lost")


class MatrixError(ValueError):
    pass


@dataclass(frozen=True)
class Load:
    rate: float
    hold_s: float
    warmup_established: int
    after_s: float
    media_rate: float | None = None     # None: every call carries RTP
    isup_rate: float = 0.0

    @property
    def media(self) -> float:
        return self.rate if self.media_rate is None else self.media_rate


@dataclass(frozen=True)
class UnitOutcome:
    """A unit-level operation: which unit fails and what happens to its established
    calls (lost, as on the real system, when the unit fails; kept otherwise). Calls on
    the other unit are always kept."""
    target: str
    calls: str


@dataclass(frozen=True)
class Operation:
    id: str
    seed: str
    fault: dict
    switchover: bool
    transient: str
    load: Load
    max_switchover_s: float
    unit: UnitOutcome | None = None
    expect: str | None = None
    # an SS7 operation (the ss7 variant's, under the mixed load): the unit whose node must
    # hold the active ISUP when the fault hits, {"isup_active": "tmedia-1"}
    ss7: dict | None = None


def _number(d: dict, key: str, where: str, cast):
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (cast is int and not isinstance(v, int)):
        raise MatrixError(f"{where}: load.{key} must be {'an integer' if cast is int else 'a number'}, "
                          f"not {v!r}")
    return cast(v)


def _load(d, where: str) -> Load:
    if not isinstance(d, dict):
        raise MatrixError(f"{where}: load must be a mapping")
    unknown = sorted(set(d) - set(LOAD_KEYS) - set(LOAD_OPTIONAL))
    if unknown:
        raise MatrixError(f"{where}: load.{unknown[0]}: unknown key (known: "
                          f"{', '.join(LOAD_KEYS + LOAD_OPTIONAL)})")
    missing = [k for k in LOAD_KEYS if k not in d]
    if missing:
        raise MatrixError(f"{where}: load needs numeric {', '.join(LOAD_KEYS)} (missing {missing})")
    load = Load(*(_number(d, k, where, int if k == "warmup_established" else float) for k in LOAD_KEYS),
                media_rate=_number(d, "media_rate", where, float) if "media_rate" in d else None,
                isup_rate=_number(d, "isup_rate", where, float) if "isup_rate" in d else 0.0)
    if load.isup_rate < 0:
        raise MatrixError(f"{where}: load.isup_rate must not be negative")
    if load.rate <= 0 or load.hold_s <= 0:
        raise MatrixError(f"{where}: load rate and hold_s must be positive")
    if load.media_rate is not None and not 0 < load.media_rate <= load.rate:
        raise MatrixError(f"{where}: load.media_rate must be > 0 and at most rate ({load.rate:g})")
    return load


def _profile(value, profiles: dict, where: str) -> dict:
    """A load given by a profile's name (`loads:`), or a mapping of its own."""
    if isinstance(value, str):
        if value not in profiles:
            raise MatrixError(f"{where}: load profile {value!r} is not defined (loads: "
                              f"{', '.join(sorted(profiles)) or 'none'})")
        return dict(profiles[value])
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MatrixError(f"{where}: load must be a profile name or a mapping")
    return dict(value)


def _unit(entry: dict, cls, where: str) -> UnitOutcome | None:
    if not cls.unit_level:
        if "unit" in entry:
            raise MatrixError(f"{where}: unit: only for a unit-level fault kind, not {cls.kind}")
        return None
    u = entry.get("unit")
    if not isinstance(u, dict):
        raise MatrixError(f"{where}: unit: required for kind {cls.kind}, a mapping "
                          f"{{target: <unit>, calls: lost|kept}}")
    unknown = sorted(set(u) - {"target", "calls"})
    if unknown:
        raise MatrixError(f"{where}: unit.{unknown[0]}: unknown key (known: target, calls)")
    if u.get("target") not in UNITS:
        raise MatrixError(f"{where}: unit.target must be one of {', '.join(UNITS)}, not {u.get('target')!r}")
    if u["target"] != entry["fault"]["target"]:
        raise MatrixError(f"{where}: unit.target {u['target']!r} is not fault.target "
                          f"{entry['fault']['target']!r}")
    if u.get("calls") not in CALLS:
        raise MatrixError(f"{where}: unit.calls must be one of {', '.join(CALLS)}, not {u.get('calls')!r}")
    return UnitOutcome(u["target"], u["calls"])


def _operation(entry, i: int, source: str, defaults: dict, timers: Timers, seen: set) -> Operation:
    where = f"{source}: operation #{i + 1}"
    if not isinstance(entry, dict):
        raise MatrixError(f"{where}: expected a mapping")
    missing = [k for k in REQUIRED if k not in entry]
    if missing:
        raise MatrixError(f"{where}: missing {missing}")
    if not isinstance(entry["id"], str):
        raise MatrixError(f"{where}: id must be a string, not {entry['id']!r}")
    where = f"{source}: operation {entry['id']!r}"
    unknown = sorted(set(entry) - OP_KEYS)
    if unknown:
        raise MatrixError(f"{where}: {unknown[0]}: unknown key (known: {', '.join(sorted(OP_KEYS))})")
    if entry["id"] in seen:
        raise MatrixError(f"{where}: duplicate id")
    seen.add(entry["id"])
    for key in ("seed", "expect"):
        if key in entry and not isinstance(entry[key], str):
            raise MatrixError(f"{where}: {key} must be a string, not {entry[key]!r}")
    try:
        cls, _ = validate(entry["fault"])
    except FaultSpecError as exc:
        raise MatrixError(f"{where}: {exc}") from None
    if entry["transient"] not in ("accept", "drop"):
        raise MatrixError(f"{where}: transient must be 'accept' or 'drop', not {entry['transient']!r}")
    if not isinstance(entry["switchover"], bool):
        raise MatrixError(f"{where}: switchover must be true or false, not {entry['switchover']!r}")
    unit = _unit(entry, cls, where)
    # a profile's name replaces the default load; a mapping overrides some of its keys
    own = entry.get("load")
    base = {} if isinstance(own, str) else defaults["load"]
    load = _load({**base, **_profile(own, defaults["loads"], where)}, where)
    # the bound follows from the kind and the HA timers; an operation may override it
    bound = entry.get("max_switchover_s", cls.max_switchover_s(timers))
    if isinstance(bound, bool) or not isinstance(bound, (int, float)) or bound <= 0:
        raise MatrixError(f"{where}: max_switchover_s must be a positive number, not {bound!r}")
    ss7 = entry.get("ss7")
    if ss7 is not None:
        if not isinstance(ss7, dict) or set(ss7) != SS7_KEYS or ss7["isup_active"] not in UNITS:
            raise MatrixError(f"{where}: ss7 must be {{isup_active: <unit>}} (one of "
                              f"{', '.join(UNITS)}), not {ss7!r}")
        if not load.isup_rate:
            raise MatrixError(f"{where}: an ss7 operation needs a load with isup_rate")
    return Operation(entry["id"], entry["seed"], dict(entry["fault"]), entry["switchover"],
                     entry["transient"], load, float(bound), unit, entry.get("expect"),
                     dict(ss7) if ss7 else None)


def parse(text: str, source: str = "matrix.yaml", timers: Timers | None = None,
          profile: str | None = None) -> list[Operation]:
    """`timers`: the HA timers the bounds derive from (default: the environment's, as
    `make testbed-up` passes them to the containers). `profile`: a load profile of the
    file's `loads:` in place of the default load (default: $TB_LOAD, as
    `make acceptance LOAD=light` sets it)."""
    timers = timers or Timers.from_env(os.environ)
    profile = profile if profile is not None else (os.environ.get("TB_LOAD") or None)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MatrixError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("operations"), list):
        raise MatrixError(f"{source}: expected a mapping with an 'operations' list")
    unknown = sorted(set(doc) - {"defaults", "operations", "loads"})
    if unknown:
        raise MatrixError(f"{source}: {unknown[0]}: unknown key (known: defaults, loads, operations)")
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict) or set(defaults) - {"load"}:
        raise MatrixError(f"{source}: defaults: a mapping with only 'load' (the bounds come "
                          f"from each fault kind)")
    profiles = doc.get("loads") or {}
    if not isinstance(profiles, dict) or not all(isinstance(v, dict) for v in profiles.values()):
        raise MatrixError(f"{source}: loads: a mapping of profile names to loads")
    for name, prof in profiles.items():
        _load(prof, f"{source}: loads.{name}")
    default = profile if profile is not None else defaults.get("load")
    defaults = {"load": _profile(default, profiles, f"{source}: defaults" if profile is None
                                 else f"TB_LOAD={profile}"), "loads": profiles}
    seen: set = set()
    return [_operation(e, i, source, defaults, timers, seen) for i, e in enumerate(doc["operations"])]


def load(path: Path = MATRIX, timers: Timers | None = None,
         variant: str | None = None) -> list[Operation]:
    """Every operation; with `variant`, the ones that run on it: the ss7 variant's are the
    SS7 operations, every other variant's the rest."""
    ops = parse(path.read_text(), path.name, timers)
    if variant is None:
        return ops
    return [op for op in ops if (op.ss7 is not None) == (variant == "ss7")]
