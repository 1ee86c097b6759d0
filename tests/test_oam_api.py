"""The OAM API (emulator/host/tboamapp.py) through FastAPI's TestClient with an in-memory
store and fake host links: token, validation (422 with a clear message), unknown names
(404), conflicts (409), and what each operation writes. No database, no sockets."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from emulator.host.tboamapp import create_app
from oam_fakes import FakeLinks, FakeStore, settings

S = settings()
AUTH = {"Authorization": f"Bearer {S.oam_token}"}


@pytest.fixture
def store():
    return FakeStore()


@pytest.fixture
def links():
    return FakeLinks()


@pytest.fixture
def client(store, links):
    return TestClient(create_app(S, store, links), headers=AUTH)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}])
@pytest.mark.parametrize("method,path", [("GET", "/api/v1/status"), ("GET", "/api/v1/routes"),
                                         ("POST", "/api/v1/configurations/reload"),
                                         ("DELETE", "/api/v1/calls/x")])
def test_every_api_route_needs_the_token(store, links, headers, method, path):
    r = TestClient(create_app(S, store, links)).request(method, path, headers=headers)
    assert r.status_code == 401, r.text
    assert "token" in r.json()["detail"]


def test_healthz_and_openapi_need_no_token(store, links):
    c = TestClient(create_app(S, store, links))
    assert c.get("/healthz").json() == {"ok": True, "host": "host-a"}
    paths = c.get("/openapi.json").json()["paths"]
    for p in ("/api/v1/routes", "/api/v1/accounts/{name}", "/api/v1/calls/{call_id}",
              "/api/v1/configurations/{name}/activate", "/api/v1/applications/{app}",
              "/api/v1/trunks/{unit}/{name}", "/api/v1/stacks/{unit}/{name}"):
        assert p in paths


def test_status_carries_calls_and_configuration_state(client, links):
    links.states["gateway"] = {"calls": 3, "records": {"answered": 3}, "routed": 9, "refused": 1, "version": 4}
    links.states["engine"] = {"config": "alt", "loaded": {"version": 4, "config": "default"}}
    st = client.get("/api/v1/status").json()
    assert st["role"] == "active" and st["calls"]["active"] == 3
    assert st["config"] == {"active": "alt", "loaded": {"version": 4, "config": "default"},
                            "gateway_version": 4, "last_reload": None}


# ---- validation -----------------------------------------------------------------------

@pytest.mark.parametrize("body,where", [
    ({"prefix": "12a", "host": "10.0.3.32"}, "prefix"),
    ({"prefix": "1", "host": "not-an-ip"}, "host"),
    ({"prefix": "1", "host": "10.0.3.32", "port": 70000}, "port"),
    ({"prefix": "1", "host": "10.0.3.32", "port": "5060"}, "port"),
    ({"prefix": "1", "host": "10.0.3.32", "priority": -1}, "priority"),
    ({"prefix": "1", "host": "10.0.3.32", "colour": "red"}, "colour"),
    ({"host": "10.0.3.32"}, "prefix"),
    ({"prefix": "1", "host": "10.0.3.32", "config": "bad name!"}, "config"),
])
def test_bad_route_bodies_get_422_naming_the_field(client, body, where):
    r = client.post("/api/v1/routes", json=body)
    assert r.status_code == 422, r.text
    assert where in r.json()["detail"]


@pytest.mark.parametrize("body", [{}, {"enabled": None}, {"enabled": "yes"}, {"max_calls": -1},
                                  {"max_calls": 1.5}, {"max_calls": 100001}, {"name": "x"}])
def test_bad_account_changes_get_422(client, body):
    assert client.put("/api/v1/accounts/sipp", json=body).status_code == 422


@pytest.mark.parametrize("body", [{"name": "", "enabled": True}, {"name": "a b"},
                                  {"name": "x" * 65}, {"name": "ok", "enabled": 1}])
def test_bad_new_accounts_get_422(client, body):
    assert client.post("/api/v1/accounts", json=body).status_code == 422


@pytest.mark.parametrize("path,body", [("/api/v1/trunks/tmedia-1/e1-0", {"enabled": "false"}),
                                       ("/api/v1/stacks/tmedia-1/sip-0", {}),
                                       ("/api/v1/applications/gateway", {"run": 0}),
                                       ("/api/v1/applications/gateway", {"run": True, "now": 1})])
def test_bad_flags_get_422(client, path, body):
    assert client.put(path, json=body).status_code == 422


@pytest.mark.parametrize("path", ["/api/v1/routes?config=bad%20name", "/api/v1/trunks?config=x;y",
                                  "/api/v1/applications?host=..%2Fetc", "/api/v1/routes/0",
                                  "/api/v1/routes/abc", "/api/v1/configurations/reload?timeout_s=99"])
def test_bad_query_and_path_parameters_get_422(client, path):
    method = "POST" if "reload" in path else "GET"
    assert client.request(method, path).status_code == 422


def test_a_body_that_is_not_json_gets_422(client):
    r = client.post("/api/v1/routes", content=b"{nope", headers={"Content-Type": "application/json"})
    assert r.status_code == 422


# ---- unknown names: 404 ---------------------------------------------------------------

@pytest.mark.parametrize("method,path,body", [
    ("POST", "/api/v1/configurations/nope/activate", None),
    ("GET", "/api/v1/routes/999", None),
    ("PUT", "/api/v1/routes/999", {"priority": 3}),
    ("DELETE", "/api/v1/routes/999", None),
    ("GET", "/api/v1/accounts/nobody", None),
    ("PUT", "/api/v1/accounts/nobody", {"enabled": False}),
    ("DELETE", "/api/v1/accounts/nobody", None),
    ("PUT", "/api/v1/trunks/tmedia-1/t9", {"enabled": False}),
    ("PUT", "/api/v1/trunks/tmedia-9/e1-0", {"enabled": False}),
    ("PUT", "/api/v1/stacks/tmedia-1/sip-9", {"enabled": False}),
    ("GET", "/api/v1/routes?config=nope", None),
    ("POST", "/api/v1/routes", {"config": "nope", "prefix": "1", "host": "10.0.3.32"}),
    ("GET", "/api/v1/applications/nope", None),
    ("PUT", "/api/v1/applications/gateway?host=host-z", {"run": False}),
])
def test_unknown_names_get_404(client, method, path, body):
    r = client.request(method, path, json=body)
    assert r.status_code == 404, r.text
    assert r.json()["detail"].startswith("no ")


# ---- operations -----------------------------------------------------------------------

def test_route_add_modify_remove(client, store):
    r = client.post("/api/v1/routes", json={"prefix": "95", "priority": 1, "host": "10.0.3.32", "port": 5071})
    assert r.status_code == 201, r.text
    route = r.json()
    assert route["config"] == "default" and route["reload_required"] is True
    assert client.post("/api/v1/routes", json={"prefix": "95", "host": "10.0.3.32", "port": 5071}).status_code == 409
    r = client.put(f"/api/v1/routes/{route['id']}", json={"prefix": "96"})
    assert r.status_code == 200 and r.json()["prefix"] == "96" and r.json()["port"] == 5071
    assert store.route(route["id"])["prefix"] == "96"
    assert client.delete(f"/api/v1/routes/{route['id']}").json() == {"deleted": route["id"], "reload_required": True}
    assert client.get(f"/api/v1/routes/{route['id']}").status_code == 404


def test_account_add_conflict_modify_remove(client, store):
    r = client.post("/api/v1/accounts", json={"name": "pc-1", "enabled": False, "max_calls": 2})
    assert r.status_code == 201 and r.json()["enabled"] is False
    r = client.post("/api/v1/accounts", json={"name": "pc-1"})
    assert r.status_code == 409 and "exists" in r.json()["detail"]
    r = client.put("/api/v1/accounts/pc-1", json={"enabled": True})
    assert r.json() == {"name": "pc-1", "enabled": True, "max_calls": 2, "reload_required": True}
    assert client.delete("/api/v1/accounts/pc-1").status_code == 200
    assert store.account("pc-1") is None


def test_trunk_and_stack_flags_are_stored_in_the_active_configuration(client, store):
    store.activate("alt")
    r = client.put("/api/v1/stacks/tmedia-1/sip-0", json={"enabled": False})
    assert r.json()["config"] == "alt" and r.json()["kind"] == "SIP" and r.json()["enabled"] is False
    assert store.stack_rows[("alt", "tmedia-1", "sip-0")] == ("SIP", False)
    assert store.stack_rows[("default", "tmedia-1", "sip-0")] == ("SIP", True)
    r = client.put("/api/v1/trunks/tmedia-1/e1-1?config=default", json={"enabled": False})
    assert r.json()["config"] == "default" and store.trunk_rows[("default", "tmedia-1", "e1-1")] is False


def test_activate_then_reload_reports_the_engine_result(client, store):
    assert client.post("/api/v1/configurations/alt/activate").json() == {"active": "alt", "reload_required": True}
    assert [c["name"] for c in client.get("/api/v1/configurations").json()["configurations"]
            if c["active"]] == ["alt"]
    store.engine = lambda rid: {"ok": True, "version": 5, "config": store.active_config(),
                                "units": {"tmedia-1": "ok"}}
    r = client.post("/api/v1/configurations/reload")
    assert r.status_code == 200, r.text
    assert r.json()["config"] == "alt" and r.json()["version"] == 5 and r.json()["request"] == 1


def test_reload_with_a_failed_unit_is_502_with_the_result(client, store):
    store.engine = lambda rid: {"ok": False, "version": 5, "units": {"tmedia-1": "no answer"}}
    r = client.post("/api/v1/configurations/reload")
    assert r.status_code == 502 and r.json()["detail"]["result"]["units"] == {"tmedia-1": "no answer"}


def test_reload_without_an_active_engine_is_503_and_stays_pending(client, store):
    r = client.post("/api/v1/configurations/reload?timeout_s=0.5")
    assert r.status_code == 503 and "stays pending" in r.json()["detail"]
    assert store.pending_reload() == 1
    # too short to be a wait for the engine (a fuzzer's 5e-324 got 503 "no engine"):
    # refused, and no request is left behind
    for absurd in ("0", "5e-324", "0.1"):
        r = client.post(f"/api/v1/configurations/reload?timeout_s={absurd}")
        assert r.status_code == 422 and "timeout_s" in r.json()["detail"], r.text
    assert store.pending_reload() == 1 and len(store.reloads) == 1


def test_run_flag_is_stored_per_host_and_shown_with_the_observed_state(client, store, links):
    r = client.put("/api/v1/applications/toolpack_engine?host=host-b", json={"run": False})
    assert r.status_code == 200
    assert r.json() == {"host": "host-b", "app": "toolpack_engine", "run": False, "state": "running",
                        "pid": 7, "restarts": 0}
    assert store.runs == {("host-b", "toolpack_engine"): False}
    apps = client.get("/api/v1/applications").json()
    assert apps["host"] == "host-a" and all(a["run"] for a in apps["applications"])
    assert client.get("/api/v1/applications/gateway").json()["pid"] == 102


def test_a_peer_that_does_not_answer_shows_its_applications_unreachable(client, store, links):
    links.peer = None
    r = client.put("/api/v1/applications/gateway?host=host-b", json={"run": False})
    assert r.status_code == 200 and r.json()["state"] == "unreachable" and r.json()["run"] is False
    assert store.runs == {("host-b", "gateway"): False}


def test_calls_are_listed_page_by_page_from_the_gateway(client, links):
    calls = [{"call_id": f"c{i:02d}", "state": "answered", "routed_at": i} for i in range(90)]

    def page(m):
        rest = [c for c in calls if m["after"] is None or c["call_id"] > m["after"]]
        return {"ok": True, "role": "active", "total": 90, "calls": rest[:40], "more": len(rest) > 40}
    links.gateway_fn = page
    r = client.get("/api/v1/calls").json()
    assert r["total"] == 90 and [c["call_id"] for c in r["calls"]] == [c["call_id"] for c in calls]
    assert client.get("/api/v1/calls/c89").json()["call_id"] == "c89"
    assert len(links.sent) == 3 * 2
    assert client.get("/api/v1/calls/zz").status_code == 404


@pytest.mark.parametrize("reply,code", [({"ok": False, "code": 404, "error": "no call 'x'"}, 404),
                                        ({"ok": False, "code": 409, "error": "host-a is standby"}, 409),
                                        ({"ok": False, "code": 504, "error": "unit did not answer"}, 504),
                                        (None, 503)])
def test_closing_a_call_maps_the_gateway_refusal(client, links, reply, code):
    links.gateway_fn = lambda m: reply
    r = client.delete("/api/v1/calls/x@10.0.3.31")
    assert r.status_code == code, r.text


def test_closing_a_call_goes_through_the_gateway(client, links):
    links.gateway_fn = lambda m: {"ok": True, "call_id": m["call_id"], "unit": "tmedia-1"}
    r = client.delete("/api/v1/calls/1-2-uac@10.0.3.31")
    assert r.status_code == 200 and r.json() == {"closed": "1-2-uac@10.0.3.31", "unit": "tmedia-1"}
    assert links.sent[-1] == {"op": "close", "call_id": "1-2-uac@10.0.3.31"}


def test_database_errors_are_503_with_the_reason(client, store):
    import pymysql

    def down(*a):
        raise pymysql.err.OperationalError(2003, "no database server reachable")
    store.accounts = down
    r = client.get("/api/v1/accounts")
    assert r.status_code == 503 and "no database server reachable" in r.json()["detail"]


def test_ss7_view_comes_from_the_units_status_as_polled(client, links):
    def node(role, slc):
        return {"role": role, "link": {"slc": slc, "state": "in_service"}, "running": True,
                "mtp3": {"links": {"0": {"state": "in_service"}, "1": {"state": "in_service"}}},
                "isup": {"circuits": {"1": "idle"}, "states": {"idle": 1}, "groups_down": []}}
    links.states["sysmgr"] = {"services": {"tmedia-1": "tmedia-1", "tmedia-2": "tmedia-3"},
                              "units": {"tmedia-1": {"status": {"ss7": node("standby", 0)}},
                                        "tmedia-3": {"status": {"ss7": node("active", 1)}}}}
    v = client.get("/api/v1/ss7").json()
    assert v["host"] == "host-a" and v["configured"]
    assert [(l["unit"], l["board"]) for l in v["links"]] == [("tmedia-1", "tmedia-1"), ("tmedia-2", "tmedia-3")]
    assert v["instances"]["isup"] == {"active": ["tmedia-2"], "standby": ["tmedia-1"]}
    assert TestClient(create_app(S, FakeStore(), links)).get("/api/v1/ss7").status_code == 401
