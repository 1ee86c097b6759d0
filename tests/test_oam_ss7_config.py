"""The SS7 configuration through the OAM API (tboamapp.py, in-memory store): linksets,
links and ISUP trunk groups edited row by row, the `problem` that says why the units could
not run the configuration as it stands, and routes that name a trunk group."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from emulator.host.tboamapp import create_app
from oam_fakes import FakeLinks, FakeStore, settings

S = settings(services={"tmedia-1": {"address": "10.0.3.21/24", "vlans": []},
                       "tmedia-2": {"address": "10.0.3.22/24", "vlans": []}})
API = "/api/v1"


@pytest.fixture
def client():
    return TestClient(create_app(S, FakeStore(), FakeLinks()),
                      headers={"Authorization": f"Bearer {S.oam_token}"})


def build(client, config=None):
    q = f"?config={config}" if config else ""
    steps = [(f"/ss7/linksets/pstn{q}", {"opc": 1001, "dpc": 2002}),
             (f"/ss7/linksets/pstn/links/0{q}", {"unit": "tmedia-1"}),
             (f"/ss7/linksets/pstn/links/1{q}", {"unit": "tmedia-2"}),
             (f"/ss7/trunk-groups/isup-1{q}", {"linkset": "pstn", "unit": "tmedia-1", "cic_first": 1, "cic_last": 30})]
    problems = []
    for path, body in steps:
        r = client.put(API + path, json=body)
        assert r.status_code == 200, r.text
        assert r.json()["reload_required"] is True
        problems.append(r.json()["problem"])
    r = client.put(f"{API}/ss7/trunk-groups/isup-2{q}",
                   json={"linkset": "pstn", "unit": "tmedia-2", "cic_first": 31, "cic_last": 60})
    return problems, r.json()


def test_a_linkset_built_step_by_step_says_what_is_missing_until_it_is_whole(client):
    assert client.get(f"{API}/ss7/config").json() == {
        "config": "default", "linksets": [], "trunk_groups": [], "problem": None}
    problems, done = build(client)
    assert "needs links 0 and 1" in problems[0] and "needs links 0 and 1" in problems[1]
    assert "'tmedia-1' ends a link of 'pstn' but has no ISUP trunk group" in problems[2]
    assert "'tmedia-2'" in problems[3] and "no ISUP trunk group" in problems[3]
    assert done["problem"] is None
    assert done["linksets"] == [{"name": "pstn", "opc": 1001, "dpc": 2002,
                                 "links": [{"slc": 0, "unit": "tmedia-1"}, {"slc": 1, "unit": "tmedia-2"}]}]
    assert [(g["name"], g["unit"], g["cic_first"], g["cic_last"]) for g in done["trunk_groups"]] == \
        [("isup-1", "tmedia-1", 1, 30), ("isup-2", "tmedia-2", 31, 60)]
    # another configuration is its own
    assert client.get(f"{API}/ss7/config?config=alt").json()["linksets"] == []


@pytest.mark.parametrize("path,body,where", [
    ("/ss7/linksets/pstn", {"opc": 1001, "dpc": 1001}, "must differ"),
    ("/ss7/linksets/pstn", {"opc": 16384, "dpc": 2002}, "opc"),
    ("/ss7/linksets/pstn", {"opc": "1001", "dpc": 2002}, "opc"),
    ("/ss7/linksets/pstn", {"opc": 1001}, "dpc"),
    ("/ss7/linksets/bad%20name", {"opc": 1001, "dpc": 2002}, "name"),
    ("/ss7/linksets/pstn/links/16", {"unit": "tmedia-1"}, "slc"),
    ("/ss7/linksets/pstn/links/0", {"unit": "tmedia-1", "extra": 1}, "extra"),
    ("/ss7/trunk-groups/g", {"linkset": "pstn", "unit": "tmedia-1", "cic_first": 0, "cic_last": 3}, "cic_first"),
    ("/ss7/trunk-groups/g", {"linkset": "pstn", "unit": "tmedia-1", "cic_first": 9, "cic_last": 3}, "above"),
    ("/ss7/trunk-groups/g", {"linkset": "pstn", "unit": "tmedia-1", "cic_first": 1, "cic_last": 4096}, "cic_last"),
])
def test_bad_ss7_bodies_get_422_naming_the_field(client, path, body, where):
    r = client.put(API + path, json=body)
    assert r.status_code == 422, r.text
    assert where in r.json()["detail"]


def test_unknown_names_are_404_and_conflicts_409(client):
    assert client.put(f"{API}/ss7/linksets/nope/links/0", json={"unit": "tmedia-1"}).status_code == 404
    build(client)
    r = client.put(f"{API}/ss7/linksets/pstn/links/2", json={"unit": "tmedia-3"})
    assert r.status_code == 404 and "no unit 'tmedia-3'" in r.json()["detail"]
    r = client.put(f"{API}/ss7/linksets/pstn/links/2", json={"unit": "tmedia-1"})
    assert r.status_code == 409 and "already ends a link" in r.json()["detail"]
    r = client.put(f"{API}/ss7/trunk-groups/isup-3",
                   json={"linkset": "pstn", "unit": "tmedia-2", "cic_first": 60, "cic_last": 70})
    assert r.status_code == 409 and "overlap trunk group 'isup-2' (31-60)" in r.json()["detail"]
    # the group itself may change its own range
    r = client.put(f"{API}/ss7/trunk-groups/isup-2",
                   json={"linkset": "pstn", "unit": "tmedia-2", "cic_first": 31, "cic_last": 40})
    assert r.status_code == 200 and r.json()["trunk_groups"][1]["cic_last"] == 40
    r = client.put(f"{API}/ss7/trunk-groups/isup-3",
                   json={"linkset": "other", "unit": "tmedia-2", "cic_first": 90, "cic_last": 99})
    assert r.status_code == 404 and "no linkset 'other'" in r.json()["detail"]
    assert client.delete(f"{API}/ss7/trunk-groups/nope").status_code == 404
    assert client.delete(f"{API}/ss7/linksets/pstn/links/7").status_code == 404
    assert client.put(f"{API}/ss7/linksets/pstn?config=nope", json={"opc": 1, "dpc": 2}).status_code == 404


def test_a_route_names_a_trunk_group_which_then_cannot_go_while_named(client):
    build(client)
    r = client.post(f"{API}/routes", json={"prefix": "771", "trunk_group": "isup-1"})
    assert r.status_code == 201, r.text
    route = r.json()
    assert (route["host"], route["port"], route["trunk_group"]) == (None, None, "isup-1")
    r = client.post(f"{API}/routes", json={"prefix": "772", "trunk_group": "isup-9"})
    assert r.status_code == 404 and "no ISUP trunk group 'isup-9'" in r.json()["detail"]
    for body in ({"prefix": "7", "host": "10.0.3.32", "trunk_group": "isup-1"},
                 {"prefix": "7", "trunk_group": "isup-1", "port": 5070}, {"prefix": "7"}):
        assert client.post(f"{API}/routes", json=body).status_code == 422, body
    r = client.delete(f"{API}/ss7/trunk-groups/isup-1")
    assert r.status_code == 409 and f"routes [{route['id']}]" in r.json()["detail"]
    r = client.delete(f"{API}/ss7/linksets/pstn")
    assert r.status_code == 409 and "isup-1" in r.json()["detail"]
    # the route becomes a SIP destination (port 5060 by default), then the group can go
    r = client.put(f"{API}/routes/{route['id']}", json={"host": "10.0.3.33"})
    assert (r.json()["host"], r.json()["port"], r.json()["trunk_group"]) == ("10.0.3.33", 5060, None)
    r = client.put(f"{API}/routes/{route['id']}", json={"trunk_group": "isup-2"})
    assert (r.json()["host"], r.json()["port"], r.json()["trunk_group"]) == (None, None, "isup-2")
    r = client.put(f"{API}/routes/{route['id']}", json={"port": 5070})
    assert r.status_code == 409 and "a port goes with a host" in r.json()["detail"]
    client.delete(f"{API}/routes/{route['id']}")
    assert client.delete(f"{API}/ss7/trunk-groups/isup-1").status_code == 200
    r = client.delete(f"{API}/ss7/linksets/pstn")    # with its links and groups
    assert r.status_code == 200 and r.json()["linksets"] == [] and r.json()["trunk_groups"] == []
