"""The gateway's routing decision for one call, from a loaded configuration snapshot.

Pure (no I/O), so the rules are unit-tested directly:
- account: the caller (`cli`, the From user of the INVITE) is looked up in the accounts;
  a disabled account is refused 403; an account with `max_calls` calls already in
  progress is refused 486 (Busy Here: a limit reached, told apart from the 503 the
  harness reads as "switchover in progress"). A caller with no account is not limited.
- route: the longest matching called-number prefix wins; its rows (one per destination
  address) are the alternate addresses, in priority order. No match: 404.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Decision:
    ok: bool
    code: int = 0
    error: str = ""
    routes: list = field(default_factory=list)   # [{"host", "port"}] in order


class Routing:
    def __init__(self, snapshot: dict | None):
        snapshot = snapshot or {}
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

    def destinations(self, cld: str) -> list[dict]:
        matches = [r for r in self.routes if cld.startswith(r["prefix"])]
        if not matches:
            return []
        best = len(matches[0]["prefix"])   # sorted longest prefix first
        return [{"host": r["host"], "port": r["port"]} for r in matches if len(r["prefix"]) == best]

    def decide(self, cli: str | None, cld: str, in_use: int) -> Decision:
        refusal = self.account_refusal(cli, in_use)
        if refusal is not None:
            return refusal
        dests = self.destinations(cld)
        if not dests:
            return Decision(False, 404, f"no route for {cld!r} in configuration {self.config!r}")
        return Decision(True, routes=dests)
