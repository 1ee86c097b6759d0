"""The gateway's call records, kept the same on both hosts.

Every change to a record is pushed to the peer gateway (gateway.py), and either gateway
may see a unit's event first, so changes can arrive twice, late or out of order. A
record's state only moves forward (routing -> answered -> closing -> ended) and a change
never moves it back (it only fills fields still unknown), so applying the same changes in
any order, any number of times, ends in the same records. An ended record stays as a
tombstone for a while so that a late "answered" cannot bring it back.

Thread-safe: the gateway's server loop, its reconciler and its loader share one store.
"""
from __future__ import annotations

import bisect
import threading
import time

STATES = ("routing", "answered", "closing", "ended")
RANK = {s: i for i, s in enumerate(STATES)}
LIVE = ("routing", "answered", "closing")
FIELDS = ("call_id", "unit", "cli", "cld", "gateway", "state", "routed_at", "answered_at",
          "ended_at", "reason")
TOMBSTONE_S = 120.0     # an ended record is kept this long against late changes
ROUTING_TTL_S = 120.0   # a call still "routing" after this lost its events: dropped


def clean(rec: dict) -> dict:
    """A record as carried on the wire: known fields only, a known state."""
    out = {k: rec.get(k) for k in FIELDS}
    if out["state"] not in RANK or not isinstance(out["call_id"], str) or not out["call_id"]:
        raise ValueError(f"bad call record {rec!r}")
    return out


class CallRecords:
    def __init__(self, clock=time.time):
        self.clock = clock
        self._lock = threading.Lock()
        self._recs: dict[str, dict] = {}
        # calls in progress per caller, kept with every change: the gateway asks it for
        # every route request (an account's max_calls), a scan of every record would
        # cost O(records) per call
        self._live_by_cli: dict = {}
        # call_ids in order, all and live: a page (the peer's dump at its start, the OAM's
        # listing) is a bisect, not a sort of every record; the dump of ~13000 records
        # under the production load cost the gateway's loop 0.4 s of sorting
        self._ids: list[str] = []
        self._live_ids: list[str] = []

    def _count(self, rec: dict | None, delta: int) -> None:
        if rec is not None and rec["state"] in LIVE:
            n = self._live_by_cli.get(rec["cli"], 0) + delta
            if n:
                self._live_by_cli[rec["cli"]] = n
            else:
                del self._live_by_cli[rec["cli"]]
            _index(self._live_ids, rec["call_id"], delta)

    def merge(self, change: dict) -> dict | None:
        """Apply one change; return the record as it now is when it changed, else None.
        A change of a later state sets the state and its fields; any change fills the
        fields still unknown (a late "routing" brings the caller to an early "ended")."""
        change = clean(change)
        with self._lock:
            cur = self._recs.get(change["call_id"])
            if cur is None:
                self._recs[change["call_id"]] = dict(change, updated=self.clock())
                _index(self._ids, change["call_id"], +1)
                self._count(change, +1)
                return dict(change)
            later = RANK[change["state"]] > RANK[cur["state"]]
            merged = dict(cur)
            for k, v in change.items():
                if v is not None and (later or merged.get(k) is None):
                    merged[k] = v
            if all(merged.get(k) == cur.get(k) for k in FIELDS):
                return None
            merged["updated"] = self.clock()
            self._count(cur, -1)
            self._count(merged, +1)
            self._recs[change["call_id"]] = merged
            return {k: merged.get(k) for k in FIELDS}

    def get(self, call_id: str) -> dict | None:
        with self._lock:
            rec = self._recs.get(call_id)
            return {k: rec.get(k) for k in FIELDS} if rec and rec["state"] in LIVE else None

    def is_known(self, call_id: str) -> bool:
        """Live or recently ended (a tombstone)."""
        with self._lock:
            return call_id in self._recs

    def live(self) -> list[dict]:
        with self._lock:
            recs = [r for r in self._recs.values() if r["state"] in LIVE]
        return sorted(({k: r.get(k) for k in FIELDS} for r in recs),
                      key=lambda r: (r["routed_at"] or 0, r["call_id"]))

    def in_use(self, cli: str | None, exclude: str | None = None) -> int:
        """Calls of caller `cli` in progress (routing, answered or closing)."""
        with self._lock:
            n = self._live_by_cli.get(cli, 0)
            ex = self._recs.get(exclude) if exclude is not None else None
            return n - (1 if ex is not None and ex["cli"] == cli and ex["state"] in LIVE else 0)

    def page(self, after: str | None, limit: int, live_only: bool) -> tuple[list[dict], bool, int]:
        """Records with a call_id after `after` (call_id order), at most `limit`; whether
        more follow; how many there are. A cursor, not an offset: records that come and
        go between two pages never make a page skip one that stayed."""
        with self._lock:
            ids = self._live_ids if live_only else self._ids
            start = 0 if after is None else bisect.bisect_right(ids, after)
            page = [{k: self._recs[i].get(k) for k in FIELDS} for i in ids[start:start + limit]]
            return page, len(ids) - start > limit, len(ids)

    def stale(self, unit: str, alive: set[str], grace_s: float) -> list[dict]:
        """Changes that end the live records of `unit` the unit no longer has (its
        `ended` event was lost: sent to a dead host, or a dropped datagram). Records
        younger than grace_s are left alone: their call may be starting right now."""
        now = self.clock()
        with self._lock:
            gone = [r for r in self._recs.values()
                    if r["unit"] == unit and r["state"] in LIVE and r["call_id"] not in alive
                    and now - r["updated"] > grace_s]
        return [dict({k: r.get(k) for k in FIELDS}, state="ended", ended_at=now,
                     reason="no longer on the unit") for r in gone]

    def purge(self) -> int:
        """Forget old tombstones and calls stuck in routing; each host purges its own."""
        now = self.clock()
        with self._lock:
            old = [i for i, r in self._recs.items()
                   if (r["state"] == "ended" and now - r["updated"] > TOMBSTONE_S)
                   or (r["state"] == "routing" and now - r["updated"] > ROUTING_TTL_S)]
            for i in old:
                self._count(self._recs.pop(i), -1)
            if old:
                self._ids = [i for i in self._ids if i in self._recs]
        return len(old)

    def counts(self) -> dict:
        with self._lock:
            out = {s: 0 for s in STATES}
            for r in self._recs.values():
                out[r["state"]] += 1
        return out


def _index(ids: list[str], call_id: str, delta: int) -> None:
    """Add (+1) or remove (-1) a call_id in a sorted list."""
    i = bisect.bisect_left(ids, call_id)
    present = i < len(ids) and ids[i] == call_id
    if delta > 0 and not present:
        ids.insert(i, call_id)
    elif delta < 0 and present:
        del ids[i]
