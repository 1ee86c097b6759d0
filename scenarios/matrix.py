"""Loads and validates scenarios/matrix.yaml; a malformed file is a clear error naming the
entry and the field, never a half-run matrix."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

MATRIX = Path(__file__).with_name("matrix.yaml")
FAULT_KINDS = {"kill_process": {"target", "app"}, "deadlock": {"target", "app"},
               "host_power_off": {"target"}, "host_shutdown": {"target"},
               "network_cut": {"target"}, "service_quit": {"target"},
               "mysql_shutdown": {"target"}, "mysql_kill": {"target"}}
TARGETS = {"master", "slave"}
APPS = {"tboamapp", "toolpack_sys_manager", "toolpack_engine", "gateway"}


class MatrixError(ValueError):
    pass


@dataclass(frozen=True)
class Load:
    rate: float
    hold_s: float
    warmup_established: int
    after_s: float


@dataclass(frozen=True)
class Operation:
    id: str
    seed: str
    fault: dict
    switchover: bool
    transient: str
    load: Load
    max_switchover_s: float


def _load(d: dict, where: str) -> Load:
    try:
        load = Load(float(d["rate"]), float(d["hold_s"]), int(d["warmup_established"]),
                    float(d["after_s"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise MatrixError(f"{where}: load needs numeric rate, hold_s, warmup_established, "
                          f"after_s ({exc!r})") from None
    if load.rate <= 0 or load.hold_s <= 0:
        raise MatrixError(f"{where}: load rate and hold_s must be positive")
    return load


def parse(text: str, source: str = "matrix.yaml") -> list[Operation]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MatrixError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("operations"), list):
        raise MatrixError(f"{source}: expected a mapping with an 'operations' list")
    defaults = doc.get("defaults") or {}
    ops, seen = [], set()
    for i, entry in enumerate(doc["operations"]):
        where = f"{source}: operation #{i + 1}"
        if not isinstance(entry, dict):
            raise MatrixError(f"{where}: expected a mapping")
        missing = {"id", "seed", "fault", "switchover", "transient"} - entry.keys()
        if missing:
            raise MatrixError(f"{where}: missing {sorted(missing)}")
        where = f"{source}: operation {entry['id']!r}"
        if entry["id"] in seen:
            raise MatrixError(f"{where}: duplicate id")
        seen.add(entry["id"])
        fault = entry["fault"]
        if not isinstance(fault, dict) or fault.get("kind") not in FAULT_KINDS:
            raise MatrixError(f"{where}: fault.kind must be one of {sorted(FAULT_KINDS)}")
        absent = FAULT_KINDS[fault["kind"]] - fault.keys()
        if absent:
            raise MatrixError(f"{where}: fault needs {sorted(absent)}")
        if fault.get("target") not in TARGETS:
            raise MatrixError(f"{where}: fault.target must be master or slave")
        if "app" in FAULT_KINDS[fault["kind"]] and fault["app"] not in APPS:
            raise MatrixError(f"{where}: fault.app must be one of {sorted(APPS)}")
        if entry["transient"] not in ("accept", "drop"):
            raise MatrixError(f"{where}: transient must be 'accept' or 'drop'")
        if not isinstance(entry["switchover"], bool):
            raise MatrixError(f"{where}: switchover must be true or false")
        load = _load({**(defaults.get("load") or {}), **(entry.get("load") or {})}, where)
        ops.append(Operation(entry["id"], str(entry["seed"]), dict(fault), entry["switchover"],
                             entry["transient"], load,
                             float(entry.get("max_switchover_s", defaults.get("max_switchover_s", 5)))))
    return ops


def load(path: Path = MATRIX) -> list[Operation]:
    return parse(path.read_text(), path.name)
