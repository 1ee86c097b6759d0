"""One timestamped event log per scenario, as JSON lines.

Each line is one event: {"t": <time.time()>, "kind": <kind>, ...fields}.
Kinds: call (a CallRecord's fields), fault (inject/heal), role (master/slave
seen), restart (an application or unit restarted), note (free text).
Every event is flushed at once, so a killed run still leaves its history.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.sipp import CallRecord

KINDS = ("call", "fault", "role", "restart", "note")


@dataclass(frozen=True)
class Event:
    t: float
    kind: str
    fields: dict = field(default_factory=dict)

    def __getitem__(self, key):
        return self.fields[key]

    def get(self, key, default=None):
        return self.fields.get(key, default)


class History:
    """Append-only event log; safe to share between threads (load, faults, roles)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def event(self, kind: str, **fields) -> Event:
        if kind not in KINDS:
            raise ValueError(f"event kind {kind!r} not in {KINDS}")
        if "t" in fields or "kind" in fields:
            raise ValueError("'t' and 'kind' are reserved event fields")
        return self.write(Event(time.time(), kind, fields))

    def write(self, ev: Event) -> Event:
        """Append an event as it is (its own time): `event` for new ones, and for copying
        a recorded history (the test fixtures are made so)."""
        if ev.kind not in KINDS:
            raise ValueError(f"event kind {ev.kind!r} not in {KINDS}")
        # Serialise before taking the lock: a bad field raises without a torn line.
        line = json.dumps({"t": ev.t, "kind": ev.kind, **ev.fields}, allow_nan=False)
        with self._lock:
            self._f.write(line + "\n")
            self._f.flush()
        return ev

    def call(self, record: CallRecord) -> Event:
        return self.event("call", **record.to_dict())

    def close(self) -> None:
        with self._lock:
            self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def load(path: Path | str) -> list[Event]:
    """Read a history back; a bad line raises ValueError naming file and line."""
    events = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                if not isinstance(d, dict):
                    raise ValueError("not a JSON object")
                t, kind = d.pop("t"), d.pop("kind")
                if kind not in KINDS:
                    raise ValueError(f"unknown kind {kind!r}")
                if not isinstance(t, (int, float)):
                    raise ValueError(f"bad time {t!r}")
            except (ValueError, KeyError) as e:
                raise ValueError(f"{path}:{n}: bad history event ({e!r}): {line.strip()!r}") from None
            events.append(Event(float(t), kind, d))
    return events


def calls(events: list[Event]) -> list[CallRecord]:
    """The CallRecords of the call events."""
    return [CallRecord.from_dict(e.fields) for e in events if e.kind == "call"]


def of_kind(events: list[Event], kind: str, **match) -> list[Event]:
    """Events of `kind` whose fields equal every `match` item, e.g. of_kind(ev, "fault", action="inject")."""
    return [e for e in events if e.kind == kind
            and all(e.fields.get(k) == v for k, v in match.items())]
