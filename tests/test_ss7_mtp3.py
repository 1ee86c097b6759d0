"""MTP3 over a linkset of two M2PA links (emulator/ss7/mtp3.py): two signalling points
A (listens) and B (connects) over 127.0.0.1 TCP, each link through a Tap that relays and
records the bytes (the wire) and can stall or cut the connection. The traffic is ISUP
Reset Circuit messages built and parsed by pycrate: circuit c goes with SLS c % 16 and
is the (c // 16)-th message of that SLS, so order and uniqueness per SLS can be checked."""
import socket
import struct
from collections import Counter
import threading
import time

import pytest
from pycrate_asn1dir import TCAP_RAW
from pycrate_mobile import ISUP, SCCP

from emulator.ss7 import m2pa, mtp3, snm
from emulator.ss7.mtp3 import SI_ISUP, SI_SCCP, SI_SNM, Linkset, Msu, Port
from ss7_net import thread_errors, wait_for  # noqa: F401 (thread_errors: autouse fixture)

PC_A, PC_B = 1001, 2002
PROVING_S = 0.5


class Tap:
    """A TCP relay in front of one of A's link ports. Each connection through it keeps
    the bytes it forwarded each way; `stall` stops forwarding one way (the bytes are
    dropped, as on a dead path), `cut` resets both sides and, held, refuses new
    connections until `release`."""

    def __init__(self, target_port: int):
        self.target = ("127.0.0.1", target_port)
        self.ls = socket.create_server(("127.0.0.1", 0))
        self.port = self.ls.getsockname()[1]
        self.conns: list[dict] = []
        self.stalled: set[str] = set()
        self.held = False
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True, name="tap").start()

    def _accept(self):
        while True:
            try:
                b, _ = self.ls.accept()
            except OSError:
                return
            if self.held:
                self._reset(b)
                continue
            try:
                a = socket.create_connection(self.target)
            except OSError:
                self._reset(b)
                continue
            c = {"a": a, "b": b, "to_b": bytearray(), "to_a": bytearray()}
            with self.lock:
                self.conns.append(c)
            threading.Thread(target=self._pump, args=(c, a, b, "to_b"), daemon=True).start()
            threading.Thread(target=self._pump, args=(c, b, a, "to_a"), daemon=True).start()

    def _pump(self, c, src, dst, key):
        try:
            while data := src.recv(65536):
                if key in self.stalled:
                    continue
                with self.lock:
                    c[key] += data
                dst.sendall(data)
        except OSError:
            pass

    @staticmethod
    def _reset(s):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()

    def stall(self, direction: str):
        self.stalled.add(direction)

    def cut(self, hold=True):
        self.held = hold
        with self.lock:
            for c in self.conns:
                for k in ("a", "b"):
                    try:
                        self._reset(c[k])
                    except OSError:
                        pass
        self.stalled.clear()

    def release(self):
        self.held = False

    def snm_messages(self):
        """Every network management message on the wire: (direction, name, SLC, value)."""
        out = []
        with self.lock:
            streams = [(k, bytes(c[k])) for c in self.conns for k in ("to_b", "to_a")]
        for direction, stream in streams:
            reader = m2pa.FrameReader()
            for f in reader.feed(stream):         # a cut may leave a partial frame behind
                if f.kind == m2pa.USER_DATA and f.msu is not None:
                    m = mtp3.decode_msu(f.msu)
                    if m.si == SI_SNM:
                        s = snm.decode(m.sif)
                        out.append((direction, s.name, m.sls, s.value))
        return out

    def close(self):
        self.ls.shutdown(socket.SHUT_RDWR)
        self.ls.close()
        self.cut(hold=True)


class Point:
    """A linkset and what its MTP3 delivered: (SLS, CIC, SLC it came on), in order."""

    def __init__(self):
        self.ls: Linkset = None
        self.got, self.other = [], []

    def deliver(self, m: Msu, slc: int):
        if m.si == SI_ISUP:
            self.got.append((m, slc))
        else:
            self.other.append((m, slc))

    def cics(self):
        out = []
        for m, slc in list(self.got):
            msg, err = ISUP.parse_ISUP(m.sif)
            assert err == 0, err
            out.append((m.sls, msg["CIC"].get_val(), slc))
        return out


@pytest.fixture
def pair():
    """A and B in service over two links, each through its Tap; everything stopped after."""
    a = Point()
    a.ls = Linkset("A", PC_A, PC_B, [Port(0, listen=("127.0.0.1", 0)),
                                     Port(1, listen=("127.0.0.1", 0))],
                   proving_s=PROVING_S, on_message=a.deliver, log=lambda _m: None).start()
    taps = [Tap(a.ls.listen_port(0)), Tap(a.ls.listen_port(1))]
    b = Point()
    b.ls = Linkset("B", PC_B, PC_A, [Port(0, connect=("127.0.0.1", taps[0].port)),
                                     Port(1, connect=("127.0.0.1", taps[1].port))],
                   proving_s=PROVING_S, on_message=b.deliver, log=lambda _m: None).start()
    try:
        wait_for(lambda: a.ls.settled() and b.ls.settled(), 10, "both linksets settled")
        yield a, b, taps
    finally:
        b.ls.stop()
        a.ls.stop()
        for t in taps:
            t.close()


class Sender(threading.Thread):
    """Reset Circuit for circuits first..first+n-1 at `rate` a second (paced, so the
    traffic runs across what the test does to the links)."""

    def __init__(self, point: Point, first: int, n: int, rate: float):
        super().__init__(daemon=True)
        self.point, self.cics, self.period = point, range(first, first + n), 1.0 / rate

    def run(self):
        start = time.monotonic()
        for i, cic in enumerate(self.cics):
            delay = start + i * self.period - time.monotonic()
            if delay > 0:
                time.sleep(delay)                 # the pace of the traffic, not a wait
            sif = ISUP.ResetCircuit(val={"CIC": cic}).to_bytes()
            self.point.ls.send(SI_ISUP, mtp3.isup_sls(sif), sif)


def check_once_in_order(receiver: Point, cics):
    """Every circuit's message arrived exactly once, and in order within each SLS."""
    got = receiver.cics()
    assert sorted(c for _, c, _ in got) == sorted(cics), "lost or duplicated MSUs"
    for sls in range(16):
        seq = [c for s, c, _ in got if s == sls]
        assert seq == sorted(seq), f"SLS {sls} out of order"
    assert all(s == c % 16 for s, c, _ in got)
    return got


# -- codecs -----------------------------------------------------------------------------

def test_the_routing_label_is_q704s_and_odd_point_codes_survive():
    b = mtp3.encode_msu(Msu(SI_ISUP, 2, 4321, 1234, 7, b"\x01\x00\x12"))
    # SIO: NI 2, SI 5; DPC 1234 (14 bits), OPC 4321 (14 bits), SLS 7, least significant first
    label = 1234 | 4321 << 14 | 7 << 28
    assert b == bytes([0x85]) + label.to_bytes(4, "little") + b"\x01\x00\x12"
    assert mtp3.decode_msu(b) == Msu(SI_ISUP, 2, 4321, 1234, 7, b"\x01\x00\x12")
    for opc in (1, 3, 0x3FFF):
        assert mtp3.decode_msu(mtp3.encode_msu(Msu(3, 0, opc, 5, 15, b""))).opc == opc
    with pytest.raises(mtp3.Mtp3Error, match="OPC 16384 out of range"):
        mtp3.encode_msu(Msu(SI_ISUP, 2, 1 << 14, 1, 0, b""))
    with pytest.raises(mtp3.Mtp3Error, match="shorter than SIO and routing label"):
        mtp3.decode_msu(b"\x85\x01\x02")


def test_isup_sls_is_the_cics_low_bits():
    assert mtp3.isup_sls(ISUP.ResetCircuit(val={"CIC": 0x123}).to_bytes()) == 3
    with pytest.raises(mtp3.Mtp3Error):
        mtp3.isup_sls(b"\x01\x00\xee")


@pytest.mark.parametrize("msg, wire", [
    (snm.SnmMessage("COO", 5), "1105"), (snm.SnmMessage("COA", 127), "217f"),
    (snm.SnmMessage("XCO", 0x123456), "31563412"), (snm.SnmMessage("XCA", 1), "41010000"),
    (snm.SnmMessage("CBD", 200), "51c8"), (snm.SnmMessage("CBA", 0), "6100"),
])
def test_changeover_and_changeback_messages_are_q704s(msg, wire):
    assert snm.encode(msg).hex() == wire
    assert snm.decode(bytes.fromhex(wire)) == msg


@pytest.mark.parametrize("bad, error", [
    (b"", "empty"), (b"\x12\x00", "H0=2"), (b"\x71\x00", "H1=7"),
    (b"\x11", "COO of 1 octets, expected 2"), (b"\x31\x00\x00", "XCO of 3 octets"),
])
def test_malformed_network_management_messages_are_rejected(bad, error):
    with pytest.raises(snm.SnmError, match=error):
        snm.decode(bad)
    with pytest.raises(snm.SnmError, match="out of range"):
        snm.encode(snm.SnmMessage("COO", 128))


# -- a linkset --------------------------------------------------------------------------

def test_both_links_align_and_prove_before_carrying_traffic(pair):
    a, b, _ = pair
    for point in (a, b):
        for slc in (0, 1):
            link = point.ls.links[slc]
            assert [s for _, s in link.states] == \
                ["out_of_service", "aligning", "proving", "in_service"]
            (t_prove, _), (t_up, _) = link.states[2], link.states[3]
            assert t_up - t_prove >= PROVING_S
            assert point.ls.status()["links"][slc]["state"] == "in_service"


def test_load_is_shared_by_sls_one_link_each(pair):
    a, b, _ = pair
    assert [a.ls.route[s] for s in range(16)] == [s // 8 for s in range(16)]
    before = {slc: v["traffic_tx"] for slc, v in a.ls.status()["links"].items()}
    for cic in range(16 * 20):
        sif = ISUP.ResetCircuit(val={"CIC": cic}).to_bytes()
        a.ls.send(SI_ISUP, mtp3.isup_sls(sif), sif)
    wait_for(lambda: len(b.got) == 320, 10, "320 MSUs at B")
    got = check_once_in_order(b, range(320))
    assert all(slc == sls // 8 for sls, _, slc in got)       # each SLS on its home link
    st = a.ls.status()["links"]
    assert [st[s]["traffic_tx"] - before[s] for s in (0, 1)] == [160, 160]
    assert [b.ls.status()["links"][s]["traffic_rx"] for s in (0, 1)] == [160, 160]


def test_changeover_retrieves_the_msus_in_flight_none_lost_none_twice(pair):
    a, b, taps = pair
    # A's pace leaves its window on link 0 room for the steps below: with B's
    # acknowledgements stalled, 127 unacknowledged MSUs at about 125 a second on link 0
    # take a second (at 1000 a second it was a quarter of one, and a busy machine's
    # pause between two steps let the window fill: no MSU was left to lose in flight)
    n = 1000
    ab, ba = Sender(a, 0, n, rate=250), Sender(b, 2000, 400, rate=250)
    ab.start()
    ba.start()
    wait_for(lambda: len(b.got) >= 300, 10, "traffic flowing")
    link0, b_link0 = a.ls.links[0], b.ls.links[0]
    taps[0].stall("to_a")            # B's acknowledgements on link 0 no longer reach A:
    acked_at_most = b_link0.status()["accepted"]        # so A never learns beyond this
    wait_for(lambda: (b_link0.status()["accepted"] - acked_at_most) % 2**24 >= 5,
             5, "MSUs B accepted and A does not know it")
    taps[0].stall("to_b")            # and A's MSUs no longer reach B
    sent = link0.status()["fsn_tx"]
    wait_for(lambda: (link0.status()["fsn_tx"] - sent) % 2**24 >= 10, 5, "MSUs lost in flight")
    taps[0].cut()                    # then link 0's connection is reset, both ends
    wait_for(lambda: a.ls.changeovers and b.ls.changeovers, 5, "changeover at both ends")
    ab.join(15)
    ba.join(15)
    wait_for(lambda: len(b.got) >= n and len(a.got) >= 400, 10, "every MSU delivered")
    check_once_in_order(b, range(n))
    check_once_in_order(a, range(2000, 2400))
    co_a, co_b = a.ls.changeovers[0], b.ls.changeovers[0]
    assert co_a["slc"] == co_b["slc"] == 0 and co_a["via"] == co_b["via"] == 1
    assert co_a["sls"] == list(range(0, 8))               # link 0's block of SLSs
    # COO and COA about link 0 went on link 1's wire
    wire = [m for m in taps[1].snm_messages() if m[2] == 0]
    assert {"COO", "COA"} <= {name for _, name, _, _ in wire}, wire
    # A sent again exactly what followed the FSN B's COO/COA said it accepted last on
    # link 0: not the MSUs B accepted whose acknowledgement the stall dropped
    b_fsn = {value for d, name, _, value in wire if d == "to_a" and name in ("COO", "COA")}
    assert len(b_fsn) == 1, wire
    st = link0.status()              # the failed link's sequence numbers, kept
    unacknowledged = (st["fsn_tx"] - st["acked"]) % 2**24
    assert st["state"] == m2pa.FAILED and unacknowledged < m2pa.WINDOW
    expected = (st["fsn_tx"] - b_fsn.pop()) % 128
    assert 10 <= co_a["retrieved"] == expected <= unacknowledged - 5
    assert co_a["discarded"] == 0
    assert a.ls.links[0].state != m2pa.IN_SERVICE            # held down by the Tap
    assert all(r == 1 for r in a.ls.status()["sls"].values())
    assert a.ls.status()["errors"] == {} and b.ls.status()["errors"] == {}
    for co in (co_a, co_b):
        assert 0 <= co["seconds"] < mtp3.T2_S and co["by"] in ("COO", "COA")
    assert a.ls.status()["last_changeover_s"] == co_a["seconds"]
    print(f"changeover A {co_a['seconds'] * 1000:.1f} ms ({co_a['retrieved']} retrieved, "
          f"{co_a['held']} held), B {co_b['seconds'] * 1000:.1f} ms")


def test_no_answer_to_coo_diverts_by_time_and_discards_the_unacknowledged(pair):
    a, b, taps = pair
    real = b.ls._send_snm                         # B neither orders nor acknowledges
    b.ls._send_snm = lambda via, about, m: None if m.name in ("COO", "COA") else real(via, about, m)
    a.ls.t2_s = 0.3
    n = 1000
    ab = Sender(a, 0, n, rate=1000)
    ab.start()
    wait_for(lambda: len(b.got) >= 200, 10, "traffic flowing")
    link0 = a.ls.links[0]
    taps[0].stall("to_b")
    sent = link0.status()["fsn_tx"]
    wait_for(lambda: (link0.status()["fsn_tx"] - sent) % 2**24 >= 10, 5, "MSUs lost in flight")
    taps[0].cut()
    wait_for(lambda: a.ls.changeovers, 5, "the changeover")
    co = a.ls.changeovers[0]
    assert co["by"] == "timer" and co["seconds"] >= 0.3 and co["retrieved"] == 0
    assert co["discarded"] >= 10
    ab.join(15)
    wait_for(lambda: len(b.got) >= n - co["discarded"], 10, "the rest delivered")
    got = [c for _, c, _ in b.cics()]
    # at most the discarded are lost: an acknowledgement still on the wire when the link
    # was cut leaves A counting as discarded an MSU that B had (seen under load)
    assert len(got) == len(set(got)) >= n - co["discarded"]
    for sls in range(16):
        seq = [c for c in got if c % 16 == sls]
        assert seq == sorted(seq)
    assert "COA" not in a.ls.snm_rx and a.ls.snm_tx["COO"] == 1


def test_changeback_when_the_link_returns_and_traffic_shares_again(pair):
    a, b, taps = pair
    n = 1600
    ab = Sender(a, 0, n, rate=800)
    ab.start()
    wait_for(lambda: len(b.got) >= 200, 10, "traffic flowing")
    startup = taps[1].snm_messages()     # the changebacks of the start, if link 1 was first
    taps[0].cut()
    wait_for(lambda: a.ls.changeovers, 5, "the changeover")
    at_changeover = len(b.got)
    wait_for(lambda: len(b.got) >= at_changeover + 200, 10, "traffic on link 1 alone")
    assert all(slc == 1 for _, slc in b.got[at_changeover:])
    taps[0].release()                                        # link 0 may come back
    wait_for(lambda: a.ls.changebacks and b.ls.changebacks
             and a.ls.settled() and b.ls.settled(), 10, "changeback at both ends")
    back_at = len(b.got)
    ab.join(15)
    wait_for(lambda: len(b.got) >= n, 10, "every MSU delivered")
    got = check_once_in_order(b, range(n))
    after = got[back_at:]
    assert {slc for _, _, slc in after} == {0, 1}             # both links carry again
    assert all(slc == sls // 8 for sls, _, slc in after)      # each SLS on its home again
    cb = [c for c in a.ls.changebacks if c["slc"] == 0][-1]
    assert cb["from"] == 1 and cb["by"] == "CBA" and cb["sls"] == list(range(0, 8))
    # A's CBD went on link 1 behind the diverted traffic, B's CBA came back, with its code
    wire = Counter(taps[1].snm_messages()) - Counter(startup)
    assert wire[("to_b", "CBD", 0, cb["code"])] == wire[("to_a", "CBA", 0, cb["code"])] == 1, wire
    assert a.ls.status()["errors"] == {} and b.ls.status()["errors"] == {}
    print(f"changeover {a.ls.changeovers[-1]['seconds'] * 1000:.1f} ms, "
          f"changeback {cb['seconds'] * 1000:.1f} ms")


def test_an_sccp_unitdata_with_a_tcap_begin_reaches_the_far_sccp(pair):
    a, b, _ = pair
    tc = TCAP_RAW.TCAP_Messages.TCAP_Message
    tc.set_val(("begin", {"otid": b"\x00\x00\x00\x2a", "components": [
        ("basicROS", ("invoke", {"invokeId": ("present", 1), "opcode": ("local", 45)}))]}))
    begin = tc.to_ber()
    addr = {"AddrInd": {"RoutingInd": 1, "GTInd": 0, "SSNInd": 1, "PCInd": 1}}
    udt = SCCP.SCCPUnitData(val={
        "ProtocolClass": {"Handling": 0, "Class": 0},
        "CalledPartyAddr": {"Value": {**addr, "PC": PC_B, "SSN": 6}},
        "CallingPartyAddr": {"Value": {**addr, "PC": PC_A, "SSN": 8}},
        "Data": {"Value": begin}}).to_bytes()
    a.ls.send(SI_SCCP, 9, udt)
    wait_for(lambda: b.other, 5, "the UDT at B")
    m, slc = b.other[0]
    assert (m.si, m.opc, m.dpc, m.sls, slc) == (SI_SCCP, PC_A, PC_B, 9, 1)
    msg, err = SCCP.parse_SCCP(m.sif)
    assert err == 0 and msg["CalledPartyAddr"]["Value"]["SSN"].get_val() == 6
    tc.from_ber(msg["Data"]["Value"].get_val())
    kind, body = tc.get_val()
    assert kind == "begin" and body["otid"] == b"\x00\x00\x00\x2a"
    assert b.got == []


def test_a_linkset_needs_distinct_link_codes_and_one_way_to_connect():
    with pytest.raises(ValueError, match="distinct SLCs"):
        Linkset("X", 1, 2, [Port(0, listen=("127.0.0.1", 0)), Port(0, listen=("127.0.0.1", 0))])
    with pytest.raises(ValueError, match="either listens or connects"):
        Linkset("X", 1, 2, [Port(0, listen=("127.0.0.1", 0), connect=("127.0.0.1", 1))])
    with pytest.raises(ValueError, match="not an adopted port"):      # Port(0): adopted only
        Linkset("X", 1, 2, [Port(0, listen=("127.0.0.1", 0))]).adopt(0, object())
    with pytest.raises(ValueError, match="MTP3's own"):
        Linkset("X", 1, 2, [Port(0, listen=("127.0.0.1", 0))]).send(SI_SNM, 0, b"\x11\x00")
