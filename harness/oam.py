"""A small client of one host's OAM REST API (tboamapp), for checks that must see every
answer: 4xx and 5xx come back as replies, not exceptions (Testbed.oam raises on them).

Tries the host's ctrl-a address, then ctrl-b (redundant control networks); only when
neither answers at all is it an error."""
from __future__ import annotations

from dataclasses import dataclass

import httpx

from .testbed import Testbed, TestbedError


class OamError(TestbedError):
    pass


@dataclass
class Reply:
    status: int
    body: object

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def detail(self) -> str:
        if isinstance(self.body, dict) and "detail" in self.body:
            return str(self.body["detail"])
        return str(self.body)[:300]


class Oam:
    def __init__(self, tb: Testbed, host: str):
        self.tb, self.host = tb, host
        self.headers = {"Authorization": f"Bearer {tb.env['TB_OAM_TOKEN']}"}

    @classmethod
    def master(cls, tb: Testbed) -> "Oam":
        """The OAM of the host that is active now (resolved from live roles)."""
        return cls(tb, tb.master())

    def request(self, method: str, path: str, json=None, timeout: float = 20.0, **params) -> Reply:
        last = None
        for net in ("ctrl-a", "ctrl-b"):
            try:
                r = httpx.request(method, f"http://{self.tb.ip(self.host, net)}:8080/api/v1{path}",
                                  headers=self.headers, json=json, params=params or None,
                                  timeout=timeout)
            except httpx.HTTPError as exc:
                last = exc
                continue
            try:
                body = r.json()
            except ValueError:
                body = r.text
            return Reply(r.status_code, body)
        raise OamError(f"OAM of {self.host} unreachable: {last}")

    def call(self, method: str, path: str, json=None, **kw):
        """The body of a 2xx answer; anything else raises OamError with the API's reason."""
        r = self.request(method, path, json, **kw)
        if not r.ok:
            raise OamError(f"{method} {path} on {self.host}: {r.status} {r.detail()}")
        return r.body

    def get(self, path: str, **kw):
        return self.call("GET", path, **kw)

    def post(self, path: str, json=None, **kw):
        return self.call("POST", path, json, **kw)

    def put(self, path: str, json=None, **kw):
        return self.call("PUT", path, json, **kw)

    def delete(self, path: str, **kw):
        return self.call("DELETE", path, **kw)

    def reload(self) -> dict:
        return self.post("/configurations/reload")
