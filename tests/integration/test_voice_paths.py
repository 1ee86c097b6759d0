"""Voice path redundancy (issue 4, item 5): a unit's bond SIP stack relays each call's media
over one of two voice paths (VLAN 101, VLAN 102). Both up: new calls are shared. One
cut: new calls take the other; calls already on the lost path are not moved (their
media stop, their signalling goes on), as the seed says."""
from __future__ import annotations

import time

from harness.faults import NetworkCut, placement, unit_status, wait_for
from harness.media import MediaCapture
from harness.sipp import DockerExecutor, SippLoad, SippUas
from harness.testbed import log


def by_path(tb):
    return dict(unit_status(tb, "tmedia-1").get("calls_by_voice_path") or {})


def delta(after, before):
    return {p: after.get(p, 0) - before.get(p, 0) for p in ("101", "102")}


def load(tb, name, **kw):
    d = tb.dir / "sipp"
    return SippLoad(DockerExecutor(tb.container("sipp-uac"), d, "/work"), f"{tb.ip('tmedia-1', 'voip')}:5060",
                    tb.ip("sipp-uac", "voip"), name=name, **kw)


def far_end(tb, name):
    return SippUas(DockerExecutor(tb.container("sipp-uas"), tb.dir / "sipp", "/work"), tb.ip("sipp-uas", "voip"),
                   name=name)


def completed(calls):
    return [c for c in calls if c.outcome == "completed" and c.far_bye]


def test_both_paths_up_new_calls_are_shared(testbed):
    paths = unit_status(testbed, "tmedia-1")["voice_paths"]
    assert paths == {"101": "up", "102": "up"}, paths
    before = by_path(testbed)
    uac = load(testbed, "vp-share", rate=10, hold_s=1, calls=40)
    with far_end(testbed, "vp-share-uas") as uas:
        with uac:
            assert uac.wait()
        uas.stop(grace_s=5)
    assert len(completed(uac.calls(far_end=uas))) == 40
    split = wait_for(lambda: (d := delta(by_path(testbed), before)) and sum(d.values()) == 40 and d, 10,
                     "the unit to count 40 answered calls")
    log(f"voice path load split over 40 calls: path 101 {split['101']}, path 102 {split['102']}")
    assert split["101"] >= 8 and split["102"] >= 8, f"not shared: {split}"


def test_a_lost_path_new_calls_take_the_other_active_calls_are_not_moved(testbed, faults):
    ips = {p: testbed.ip("tmedia-1", f"vlan{p}") for p in ("101", "102")}
    cap = MediaCapture(testbed, "sipp-uas", list(ips.values()), "voice-paths")
    before = by_path(testbed)
    long = load(testbed, "vp-long", rate=10, hold_s=6, calls=20)
    # the path is lost at the unit: nothing crosses its VLAN 101 port either way
    cut = NetworkCut(testbed, host=placement(testbed)["tmedia-1"], ifaces=("vx101",))
    with far_end(testbed, "vp-long-uas") as uas, cap:
        with long:
            wait_for(lambda: len([c for c in long.calls() if c.answer_t]) == 20, 15, "20 calls answered")
            on_path = wait_for(lambda: (d := delta(by_path(testbed), before)) and sum(d.values()) == 20 and d,
                               5, "the unit to count the 20 answered calls")
            faults.inject(cut)
            wait_for(lambda: unit_status(testbed, "tmedia-1")["voice_paths"].get("101") == "down", 5,
                     "path 101 seen down")
            detected = time.time()
            mid = by_path(testbed)
            # a second caller beside the first: its own SIP, media and control ports
            after_cut = load(testbed, "vp-after", rate=10, hold_s=1, calls=10, port=5062,
                             media_port=6200, control_port=8890)
            with after_cut:
                assert after_cut.wait()
            assert long.wait()
        uas.stop(grace_s=5)
    new = delta(by_path(testbed), mid)
    log(f"voice path 101 cut: seen down {detected - cut.injected_at:.2f} s after the cut; "
        f"calls on it before the cut {on_path['101']}, new calls after: {new}")
    assert on_path["101"] > 0 and on_path["102"] > 0
    assert new == {"101": 0, "102": 10}, new
    assert len(completed(after_cut.calls(far_end=uas))) == 10
    # established calls: signalling untouched (they end with BYE/200) whatever their path
    assert len(completed(long.calls(far_end=uas))) == 20
    # not moved: the media of path 101 stopped at the cut and never went over to 102
    streams = cap.streams()
    lost = [s for s in streams if s.key[0] == ips["101"] and s.times[0] < cut.injected_at]
    assert len(lost) == on_path["101"], (len(lost), on_path)
    assert all(s.times[-1] < cut.injected_at + 0.5 for s in lost), "media on the lost path went on"
    moved = [s for s in streams if s.key[0] == ips["102"] and cut.injected_at < s.times[0] < detected]
    assert not moved, f"{len(moved)} media streams started on path 102 before any new call"


FLOOD = """
import socket, sys, time
pairs = [p.split('>') for p in sys.argv[1].split(',')]
socks = []
for src, dst in pairs:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    socks.append((s, dst))
end, sent = time.monotonic() + float(sys.argv[2]), 0
while time.monotonic() < end:
    for s, dst in socks:
        for port in range(20000, 20010):          # nobody listens: the peer answers ICMP
            try:
                s.sendto(b'x' * 40, (dst, port))
                sent += 1
            except OSError:
                pass
    time.sleep(0.01)
print(sent)
"""


def test_a_busy_peer_does_not_take_a_voice_path_down(testbed):
    """A peer's kernel rate-limits its ICMP errors per source (one a second): with the
    unit's traffic to closed ports on the peer (here a flood of about 2000 datagrams a
    second from both path addresses), a probe that waits for ICMP hears nothing and the
    paths flap. The ARP probes go on being answered."""
    before = unit_status(testbed, "tmedia-1").get("voice_path_downs") or {}
    pairs = ",".join(f"{testbed.ip('tmedia-1', f'vlan{p}')}>{testbed.ip(peer, f'vlan{p}')}"
                     for p in ("101", "102") for peer in ("sipp-uac", "sipp-uas"))
    board = testbed.container(placement(testbed)["tmedia-1"])
    res = board.exec_run(["python3", "-c", FLOOD, pairs, "4"])
    assert res.exit_code == 0, res.output
    sent = int(res.output.split()[-1])
    status = unit_status(testbed, "tmedia-1")
    downs = status.get("voice_path_downs") or {}
    log(f"{sent} datagrams to closed peer ports in 4 s; voice path downs before {before}, after {downs}")
    assert sent > 2000
    assert status["voice_paths"] == {"101": "up", "102": "up"}
    assert set(downs) == {"101", "102"} and downs == {p: before.get(p, 0) for p in downs}, (before, downs)
