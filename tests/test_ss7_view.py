"""The OAM's SS7 view (emulator/host/ss7_view.py) from units' status as polled."""
from emulator.host import ss7_view


def node(role, slc, link_state="in_service", **isup):
    return {"pid": 10, "running": True, "role": role, "link": {"slc": slc, "state": link_state},
            "mtp3": {"links": {"0": {"state": "in_service", "traffic_tx": 40, "traffic_rx": 38},
                               "1": {"state": link_state, "traffic_tx": 41, "traffic_rx": 37}}},
            "takeovers": [], "isup": {"circuits": {"1": "idle", "31": "answered"},
                                      "states": {"idle": 1, "answered": 1}, "groups_down": [],
                                      **isup}}


def polled(**boards):
    return {b: {"status": {"ss7": st}} for b, st in boards.items()}


def test_links_with_their_units_and_the_active_and_standby_instances():
    v = ss7_view.view(polled(**{"tmedia-1": node("active", 0), "tmedia-3": node("standby", 1)}),
                      {"tmedia-1": "tmedia-1", "tmedia-2": "tmedia-3"})
    assert v["configured"]
    assert [(l["slc"], l["unit"], l["board"], l["state"], l["mtp3_state"]) for l in v["links"]] == [
        (0, "tmedia-1", "tmedia-1", "in_service", "in_service"),
        (1, "tmedia-2", "tmedia-3", "in_service", "in_service")]
    assert v["links"][1]["traffic_tx"] == 41
    for layer in ("isup", "sccp", "tcap"):
        assert v["instances"][layer] == {"active": ["tmedia-1"], "standby": ["tmedia-2"]}
    assert v["circuits"] == {"1": "idle", "31": "answered"} and v["circuit_states"]["answered"] == 1


def test_a_lost_units_link_and_trunk_group_show_as_such():
    """The board serving tmedia-1 powered off: no node for it, the other unit active with
    tmedia-1's trunk group down."""
    other = node("active", 1, groups_down=["tmedia-1"],
                 circuits={"1": "down", "31": "answered"}, states={"down": 1, "answered": 1})
    other["mtp3"]["links"]["0"]["state"] = "failed"
    other.update(mate="tmedia-1", mate_link={"slc": 0, "state": "failed", "failure": "mate lost"})
    v = ss7_view.view(polled(**{"tmedia-2": other}), {"tmedia-1": None, "tmedia-2": "tmedia-2"})
    assert [(l["slc"], l["unit"], l["node"], l["mtp3_state"]) for l in v["links"]] == [
        (0, "tmedia-1", "not polled", "failed"), (1, "tmedia-2", "running", "in_service")]
    assert v["instances"]["isup"] == {"active": ["tmedia-2"], "standby": []}
    assert v["groups_down"] == ["tmedia-1"] and v["circuits"]["1"] == "down"


def test_two_active_units_are_both_listed_and_no_circuits_are_claimed():
    v = ss7_view.view(polled(**{"tmedia-1": node("active", 0), "tmedia-2": node("active", 1)}),
                      {"tmedia-1": "tmedia-1", "tmedia-2": "tmedia-2"})
    assert v["instances"]["tcap"]["active"] == ["tmedia-1", "tmedia-2"]
    assert v["circuits"] == {} and all(l["mtp3_state"] is None for l in v["links"])


def test_no_ss7_on_the_units_is_not_configured():
    v = ss7_view.view({"tmedia-1": {"status": {"ss7": None}}, "tmedia-2": {}},
                      {"tmedia-1": "tmedia-1", "tmedia-2": "tmedia-2"})
    assert v == {"configured": False, "links": [], "instances": {
        l: {"active": [], "standby": []} for l in ("isup", "sccp", "tcap")},
        "takeovers": [], "circuits": {}, "circuit_states": {}, "groups_down": [], "refusing": {}}
