"""tboamapp: the OAM REST API of a host (FastAPI, OpenAPI schema at /openapi.json).

Every route but /healthz needs `Authorization: Bearer <token>`; the token is generated at
bring-up (TB_OAM_TOKEN), there is no default."""
from __future__ import annotations

import secrets
import time

import pymysql
import uvicorn
from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from . import state
from .db import DATABASE
from .settings import OAM_PORT, Settings

S = Settings.from_env()
app = FastAPI(title="tboamapp", version="0.1",
              description="OAM API of one Toolpack host of the HA testbed")
bearer = HTTPBearer(auto_error=False)


def authorized(cred: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
    if cred is None or not secrets.compare_digest(cred.credentials.encode(), S.oam_token.encode()):
        raise HTTPException(status_code=401, detail="missing or wrong bearer token",
                            headers={"WWW-Authenticate": "Bearer"})


def db_server_status(ip: str) -> dict:
    """What one database server says about itself and its replication (short timeouts:
    a dead server must not stall the status)."""
    out: dict = {"ip": ip, "reachable": False}
    try:
        conn = pymysql.connect(host=ip, user="toolpack", password=S.db_password, database=DATABASE,
                               connect_timeout=0.7, read_timeout=2,
                               cursorclass=pymysql.cursors.DictCursor)
    except pymysql.err.MySQLError as exc:
        out["error"] = str(exc)
        return out
    try:
        with conn.cursor() as cur:
            out["reachable"] = True
            cur.execute("SELECT @@gtid_current_pos AS gtid, @@read_only AS read_only")
            out.update(cur.fetchone())
            cur.execute("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_%%_status'")
            out["semi_sync"] = {r["Variable_name"]: r["Value"] for r in cur.fetchall()}
            cur.execute("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_clients'")
            row = cur.fetchone()
            out["semi_sync_clients"] = int(row["Value"]) if row else 0
            cur.execute("SHOW SLAVE STATUS")
            row = cur.fetchone()
            out["replica"] = None if row is None else {
                "master_host": row["Master_Host"], "io_running": row["Slave_IO_Running"],
                "sql_running": row["Slave_SQL_Running"], "last_error": row["Last_Error"] or
                row["Last_IO_Error"], "seconds_behind": row["Seconds_Behind_Master"],
                "gtid_io_pos": row.get("Gtid_IO_Pos")}
    except pymysql.err.MySQLError as exc:
        out["error"] = str(exc)
    finally:
        conn.close()
    return out


@app.get("/healthz")
def healthz() -> dict:
    return {"ok": True, "host": S.host}


@app.get("/api/v1/status", dependencies=[Depends(authorized)])
def status() -> dict:
    role = state.read("role")
    sysmgr = state.read("sysmgr")
    monitor = state.read("monitor")
    return {
        "host": S.host, "time": time.time(),
        "role": role.get("role", "standby"), "epoch": role.get("epoch", 0),
        "role_since": role.get("since"),
        "peer": sysmgr.get("peer"), "units": sysmgr.get("units", {}),
        "apps": monitor.get("apps", {}), "events": monitor.get("events", [])[-50:],
        "service_quitting": monitor.get("quitting", False),
        "gateway": state.read("gateway"), "engine": state.read("engine"),
        "database": {"main": db_server_status(S.db_main), "backup": db_server_status(S.db_backup)},
    }


def main():
    uvicorn.run(app, host="0.0.0.0", port=OAM_PORT, log_level="warning")


if __name__ == "__main__":
    main()
