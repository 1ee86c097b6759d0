"""The SS7 part of a loaded configuration (emulator/host/ss7_config.py): what the units
are pushed, why a configuration gives none, and gateway routes to ISUP trunk groups."""
from __future__ import annotations

import copy

import pytest

from emulator.host.routing import Routing
from emulator.host.ss7_config import for_units, group_destination

SERVICES = {"tmedia-1": {"address": "10.0.3.21/24", "vlans": []},
            "tmedia-2": {"address": "10.0.3.22/24", "vlans": []}}
SS7 = {"linksets": [{"name": "pstn", "opc": 1001, "dpc": 2002,
                     "links": [{"slc": 1, "unit": "tmedia-2"}, {"slc": 0, "unit": "tmedia-1"}]}],
       "trunk_groups": [{"name": "isup-1", "linkset": "pstn", "unit": "tmedia-1", "cic_first": 1, "cic_last": 30},
                        {"name": "isup-2", "linkset": "pstn", "unit": "tmedia-2", "cic_first": 31, "cic_last": 60}]}


def test_the_units_get_the_linkset_in_slc_order_with_addresses_and_groups():
    part, why = for_units(SS7, SERVICES)
    assert why is None
    assert part == {"linkset": "pstn", "opc": 1001, "dpc": 2002,
                    "units": [["tmedia-1", "10.0.3.21"], ["tmedia-2", "10.0.3.22"]],
                    "groups": {"tmedia-1": [1, 30], "tmedia-2": [31, 60]},
                    "group_names": {"tmedia-1": "isup-1", "tmedia-2": "isup-2"}, "sip_port": 5070}


def test_no_linkset_is_no_ss7_and_no_error():
    assert for_units({"linksets": [], "trunk_groups": []}, SERVICES) == (None, None)
    assert for_units(None, SERVICES) == (None, None)


def _broken(change):
    ss7 = copy.deepcopy(SS7)
    change(ss7)
    return ss7


@pytest.mark.parametrize("change,words", [
    (lambda s: s["linksets"].append(dict(s["linksets"][0], name="other")), "2 linksets"),
    (lambda s: s["linksets"][0]["links"].pop(), "needs links 0 and 1"),
    (lambda s: s["linksets"][0]["links"][0].update(unit="tmedia-1"), "both links end on"),
    (lambda s: s["linksets"][0]["links"][0].update(unit="tmedia-3"), "not a unit with a VoIP address"),
    (lambda s: s["linksets"][0].update(dpc=1001), "own point code"),
    (lambda s: s["linksets"][0].update(opc=20000), "not 0..16383"),
    (lambda s: s["trunk_groups"].pop(), "has no ISUP trunk group"),
    (lambda s: s["trunk_groups"][1].update(unit="tmedia-1"), "two trunk groups"),
    (lambda s: s["trunk_groups"][1].update(unit="tmedia-3"), "ends no link"),
    (lambda s: s["trunk_groups"][1].update(cic_first=30), "share CICs"),
    (lambda s: s["trunk_groups"][1].update(cic_first=70), "not a range"),
    (lambda s: s["trunk_groups"][1].update(cic_last=5000), "not a range"),
])
def test_an_unusable_configuration_gives_no_ss7_and_says_why(change, words):
    part, why = for_units(_broken(change), SERVICES)
    assert part is None and words in why


SNAP = {"config": "default", "ss7": SS7, "accounts": {},
        "routes": [{"id": 1, "prefix": "", "priority": 0, "host": "10.0.3.32", "port": 5060, "trunk_group": None},
                   {"id": 2, "prefix": "771", "priority": 0, "host": None, "port": None, "trunk_group": "isup-1"},
                   {"id": 3, "prefix": "772", "priority": 0, "host": None, "port": None, "trunk_group": "isup-2"},
                   {"id": 4, "prefix": "772", "priority": 1, "host": "10.0.3.33", "port": 5060, "trunk_group": None},
                   {"id": 5, "prefix": "773", "priority": 0, "host": None, "port": None, "trunk_group": "nope"}]}


def test_a_route_to_a_trunk_group_goes_to_its_units_interworking():
    r = Routing(SNAP, SERVICES)
    assert r.decide("sipp", "7710001", 0).routes == [{"host": "10.0.3.21", "port": 5070}]
    # a group beside a SIP address: alternates in priority order
    assert r.decide("sipp", "7720001", 0).routes == [{"host": "10.0.3.22", "port": 5070},
                                                     {"host": "10.0.3.33", "port": 5060}]


def test_a_route_to_a_group_that_cannot_take_calls_is_refused_503_with_the_reason():
    d = Routing(SNAP, SERVICES).decide("sipp", "7730001", 0)
    assert (d.ok, d.code) == (False, 503) and "no ISUP trunk group 'nope'" in d.error
    no_ss7 = Routing(dict(SNAP, ss7={"linksets": [], "trunk_groups": []}), SERVICES)
    d = no_ss7.decide("sipp", "7710001", 0)
    assert (d.ok, d.code) == (False, 503) and "not in service: no SS7 configured" in d.error
    # the SIP alternate still carries the route whose group is out of service
    assert no_ss7.decide("sipp", "7720001", 0).routes == [{"host": "10.0.3.33", "port": 5060}]


def test_group_destination_names_the_broken_configuration():
    broken = _broken(lambda s: s["trunk_groups"].pop())
    dest, why = group_destination(broken, SERVICES, "isup-1")
    assert dest is None and "no ISUP trunk group" in why and "tmedia-2" in why


def test_the_seed_reads_tb_seed_ss7_and_names_it_when_malformed(monkeypatch):
    from emulator.host.schema import seed_ss7
    monkeypatch.delenv("TB_SEED_SS7", raising=False)
    assert seed_ss7() is None
    monkeypatch.setenv("TB_SEED_SS7", "pstn=1001:2002;tmedia-1,tmedia-2;isup-1=tmedia-1:1-30,isup-2=tmedia-2:31-60")
    assert seed_ss7() == {"linkset": "pstn", "opc": 1001, "dpc": 2002, "links": ["tmedia-1", "tmedia-2"],
                          "groups": [("isup-1", "tmedia-1", 1, 30), ("isup-2", "tmedia-2", 31, 60)]}
    for bad in ("pstn=1001;tmedia-1,tmedia-2;isup-1=tmedia-1:1-30", "pstn=1001:2002;tmedia-1",
                "pstn=1001:2002;tmedia-1,tmedia-2;isup-1=tmedia-1:1"):
        monkeypatch.setenv("TB_SEED_SS7", bad)
        with pytest.raises(SystemExit, match="bad TB_SEED_SS7=.*LINKSET=OPC:DPC"):
            seed_ss7()
