"""The ports' ARP monitor rule (emulator/tmedia/port_probe.py), with a fake clock."""
from emulator.tmedia.port_probe import ProbeState, is_reply_to, probe_frame, probe_mac


class Clock:
    t = 100.0

    def __call__(self):
        return self.t


def test_rule_2_alive_while_replies_come_dead_after_the_window():
    clk = Clock()
    st = ProbeState(("vp1", "vp2"), clock=clk, window=0.5)
    assert st.alive("vp1") and st.alive("vp2")          # grace at start
    clk.t += 0.3
    st.replied("vp1")
    clk.t += 0.4                                          # vp2 never answered
    assert st.alive("vp1") and not st.alive("vp2")
    clk.t += 0.2
    assert not st.alive("vp1")                            # 0.6 s since its last reply
    st.link_back("vp1")
    assert st.alive("vp1")                                # a returning link gets its grace
    clk.t += 0.6
    assert not st.alive("vp1")


def test_probe_frame_is_an_rfc5227_probe_and_replies_are_matched_by_probe_mac():
    mac = probe_mac("tmedia-1", "vp1")
    assert mac != probe_mac("tmedia-1", "vp2") and mac.startswith("02:")
    f = probe_frame(mac, "172.28.3.2")
    assert len(f) == 60 and f[12:14] == b"\x08\x06" and f[20:22] == b"\x00\x01"
    assert f[28:32] == b"\0\0\0\0"                         # sender IP 0.0.0.0
    m = bytes.fromhex(mac.replace(":", ""))
    reply = b"\x00" * 12 + b"\x08\x06" + b"\x00\x01\x08\x00\x06\x04\x00\x02" + b"\x11" * 10 + m + b"\0" * 4
    assert is_reply_to(reply, mac)
    assert not is_reply_to(reply, probe_mac("tmedia-1", "vp2"))
    assert not is_reply_to(f, mac)                         # our own request is no reply
