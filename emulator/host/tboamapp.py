"""tboamapp: the OAM REST API of a host (FastAPI, OpenAPI schema at /openapi.json).

Every route but /healthz needs `Authorization: Bearer <token>`; the token is generated at
bring-up (TB_OAM_TOKEN), there is no default. Errors: 401 no/wrong token, 422 a request
that does not validate, 404 an unknown name or id, 409 a conflict (duplicate, standby
host), 502/504 a unit or gateway that failed or did not answer, 503 database or engine
unavailable. Configuration changes (routes, accounts, trunks, stacks, the SS7 linkset,
links and ISUP trunk groups, the active configuration) take effect on `POST /api/v1/configurations/reload`, as the seed says.
The API table is in ARCHITECTURE.md ("OAM API")."""
from __future__ import annotations

import secrets
import threading
import time

import httpx
import pymysql
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from . import ss7_view, state
from .config_store import ConfigStore
from .db import Db, database_status
from .oam_models import (HOST_RE, NAME_RE, AccountIn, AccountUpdate, EnabledIn, LinkIn, LinksetIn,
                         RouteIn, RouteUpdate, RunIn, TrunkGroupIn)
from .settings import APPS, GATEWAY_PORT, OAM_PORT, Settings
from .ss7_config import for_units
from .udp import Client

RELOAD_POLL = 0.1
RELOAD_MIN_S = 0.5       # a reload waits for the engine's next look at the request table
DB_PROBE_PERIOD = 0.5


class ErrorOut(BaseModel):
    """Every error: `detail` says what is wrong (a failed reload: its result as well);
    a 422 also lists each invalid field in `errors`."""
    detail: str | dict
    errors: list[dict] | None = None


ERRORS = {401: "missing or wrong bearer token", 404: "no such configuration, host, "
          "application, unit, trunk, stack, route, account or call",
          409: "a conflict: duplicate, no active configuration, this host is standby",
          422: "the request does not validate (each field named)",
          502: "a unit or the engine failed to carry it out",
          503: "configuration database or gateway unavailable, or no active engine",
          504: "the call's unit did not answer"}


def errors(*codes: int) -> dict:
    """OpenAPI `responses` for the error codes a route can answer."""
    return {c: {"model": ErrorOut, "description": ERRORS[c]} for c in codes}


def call_id_path():   # a fresh Path per parameter: FastAPI binds a Path object to one name
    return Path(min_length=1, max_length=256, description="the caller's (A-leg) SIP Call-ID")


def name_path():
    return Path(pattern=NAME_RE)


def config_query():
    return Query(None, pattern=NAME_RE, description="default: the active configuration")


def host_query():
    return Query(None, pattern=HOST_RE, description="default: this host")


class HostLinks:
    """What the OAM reaches besides the database: its host's state files, its local
    gateway (UDP), the peer host's OAM (HTTP) and the database servers' own status.
    Unit tests replace it with a fake."""

    def __init__(self, s: Settings):
        self.s = s
        self._db_lock = threading.Lock()
        self._db_thread = None
        self._db_status: dict = {}

    def state(self, name: str) -> dict:
        return state.read(name)

    def gateway(self, msg: dict, timeout: float = 3.0) -> dict | None:
        return Client().request([("127.0.0.1", GATEWAY_PORT)], msg, timeout=timeout)

    def peer_status(self) -> dict | None:
        """The peer host's OAM status; None at once when sys_manager has lost the peer (a
        dead host would cost a connect timeout per control network)."""
        if not (state.read("sysmgr").get("peer") or {}).get("alive", True):
            return None
        headers = {"Authorization": f"Bearer {self.s.oam_token}"}
        for ip in self.s.peer_ctrl_ips:   # both control networks
            try:
                r = httpx.get(f"http://{ip}:{OAM_PORT}/api/v1/status", headers=headers,
                              timeout=httpx.Timeout(2.0, connect=0.5))
                if r.status_code == 200:
                    return r.json()
            except httpx.HTTPError:
                continue
        return None

    def databases(self) -> dict:
        """The servers' status as last probed in the background (a dead or hung server
        takes seconds to time out; the status, polled several times a second by
        the harness, must answer at once)."""
        with self._db_lock:
            if self._db_thread is None:
                self._db_status = dict(database_status(self.s), checked_at=time.time())
                self._db_thread = threading.Thread(target=self._probe_databases, daemon=True)
                self._db_thread.start()
            return self._db_status

    def _probe_databases(self):
        while True:
            time.sleep(DB_PROBE_PERIOD)   # a period, not a wait for a condition
            st = dict(database_status(self.s), checked_at=time.time())
            with self._db_lock:
                self._db_status = st


def _flatten(errors) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)


def create_app(s: Settings, store: ConfigStore, links: HostLinks) -> FastAPI:
    app = FastAPI(title="tboamapp", version="0.2",
                  description="OAM API of one Toolpack host of the HA testbed")
    bearer = HTTPBearer(auto_error=False)

    def authorized(cred: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if cred is None or not secrets.compare_digest(cred.credentials.encode(), s.oam_token.encode()):
            raise HTTPException(status_code=401, detail="missing or wrong bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

    @app.middleware("http")
    async def token_first(request: Request, call_next):
        """The token is checked before the body is read or validated: without it, bad
        JSON is a 401 like anything else (the route dependency alone came after the
        body's 400/422). The dependency stays, for the published security scheme."""
        if request.url.path.startswith("/api/"):
            scheme, _, cred = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not secrets.compare_digest(
                    cred.strip().encode(), s.oam_token.encode()):
                return JSONResponse(status_code=401, content={"detail": "missing or wrong bearer token"},
                                    headers={"WWW-Authenticate": "Bearer"})
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    def invalid(request: Request, exc: RequestValidationError):
        errors = [{k: e[k] for k in ("loc", "msg", "type") if k in e} for e in exc.errors()]
        return JSONResponse(status_code=422, content={"detail": _flatten(errors), "errors": errors})

    @app.exception_handler(pymysql.err.IntegrityError)
    def conflict(request: Request, exc):
        return JSONResponse(status_code=409,
                            content={"detail": f"conflicts with existing data: {exc.args[-1]}"})

    @app.exception_handler(pymysql.err.MySQLError)
    def db_down(request: Request, exc):
        return JSONResponse(status_code=503, content={"detail": f"configuration database unavailable: {exc}"})

    @app.get("/healthz")
    def healthz() -> dict:
        return {"ok": True, "host": s.host}

    api = APIRouter(prefix="/api/v1", dependencies=[Depends(authorized)],
                    responses=errors(401, 422, 503))

    def config_or_active(config: str | None) -> str:
        if config is None:
            config = store.active_config()
            if config is None:
                raise HTTPException(409, "no configuration is active")
        elif not store.config_exists(config):
            raise HTTPException(404, f"no configuration {config!r}")
        return config

    # ---- status ---------------------------------------------------------------------
    @api.get("/status")
    def status() -> dict:
        role = links.state("role")
        sysmgr = links.state("sysmgr")
        monitor = links.state("monitor")
        gw, engine = links.state("gateway"), links.state("engine")
        return {
            "host": s.host, "time": time.time(),
            "role": role.get("role", "standby"), "epoch": role.get("epoch", 0),
            "role_since": role.get("since"),
            "peer": sysmgr.get("peer"), "units": sysmgr.get("units", {}),
            "services": sysmgr.get("services", {}),
            "apps": monitor.get("apps", {}), "events": monitor.get("events", [])[-50:],
            "service_quitting": monitor.get("quitting", False),
            "gateway": gw, "engine": engine,
            "calls": {"active": gw.get("calls"), "records": gw.get("records"),
                      "routed": gw.get("routed"), "refused": gw.get("refused")},
            "config": {"active": engine.get("config"), "loaded": engine.get("loaded"),
                       "gateway_version": gw.get("version"), "last_reload": engine.get("last_reload")},
            "database": links.databases(),
        }

    @api.get("/ss7")
    def ss7() -> dict:
        """The SS7 side (emulator/host/ss7_view.py): each link with its unit and state, the
        units of the active and standby ISUP, SCCP and TCAP, the circuit states."""
        sysmgr = links.state("sysmgr")
        return {"host": s.host, **ss7_view.view(sysmgr.get("units", {}), sysmgr.get("services", {}))}

    # ---- configurations -------------------------------------------------------------
    @api.get("/configurations")
    def configurations() -> dict:
        return {"configurations": store.configurations(),
                "loaded": links.state("engine").get("loaded"),
                "latest_version": store.latest_version_id()}

    @api.post("/configurations/{name}/activate", responses=errors(404))
    def activate(name: str = name_path()) -> dict:
        if not store.activate(name):
            raise HTTPException(404, f"no configuration {name!r}")
        return {"active": name, "reload_required": True}

    @api.post("/configurations/reload", responses=errors(502))
    def reload(timeout_s: float = Query(15.0, ge=RELOAD_MIN_S, le=60,
                                        description="how long to wait for the engine")) -> dict:
        req = store.request_reload(s.host)
        deadline = time.monotonic() + timeout_s
        while True:
            row = store.reload_request(req)
            if row and row["done_at"] is not None:
                break
            if time.monotonic() >= deadline:
                raise HTTPException(503, f"no active toolpack_engine applied reload request {req} "
                                         f"within {timeout_s:g} s; it stays pending and is "
                                         f"applied when an engine is active")
            time.sleep(RELOAD_POLL)   # polling the request row, with a deadline
        result = dict(row["result"] or {}, request=req, applied_by=row["done_by"])
        if not result.get("ok"):
            raise HTTPException(502, {"message": "reload applied with failures", "result": result})
        return result

    # ---- applications (Run / Don't Run) ---------------------------------------------
    def host_apps(host: str) -> dict | None:
        """The applications as the host's Toolpack service reports them; None: the peer
        host's OAM does not answer (host down or cut off)."""
        if host == s.host:
            return links.state("monitor").get("apps", {})
        peer = links.peer_status()
        return peer.get("apps", {}) if peer else None

    def app_view(host: str, app: str, wanted: dict, seen: dict | None) -> dict:
        info = (seen or {}).get(app, {})
        return {"host": host, "app": app, "run": wanted.get(app, True),
                "state": "unreachable" if seen is None else info.get("state", "unknown"),
                "pid": info.get("pid"), "restarts": info.get("restarts")}

    def check_host_app(host: str | None, app: str | None = None) -> str:
        host = host or s.host
        if host not in (s.host, s.peer):
            raise HTTPException(404, f"no host {host!r} (hosts: {s.host}, {s.peer})")
        if app is not None and app not in APPS:
            raise HTTPException(404, f"no application {app!r} (applications: {', '.join(APPS)})")
        return host

    @api.get("/applications", responses=errors(404))
    def applications(host: str | None = host_query()) -> dict:
        host = check_host_app(host)
        wanted, seen = store.app_run(host), host_apps(host)
        return {"host": host, "applications": [app_view(host, a, wanted, seen) for a in APPS]}

    @api.get("/applications/{app}", responses=errors(404))
    def application(app: str, host: str | None = host_query()) -> dict:
        host = check_host_app(host, app)
        return app_view(host, app, store.app_run(host), host_apps(host))

    @api.put("/applications/{app}", responses=errors(404))
    def set_application(body: RunIn, app: str, host: str | None = host_query()) -> dict:
        """Stores the flag (table app_run); the host's Toolpack service applies it."""
        host = check_host_app(host, app)
        store.set_app_run(host, app, body.run)
        return app_view(host, app, store.app_run(host), host_apps(host))

    # ---- trunks and stacks ----------------------------------------------------------
    def trunk_states(rows: list) -> list:
        """Each trunk with its live state: no HA at trunk level, so a trunk is up only
        while its own unit is up and has it enabled in its configuration."""
        units = links.state("sysmgr").get("units", {})
        active = links.state("role").get("role") == "active"
        out = []
        for row in rows:
            info = units.get(row["unit"]) or {}
            st = info.get("status") or {}
            live = {t["name"]: t["enabled"] for t in st.get("trunks") or []}
            if not active:
                state = "unknown (this host does not control the units: ask the active host)"
            elif info.get("state") in ("dead", "unknown"):
                state = f"down (unit {row['unit']} {info['state']})"
            elif row["name"] not in live:
                state = "unknown (not configured on the unit)"
            else:
                state = "up" if live[row["name"]] else "disabled"
            out.append(dict(row, state=state))
        return out

    @api.get("/trunks", responses=errors(404, 409))
    def trunks(config: str | None = config_query()) -> dict:
        config = config_or_active(config)
        return {"config": config, "trunks": trunk_states(store.trunks(config))}

    @api.put("/trunks/{unit}/{name}", responses=errors(404, 409))
    def set_trunk(body: EnabledIn, unit: str = name_path(), name: str = name_path(),
                  config: str | None = config_query()) -> dict:
        config = config_or_active(config)
        row = store.set_trunk(config, unit, name, body.enabled)
        if row is None:
            raise HTTPException(404, f"no trunk {name!r} on unit {unit!r} in configuration {config!r}")
        return dict(row, reload_required=True)

    @api.get("/stacks", responses=errors(404, 409))
    def stacks(config: str | None = config_query()) -> dict:
        config = config_or_active(config)
        return {"config": config, "stacks": store.stacks(config)}

    @api.put("/stacks/{unit}/{name}", responses=errors(404, 409))
    def set_stack(body: EnabledIn, unit: str = name_path(), name: str = name_path(),
                  config: str | None = config_query()) -> dict:
        config = config_or_active(config)
        row = store.set_stack(config, unit, name, body.enabled)
        if row is None:
            raise HTTPException(404, f"no stack {name!r} on unit {unit!r} in configuration {config!r}")
        return dict(row, reload_required=True)

    # ---- routes ---------------------------------------------------------------------
    @api.get("/routes", responses=errors(404, 409))
    def routes(config: str | None = config_query()) -> dict:
        config = config_or_active(config)
        return {"config": config, "routes": store.routes(config)}

    def route_or_404(route_id: int) -> dict:
        row = store.route(route_id)
        if row is None:
            raise HTTPException(404, f"no route {route_id}")
        return row

    def check_group(config: str, group: str | None) -> None:
        if group is not None and not any(g["name"] == group for g in store.ss7(config)["trunk_groups"]):
            raise HTTPException(404, f"no ISUP trunk group {group!r} in configuration {config!r}")

    @api.post("/routes", status_code=201, responses=errors(404, 409))
    def add_route(body: RouteIn) -> dict:
        config = config_or_active(body.config)
        check_group(config, body.trunk_group)
        row = store.add_route(config, body.prefix, body.priority,
                              str(body.host) if body.host else None, body.port, body.trunk_group)
        return dict(row, reload_required=True)

    @api.get("/routes/{route_id}", responses=errors(404))
    def get_route(route_id: int = Path(ge=1)) -> dict:
        return route_or_404(route_id)

    @api.put("/routes/{route_id}", responses=errors(404, 409))
    def update_route(body: RouteUpdate, route_id: int = Path(ge=1)) -> dict:
        row = route_or_404(route_id)
        change = body.model_dump(exclude_none=True)
        if "trunk_group" in change:   # an ISUP trunk group now
            change.update(host=None, port=None)
        elif "host" in change:        # a SIP destination now
            change.update(host=str(change["host"]), trunk_group=None,
                          port=change.get("port") or row["port"] or 5060)
        if "config" in change:
            config_or_active(change["config"])
        new = dict(row, **change)
        if new["trunk_group"] is not None and new["port"] is not None:
            raise HTTPException(409, f"route {route_id} goes to ISUP trunk group "
                                     f"{new['trunk_group']!r}: a port goes with a host")
        check_group(new["config"], new["trunk_group"])
        row = store.update_route(route_id, new)
        if row is None:
            raise HTTPException(404, f"no route {route_id}")
        return dict(row, reload_required=True)

    @api.delete("/routes/{route_id}", responses=errors(404))
    def delete_route(route_id: int = Path(ge=1)) -> dict:
        if not store.delete_route(route_id):
            raise HTTPException(404, f"no route {route_id}")
        return {"deleted": route_id, "reload_required": True}

    # ---- SS7 configuration: linkset, links, ISUP trunk groups ------------------------
    def ss7_config(config: str) -> dict:
        ss7 = store.ss7(config)
        _, problem = for_units(ss7, s.services)
        return {"config": config, **ss7, "problem": problem}

    def linkset_or_404(config: str, name: str) -> dict:
        ls = next((l for l in store.ss7(config)["linksets"] if l["name"] == name), None)
        if ls is None:
            raise HTTPException(404, f"no linkset {name!r} in configuration {config!r}")
        return ls

    def unit_or_404(unit: str) -> None:
        if unit not in s.services:
            raise HTTPException(404, f"no unit {unit!r} with a VoIP address "
                                     f"(units: {', '.join(sorted(s.services)) or 'none'})")

    @api.get("/ss7/config", responses=errors(404, 409))
    def get_ss7_config(config: str | None = config_query()) -> dict:
        """The configuration's linksets (point codes, links by SLC and unit) and ISUP trunk
        groups (unit, CICs), as stored; `problem`: why the units could not run it as it
        stands (null: they can), which a reload would also report."""
        return ss7_config(config_or_active(config))

    @api.put("/ss7/linksets/{name}", responses=errors(404, 409))
    def put_linkset(body: LinksetIn, name: str = name_path(),
                    config: str | None = config_query()) -> dict:
        config = config_or_active(config)
        store.put_linkset(config, name, body.opc, body.dpc)
        return dict(ss7_config(config), reload_required=True)

    @api.delete("/ss7/linksets/{name}", responses=errors(404, 409))
    def delete_linkset(name: str = name_path(), config: str | None = config_query()) -> dict:
        """With its links and trunk groups; refused while a route names one of its groups."""
        config = config_or_active(config)
        linkset_or_404(config, name)
        groups = {g["name"] for g in store.ss7(config)["trunk_groups"] if g["linkset"] == name}
        used = sorted({r["trunk_group"] for r in store.routes(config)} & groups)
        if used:
            raise HTTPException(409, f"routes name its trunk groups {used}: remove them first")
        store.delete_linkset(config, name)
        return dict(ss7_config(config), reload_required=True)

    @api.put("/ss7/linksets/{name}/links/{slc}", responses=errors(404, 409))
    def put_link(body: LinkIn, name: str = name_path(), slc: int = Path(ge=0, le=15),
                 config: str | None = config_query()) -> dict:
        config = config_or_active(config)
        ls = linkset_or_404(config, name)
        unit_or_404(body.unit)
        if any(l["unit"] == body.unit and l["slc"] != slc for l in ls["links"]):
            raise HTTPException(409, f"{body.unit!r} already ends a link of {name!r}")
        store.put_link(config, name, slc, body.unit)
        return dict(ss7_config(config), reload_required=True)

    @api.delete("/ss7/linksets/{name}/links/{slc}", responses=errors(404, 409))
    def delete_link(name: str = name_path(), slc: int = Path(ge=0, le=15),
                    config: str | None = config_query()) -> dict:
        config = config_or_active(config)
        linkset_or_404(config, name)
        if not store.delete_link(config, name, slc):
            raise HTTPException(404, f"no link {slc} in linkset {name!r}")
        return dict(ss7_config(config), reload_required=True)

    @api.put("/ss7/trunk-groups/{name}", responses=errors(404, 409))
    def put_trunk_group(body: TrunkGroupIn, name: str = name_path(),
                        config: str | None = config_query()) -> dict:
        config = config_or_active(config)
        linkset_or_404(config, body.linkset)
        unit_or_404(body.unit)
        for g in store.ss7(config)["trunk_groups"]:
            if g["name"] != name and g["linkset"] == body.linkset and \
                    body.cic_first <= g["cic_last"] and g["cic_first"] <= body.cic_last:
                raise HTTPException(409, f"CICs {body.cic_first}-{body.cic_last} overlap trunk "
                                         f"group {g['name']!r} ({g['cic_first']}-{g['cic_last']})")
        store.put_trunk_group(config, name, body.model_dump())
        return dict(ss7_config(config), reload_required=True)

    @api.delete("/ss7/trunk-groups/{name}", responses=errors(404, 409))
    def delete_trunk_group(name: str = name_path(), config: str | None = config_query()) -> dict:
        config = config_or_active(config)
        used = [r["id"] for r in store.routes(config) if r["trunk_group"] == name]
        if used:
            raise HTTPException(409, f"routes {used} go to trunk group {name!r}: remove them first")
        if not store.delete_trunk_group(config, name):
            raise HTTPException(404, f"no ISUP trunk group {name!r} in configuration {config!r}")
        return dict(ss7_config(config), reload_required=True)

    # ---- accounts -------------------------------------------------------------------
    @api.get("/accounts")
    def accounts() -> dict:
        return {"accounts": store.accounts()}

    def account_or_404(name: str) -> dict:
        row = store.account(name)
        if row is None:
            raise HTTPException(404, f"no account {name!r}")
        return row

    @api.post("/accounts", status_code=201, responses=errors(409))
    def add_account(body: AccountIn) -> dict:
        if store.account(body.name) is not None:
            raise HTTPException(409, f"account {body.name!r} exists")
        return dict(store.add_account(body.name, body.enabled, body.max_calls), reload_required=True)

    @api.get("/accounts/{name}", responses=errors(404))
    def get_account(name: str = name_path()) -> dict:
        return account_or_404(name)

    @api.put("/accounts/{name}", responses=errors(404))
    def update_account(body: AccountUpdate, name: str = name_path()) -> dict:
        row = account_or_404(name)
        row = store.update_account(name, dict(row, **body.model_dump(exclude_none=True)))
        if row is None:
            raise HTTPException(404, f"no account {name!r}")
        return dict(row, reload_required=True)

    @api.delete("/accounts/{name}", responses=errors(404))
    def delete_account(name: str = name_path()) -> dict:
        if not store.delete_account(name):
            raise HTTPException(404, f"no account {name!r}")
        return {"deleted": name, "reload_required": True}

    # ---- calls ----------------------------------------------------------------------
    def gateway(msg: dict, timeout: float = 3.0) -> dict:
        reply = links.gateway(msg, timeout)
        if reply is None:
            raise HTTPException(503, f"the gateway of {s.host} does not answer")
        return reply

    def all_calls() -> dict:
        calls, after = [], None
        while True:
            reply = gateway({"op": "calls", "after": after})
            calls += reply["calls"]
            if not reply.get("more") or not reply["calls"]:
                calls.sort(key=lambda c: (c.get("routed_at") or 0, c["call_id"]))
                return {"host": s.host, "role": reply.get("role"), "total": len(calls), "calls": calls}
            after = reply["calls"][-1]["call_id"]

    @api.get("/calls")
    def calls() -> dict:
        return all_calls()

    @api.get("/calls/{call_id}", responses=errors(404))
    def get_call(call_id: str = call_id_path()) -> dict:
        for c in all_calls()["calls"]:
            if c["call_id"] == call_id:
                return c
        raise HTTPException(404, f"no call {call_id!r}")

    @api.delete("/calls/{call_id}", responses=errors(404, 409, 502, 504))
    def close_call(call_id: str = call_id_path()) -> dict:
        """The gateway asks the call's unit to hang it up (BYE on both legs)."""
        reply = gateway({"op": "close", "call_id": call_id}, timeout=5.0)
        if not reply.get("ok"):
            raise HTTPException(reply.get("code") or 502, reply.get("error") or "close failed")
        return {"closed": call_id, "unit": reply.get("unit")}

    app.include_router(api)
    return app


def main():
    s = Settings.from_env()
    app = create_app(s, ConfigStore(Db.from_settings(s)), HostLinks(s))
    uvicorn.run(app, host="0.0.0.0", port=OAM_PORT, log_level="warning")


if __name__ == "__main__":
    main()
