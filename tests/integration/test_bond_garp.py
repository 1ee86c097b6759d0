"""A bond failover announces every address of the unit on the new port (gratuitous ARP
in a capture on that port), so a switch that never flushes its table still learns it."""
from harness.arp import GarpCapture, missing_announcements
from harness.faults import wait_for
from harness.faults import PortDown, unit_status


def test_bond_failover_announces_every_address_on_the_new_port(testbed, faults):
    bond = unit_status(testbed, "tmedia-1")["bond"]
    old = bond["active_port"]
    new = "vp2" if old == "vp1" else "vp1"
    assert bond["addresses"], bond
    with GarpCapture(testbed, "tmedia-1", new) as cap:
        faults.inject(PortDown(testbed, unit="tmedia-1", port=old))
        wait_for(lambda: unit_status(testbed, "tmedia-1")["bond"]["active_port"] == new, 5,
                 f"the bond to move to {new}")
        wait_for(lambda: not missing_announcements(cap.announced(), bond["addresses"], bond["mac"]),
                 3, f"gratuitous ARP for {bond['addresses']} on {new}")
    assert not missing_announcements(cap.announced(), bond["addresses"], bond["mac"])
