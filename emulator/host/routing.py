"""The gateway's routing decision for one call, from a loaded configuration snapshot.

Pure (no I/O), so the rules are unit-tested directly:
- account: the caller (`cli`, the From user of the INVITE) is looked up in the accounts;
  a disabled account is refused 403; an account with `max_calls` calls already in
  progress is refused 486 (Busy Here: a limit reached, told apart from the 503 the
  harness reads as "switchover in progress"). A caller with no account is not limited.
- route: the longest matching called-number prefix wins; its rows (one per destination)
  are the alternates, in priority order. No match: 404. A destination is a SIP address or
  an ISUP trunk group, which becomes the SIP address of its unit's interworking
  (ss7_config.py); a group that cannot take calls is left out, and a route left with no
  destination is refused 503 with the reason.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .ss7_config import group_destination


@dataclass
class Decision:
    ok: bool
    code: int = 0
    error: str = ""
    routes: list = field(default_factory=list)   # [{"host", "port"}] in order


class Routing:
    def __init__(self, snapshot: dict | None, services: dict | None = None):
        snapshot = snapshot or {}
        self.ss7, self.services = snapshot.get("ss7"), services or {}
        self.config = snapshot.get("config")
        self.routes = sorted(snapshot.get("routes", []),
                             key=lambda r: (-len(r["prefix"]), r["priority"], r.get("id", 0)))
        self.accounts = snapshot.get("accounts", {})

    def account_refusal(self, cli: str | None, in_use: int) -> Decision | None:
        acct = self.accounts.get(cli or "")
        if acct is None:
            return None
        if not acct["enabled"]:
            return Decision(False, 403, f"account {cli!r} is disabled")
        if in_use >= acct["max_calls"]:
            return Decision(False, 486, f"account {cli!r} at its limit of {acct['max_calls']} calls")
        return None

    def destinations(self, cld: str) -> tuple[list[dict], list[str]]:
        """The best route's SIP addresses in order, and why any of its trunk groups was
        left out."""
        matches = [r for r in self.routes if cld.startswith(r["prefix"])]
        if not matches:
            return [], []
        best = len(matches[0]["prefix"])   # sorted longest prefix first
        dests, why = [], []
        for r in matches:
            if len(r["prefix"]) != best:
                continue
            if not r.get("trunk_group"):
                dests.append({"host": r["host"], "port": r["port"]})
                continue
            dest, reason = group_destination(self.ss7, self.services, r["trunk_group"])
            if dest is None:
                why.append(reason)
            else:
                dests.append(dest)
        return dests, why

    def decide(self, cli: str | None, cld: str, in_use: int) -> Decision:
        refusal = self.account_refusal(cli, in_use)
        if refusal is not None:
            return refusal
        dests, why = self.destinations(cld)
        if not dests and why:
            return Decision(False, 503, "; ".join(why))
        if not dests:
            return Decision(False, 404, f"no route for {cld!r} in configuration {self.config!r}")
        return Decision(True, routes=dests)
