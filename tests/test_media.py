"""Media measurement (harness/media.py) on synthetic streams: the largest gap of each
call's RTP across a fault, and the streams that ran across it."""
import pytest

from harness.media import Stream, summary


def stream(port, start, end, hole=None):
    times, t = [], start
    while t <= end:
        if not (hole and hole[0] < t < hole[1]):
            times.append(round(t, 3))
        t += 0.02
    return Stream(("10.0.101.21", port, "10.0.3.32", 6000), times)


def test_largest_gap_and_the_streams_across_a_fault():
    a = stream(1000, 0.0, 10.0)                    # 20 ms all along
    b = stream(1002, 0.0, 10.0, hole=(4.0, 4.5))   # half a second lost at the fault
    c = stream(1004, 6.0, 10.0)                    # started after the fault
    assert round(a.largest_gap_s, 3) == 0.02 and 0.5 <= b.largest_gap_s <= 0.54
    s = summary([a, b, c], 4.2)
    assert s["streams"] == 2 and s["min_packets"] == b.packets
    assert 500 <= s["largest_gap_ms"] <= 540 and s["median_largest_gap_ms"] >= 20


def test_no_stream_across_the_fault():
    assert summary([stream(1000, 5.0, 6.0)], 1.0) == {
        "streams": 0, "min_packets": 0, "largest_gap_ms": None, "median_largest_gap_ms": None}


def test_a_relay_port_reused_by_the_next_call_is_two_streams_not_one_gap():
    from harness.media import split_calls
    key = ("10.0.101.21", 35000, "10.0.3.32", 6000)
    first = [(i * 0.02, 100 + i) for i in range(100)]                 # a call, seq 100..199
    lost = [(2.0 + i * 0.02, 300 + i) for i in range(50)]             # 100 packets lost: a jump ahead
    second = [(10.0 + i * 0.02, 100 + i) for i in range(100)]         # next call: the pcap again
    streams = split_calls(key, first + lost + second)
    assert [s.packets for s in streams] == [150, 100]
    assert 0.02 < streams[0].largest_gap_s < 0.05                      # loss within a call: kept
    wrap = [(i * 0.02, (65530 + i) % 65536) for i in range(12)]      # wrap-around: one stream
    assert len(split_calls(key, wrap)) == 1


def test_judge_fails_when_a_kept_call_has_no_media_after_the_fault():
    from harness.media import judge
    a, b = stream(1000, 0.0, 10.0), stream(1002, 0.0, 4.0)     # b stopped at the fault
    v = judge([a, b], 4.2, kept_calls=2, bound_ms=250)
    assert v.status == "failed" and "media stopped on 1" in v.detail
    assert judge([a, stream(1002, 0.0, 10.0)], 4.2, kept_calls=2, bound_ms=250).status == "ok"


def test_judge_fails_on_a_gap_above_the_bound_and_is_unknown_with_nothing_kept():
    from harness.media import judge
    b = stream(1002, 0.0, 10.0, hole=(4.0, 4.5))
    assert judge([b], 4.2, kept_calls=1, bound_ms=250).status == "failed"
    assert judge([b], 4.2, kept_calls=1, bound_ms=600).status == "ok"
    assert judge([b], 4.2, kept_calls=0, bound_ms=600).status == "unknown"


def test_kept_across_counts_calls_answered_before_and_ended_after():
    from harness.media import kept_across
    from harness.sipp import CallRecord
    ok = CallRecord("a", invite_t=0, answer_t=1, bye_sent_t=9, outcome="completed")
    late = CallRecord("b", invite_t=4, answer_t=4.5, bye_sent_t=9, outcome="completed")
    short = CallRecord("c", invite_t=0, answer_t=1, bye_sent_t=4.5, outcome="completed")
    assert kept_across([ok, late, short], 4.2) == 1
    assert kept_across([ok], 4.2, lost=frozenset({"a"})) == 0


def test_missing_announcements_names_the_address_without_garp():
    from harness.arp import missing_announcements
    mac = "02:aa:bb:cc:dd:ee"
    addrs = ["172.28.3.21/24", "172.28.3.41/24"]
    assert missing_announcements({"172.28.3.21": mac, "172.28.3.41": mac.upper()}, addrs, mac) == []
    assert missing_announcements({"172.28.3.21": mac}, addrs, mac) == ["172.28.3.41/24"]
    assert missing_announcements({"172.28.3.21": "02:00:00:00:00:01", "172.28.3.41": mac},
                                 addrs, mac) == ["172.28.3.21/24"]


def _dissected(path):
    """The same datagrams through scapy's full dissection (the reference)."""
    from scapy.layers.inet import IP, UDP
    from scapy.utils import PcapReader
    with PcapReader(str(path)) as reader:
        return [(float(p.time), (p[IP].src, p[UDP].sport, p[IP].dst, p[UDP].dport),
                 bytes(p[UDP].payload)) for p in reader if IP in p and UDP in p]


@pytest.mark.parametrize("link", ["ether", "sll", "sll2"])
def test_the_capture_reader_reads_what_scapy_dissects(tmp_path, link):
    from scapy.layers.inet import ICMP, IP, UDP, TCP
    from scapy.layers.l2 import ARP, CookedLinux, CookedLinuxV2, Ether
    from scapy.packet import Raw
    from scapy.utils import wrpcap
    from harness.media import udp_datagrams
    head = {"ether": lambda: Ether(), "sll": lambda: CookedLinux(proto=0x0800),
            "sll2": lambda: CookedLinuxV2(proto=0x0800)}[link]
    rtp = bytes([0x80, 0]) + (4242).to_bytes(2, "big") + bytes(8) + b"voice" * 30
    pkts = [head() / IP(src="10.0.0.1", dst="10.0.0.2", options=[]) / UDP(sport=4000, dport=5000) / Raw(rtp),
            head() / IP(src="10.0.0.3", dst="10.0.0.4", ihl=6, options=b"\x01\x01\x01\x01")
            / UDP(sport=1, dport=2) / Raw(b"x"),                        # IP options
            head() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2) / Raw(b"no"),
            head() / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP()]
    if link == "ether":
        pkts.append(Ether() / ARP())
    for i, p in enumerate(pkts):
        p.time = 1796190000 + i * 0.020 + 0.000123
    path = tmp_path / "c.pcap"
    wrpcap(str(path), pkts)
    got = list(udp_datagrams(path))
    want = _dissected(path)
    assert len(got) == 2
    assert [(round(t, 6), k, p) for t, k, p in got] == [(round(t, 6), k, p) for t, k, p in want]
