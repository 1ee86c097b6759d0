"""A real SIP call path through the active/standby pair: SIPp -> unit (sippy B2BUA asks
the active gateway for the route) -> SIPp far end, RTP relayed through the unit."""
from harness.faults import wait_for
from harness.sipp import DockerExecutor, SippLoad, SippUas


def unit_status(testbed):
    return testbed.oam(testbed.master(), "/api/v1/status")["units"]["tmedia-1"]["status"]


def test_calls_are_routed_by_the_active_gateway_and_carry_media(testbed):
    master = testbed.master()
    before = unit_status(testbed)
    sipp_dir = testbed.dir / "sipp"
    uas = SippUas(DockerExecutor(testbed.container("sipp-uas"), sipp_dir, "/work"),
                  testbed.ip("sipp-uas", "voip"), name="callpath-uas")
    load = SippLoad(DockerExecutor(testbed.container("sipp-uac"), sipp_dir, "/work"),
                    f"{testbed.ip('tmedia-1', 'voip')}:5060", testbed.ip("sipp-uac", "voip"),
                    rate=5, hold_s=3, calls=10, name="callpath-uac")
    with uas:
        with load:
            assert load.wait(), "SIPp did not finish its calls in time"
        uas.stop(grace_s=5)
    calls = load.calls(far_end=uas)
    assert len(calls) == 10
    bad = [(c.call_id, c.outcome, c.final_code, c.far_bye) for c in calls
           if c.outcome != "completed" or not c.far_bye]
    assert not bad, bad
    assert {c.gateway for c in calls} == {master}
    # RTP went through the unit: its relay counters grew by at least the played audio
    # (g711a.pcap: 7 s at 50 packets/s, held 3 s here, both ways through the echo)
    after = wait_for(lambda: (s := unit_status(testbed))["rtp_packets"] > before["rtp_packets"]
                     and s, 10, "the unit's RTP counters to grow")
    relayed = after["rtp_packets"] - before["rtp_packets"]
    assert relayed >= 10 * 3 * 50, f"only {relayed} RTP packets relayed for 10 calls of 3 s"
    assert after["calls_total"] - before["calls_total"] == 10
