"""One verdict per operation, composed from sub-checks before anything is written.

The rules (after Jepsen's `checker/compose`):

1. A sub-check judges one aspect of an operation (calls, roles, switchover, post-checks,
   media, logs) and says `ok`, `failed`, `unknown` (the history cannot decide: e.g. no
   call to judge, a view that could not be read) or `n/a` (the check does not apply to
   this operation, e.g. Run / Don't Run on a slave that is down). Each says why.
2. The operation's verdict is `failed` if any sub-check failed; else `unknown` if any is
   unknown; else `ok`. `n/a` never makes an operation fail, and never makes it ok on its
   own: a verdict of only `n/a` sub-checks is `unknown`.
3. An operation that raised before its sub-checks ran is `error` (with the exception),
   and one that never ran is `not run`. Neither is ever counted as ok.
4. The verdict is written once (result.json), and the report and pytest read that file:
   they can never disagree.
"""
from __future__ import annotations

from dataclasses import dataclass, field

OK, FAILED, UNKNOWN, NA = "ok", "failed", "unknown", "n/a"
STATUSES = (OK, FAILED, UNKNOWN, NA)
ERROR, NOT_RUN = "error", "not run"          # operation-level only (rule 3)


@dataclass(frozen=True)
class SubCheck:
    name: str            # calls, roles, switchover, post-checks, media, logs, ...
    status: str          # one of STATUSES
    detail: str = ""
    data: dict = field(default_factory=dict)   # numbers for the report (counts, times)

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"sub-check {self.name}: status {self.status!r} not in {STATUSES}")

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "detail": self.detail,
                "data": self.data}

    @classmethod
    def from_dict(cls, d: dict) -> "SubCheck":
        return cls(d["name"], d["status"], d.get("detail", ""), d.get("data") or {})


def ok(name: str, detail: str = "", **data) -> SubCheck:
    return SubCheck(name, OK, detail, data)


def failed(name: str, detail: str, **data) -> SubCheck:
    return SubCheck(name, FAILED, detail, data)


def unknown(name: str, detail: str, **data) -> SubCheck:
    return SubCheck(name, UNKNOWN, detail, data)


def na(name: str, detail: str, **data) -> SubCheck:
    return SubCheck(name, NA, detail, data)


def compose(checks: list[SubCheck]) -> str:
    """The operation's status from its sub-checks (rule 2)."""
    statuses = {c.status for c in checks}
    if FAILED in statuses:
        return FAILED
    if UNKNOWN in statuses or not (statuses - {NA}):
        return UNKNOWN
    return OK


@dataclass
class OperationVerdict:
    operation: str
    checks: list[SubCheck] = field(default_factory=list)
    error: str | None = None     # rule 3: the operation raised before it could be judged

    @property
    def status(self) -> str:
        return ERROR if self.error is not None else compose(self.checks)

    @property
    def ok(self) -> bool:
        return self.status == OK

    def add(self, check: SubCheck) -> SubCheck:
        self.checks.append(check)
        return check

    def summary(self) -> str:
        head = f"{self.operation}: {self.status.upper()}"
        lines = [head] + ([f"  error: {self.error}"] if self.error else [])
        lines += [f"  {c.status:7} {c.name}: {c.detail}" for c in self.checks]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"operation": self.operation, "status": self.status, "error": self.error,
                "checks": [c.to_dict() for c in self.checks]}

    @classmethod
    def from_dict(cls, d: dict) -> "OperationVerdict":
        return cls(d["operation"], [SubCheck.from_dict(c) for c in d.get("checks", [])],
                   d.get("error"))
