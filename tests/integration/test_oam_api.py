"""The OAM API on the running testbed: each operation has its effect on calls, changes
wait for the configuration reload, the live database's conflicts are 409, the standby
gateway holds the active one's calls."""
import pymysql
import pytest

from harness import post_checks
from harness.faults import wait_for
from harness.oam import Oam


@pytest.fixture(scope="module")
def checks(testbed):
    """Far end A (sipp-uas:5070) with the checks' route 9 -> A in every configuration."""
    oam = Oam.master(testbed)
    prepared = post_checks.Prepared(testbed).start(oam, long_calls=0)
    yield post_checks.Checks(testbed, prepared, oam)
    prepared.finish(oam)


def test_validation_and_conflicts_on_the_live_database(testbed, checks):
    oam = checks.oam
    r = oam.request("POST", "/routes", {"prefix": "12", "host": "10.0.0.1", "port": 0})
    assert r.status == 422 and "port" in r.detail()
    route = oam.post("/routes", {"prefix": "12", "host": "10.0.0.1", "port": 5099})
    try:
        r = oam.request("POST", "/routes", {"prefix": "12", "host": "10.0.0.1", "port": 5099})
        assert r.status == 409, r
        r = oam.request("PUT", f"/routes/{route['id']}", {"config": "nope"})
        assert r.status == 404 and "nope" in r.detail()
    finally:
        oam.delete(f"/routes/{route['id']}")
    assert oam.request("DELETE", f"/routes/{route['id']}").status == 404
    assert oam.request("POST", "/accounts", {"name": "sipp"}).status == 409
    assert oam.request("PUT", "/stacks/tmedia-1/nope", {"enabled": False}).status == 404
    assert oam.request("POST", "/configurations/nope/activate").status == 404


def test_a_route_change_takes_effect_on_reload_and_not_before(checks):
    oam = checks.oam
    checks.uas_b = post_checks.SippUas(checks.p.executor("sipp-uas"), checks.uas_ip,
                                       name="it-uas-b", **post_checks.UAS_B).start()
    try:
        route = oam.post("/routes", {"prefix": "97", "host": checks.uas_ip, "port": post_checks.UAS_B["port"]})
        try:
            checks.expect_far_end("9700", "A")          # not reloaded yet: the 9 route
            checks.reload()
            checks.expect_far_end("9700", "B")
        finally:
            oam.delete(f"/routes/{route['id']}")
            checks.reload()
        checks.expect_far_end("9700", "A")
    finally:
        checks.uas_b.stop(grace_s=2)


def test_a_number_no_route_matches_is_refused_404(checks):
    """Configuration alt without its routes, activated and reloaded: 404; then restored."""
    oam = checks.oam
    saved = oam.get("/routes", config="alt")["routes"]
    try:
        for r in saved:
            oam.delete(f"/routes/{r['id']}")
        oam.post("/configurations/alt/activate")
        assert checks.reload()["config"] == "alt"
        checks.expect_code("9800", 404)
    finally:
        oam.post("/configurations/default/activate")
        for r in saved:
            if oam.request("GET", f"/routes/{r['id']}").status == 404:
                oam.post("/routes", {k: r[k] for k in ("config", "prefix", "priority", "host", "port")})
        checks.reload()
    checks.expect_code("9801", 200)


def test_an_account_limit_counts_concurrent_calls(checks):
    oam = checks.oam
    oam.post("/accounts", {"name": "it-limit", "max_calls": 2})
    try:
        checks.reload()
        calls = checks.call("9900", caller="it-limit", calls=3, rate=20, hold_s=3)
        codes = sorted(c.final_code for c in calls)
        assert codes == [200, 200, 486], [(c.call_id, c.final_code, c.outcome) for c in calls]
    finally:
        oam.delete("/accounts/it-limit")
        checks.reload()


def test_the_standby_holds_the_calls_of_the_active_host_and_only_the_active_closes(testbed, checks):
    master, slave = checks.oam, Oam(testbed, testbed.slave())
    load = post_checks.SippLoad(checks.p.executor("sipp-uac"), f"{testbed.ip('tmedia-1', 'voip')}:5060",
                                testbed.ip("sipp-uac", "voip"), rate=5, hold_s=120, calls=2,
                                name="it-standby", service="9950", **post_checks.UAC)
    def answered():
        ids = {c.call_id for c in load.calls() if c.answer_t}
        return ids if len(ids) == 2 else None

    with load:
        ids = wait_for(answered, 15, "two calls answered")
        listed = wait_for(lambda: ids <= {c["call_id"] for c in slave.get("/calls")["calls"]} and
                          slave.get("/calls"), 5, "the calls replicated to the standby")
        assert listed["role"] == "standby"
        assert all(c["state"] == "answered" and c["gateway"] == master.host
                   for c in listed["calls"] if c["call_id"] in ids)
        one = sorted(ids)[0]
        r = slave.request("DELETE", f"/calls/{one}")
        assert r.status == 409 and "active host" in r.detail()
        for cid in ids:
            master.delete(f"/calls/{cid}")
        assert load.wait(), "SIPp did not end after both calls were closed"
    recs = {c.call_id: c for c in load.calls()}
    assert all(recs[cid].peer_bye_t is not None for cid in ids)     # BYE from the network
    wait_for(lambda: not ids & {c["call_id"] for c in slave.get("/calls")["calls"]}, 5,
             "the closed calls gone from the standby's list")
    assert master.request("DELETE", f"/calls/{one}").status == 404


def test_the_run_flag_is_stored_in_the_database_for_the_service_monitor(testbed, checks):
    slave = testbed.slave()
    path = "/applications/toolpack_engine"
    checks.oam.put(path, {"run": False}, host=slave)
    try:
        conn = pymysql.connect(host=testbed.ip("host-a"), user="toolpack", database="toolpack",
                               password=testbed.env["TB_DB_PASSWORD"], connect_timeout=3)
        with conn.cursor() as cur:
            cur.execute("SELECT run FROM app_run WHERE host = %s AND app = %s", (slave, "toolpack_engine"))
            assert cur.fetchone() == (0,)
        conn.close()
        wait_for(lambda: checks.oam.get(path, host=slave)["state"] == "stopped", 10, "engine stopped")
    finally:
        checks.oam.put(path, {"run": True}, host=slave)
    wait_for(lambda: checks.oam.get(path, host=slave)["state"] == "running", 10, "engine running")


@pytest.mark.parametrize("check", [
    post_checks.Checks.switch_configurations,
    post_checks.Checks.application_run_state,
    post_checks.Checks.trunks_enable_disable,
    post_checks.Checks.stacks_enable_disable,
    post_checks.Checks.routes_add_remove_modify,
    post_checks.Checks.accounts_add_remove_modify,
], ids=lambda f: f.__name__)
def test_each_configuration_operation_has_its_effect_without_a_switchover(checks, check):
    """The post-switchover checks on a testbed that did not switch: the same effects (the
    unit reports the pushed configuration, SIP disabled -> 503, routes and accounts change
    where calls go and which are refused)."""
    assert check(checks)
