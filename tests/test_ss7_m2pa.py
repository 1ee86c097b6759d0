"""M2PA over TCP (emulator/ss7/m2pa.py): the frames on the wire, the stream parser, and
a Link against a far end the test plays frame by frame over a 127.0.0.1 connection."""
import socket
import struct

import pytest

from emulator.ss7 import m2pa
from emulator.ss7.m2pa import (ALIGNMENT, OUT_OF_SERVICE, PROCESSOR_OUTAGE, PROVING_NORMAL,
                               READY, FrameReader, M2PAError, decode, encode, link_status,
                               user_data)
from ss7_net import thread_errors, wait_for  # noqa: F401 (thread_errors: autouse fixture)

NONE = m2pa.SEQ_MOD - 1          # the sequence numbers' start: nothing sent or received


# -- frames -------------------------------------------------------------------------

def test_user_data_and_link_status_are_rfc4165_frames():
    msu = bytes.fromhex("85d2443874") + b"isup"
    b = encode(user_data(NONE, 0, msu))
    #        version spare class type | length  | unused BSN | unused FSN | PRI | MSU
    assert b == bytes([1, 0, 11, 1]) + struct.pack("!I", 16 + 1 + len(msu)) + \
        b"\x00\xff\xff\xff" + b"\x00\x00\x00\x00" + b"\x00" + msu
    assert decode(b) == user_data(NONE, 0, msu)
    # the State is 32 bits (RFC 4165 2.3.2): length 20
    b = encode(link_status(7, 0xABCDEF, READY))
    assert b == bytes([1, 0, 11, 2, 0, 0, 0, 20, 0, 0, 0, 7, 0, 0xAB, 0xCD, 0xEF, 0, 0, 0, 4])
    assert decode(b) == link_status(7, 0xABCDEF, READY)
    # an empty User Data (an acknowledgement) has no data field at all
    ack = encode(user_data(5, 9, None))
    assert len(ack) == 16 and decode(ack) == user_data(5, 9, None)
    # the priority is the data field's two high bits
    b = encode(user_data(1, 2, b"\x03x", priority=3))
    assert b[16] == 0xC0 and decode(b).priority == 3
    # sequence numbers are sent modulo 2**24
    assert decode(encode(user_data(m2pa.SEQ_MOD + 4, -1, b"\x05x"))).bsn == 4


def test_a_link_status_with_filler_decodes():
    b = bytes([1, 0, 11, 2, 0, 0, 0, 24]) + bytes(8) + b"\x00\x00\x00\x01" + b"fill"
    assert decode(b).state == ALIGNMENT


def test_the_stream_parser_takes_frames_in_any_read_sizes():
    frames = [link_status(NONE, NONE, ALIGNMENT)] + \
             [user_data(i, i, bytes([5]) + bytes(range(i % 50))) for i in range(1, 40)] + \
             [user_data(3, 3, None)]
    stream = b"".join(encode(f) for f in frames)
    for size in (1, 3, 7, 16, 17, 100, len(stream)):
        r, out = FrameReader(), []
        for i in range(0, len(stream), size):
            out += r.feed(stream[i:i + size])
        assert out == frames, size
    r = FrameReader()
    assert list(r.feed(stream[:10])) == []           # a header alone is no frame yet


def _frame(version=1, cls=11, typ=1, length=None, body=b"\x00\x05xy"):
    body = bytes(8) + body
    length = 8 + len(body) if length is None else length
    return bytes([version, 0, cls, typ]) + struct.pack("!I", length) + body


@pytest.mark.parametrize("bad, error", [
    (_frame(version=2), "version 2"),
    (_frame(cls=1), "message class 1"),
    (_frame(typ=3), "message type 3"),
    (_frame(length=12), "length 12 out of range"),
    (_frame(length=1 << 30), "length 1073741824 out of range"),     # no wait for 1 GB
    (_frame(typ=2, body=b"\x00\x00"), "length 18 out of range 20"),
    (_frame(typ=2, body=b"\x00\x00\x00\x0a"), "unknown link state 10"),
    (_frame(body=b"\x00"), "priority octet and no MSU"),
])
def test_malformed_frames_are_rejected_with_the_reason(bad, error):
    good = encode(user_data(1, 1, b"\x05ok"))
    r, out = FrameReader(), []
    with pytest.raises(M2PAError, match=error):
        for f in r.feed(good + bad + good):
            out.append(f)
    assert out == [decode(good)]                     # what came before it was delivered


# -- a Link against a far end played by the test ------------------------------------

class Peer:
    """The far end, frame by frame, with the module's codec."""

    def __init__(self, sock):
        self.sock, self.reader, self.pending = sock, FrameReader(), []

    def send(self, *frames):
        self.sock.sendall(b"".join(encode(f) for f in frames))

    def next(self, timeout=3.0):
        self.sock.settimeout(timeout)
        while not self.pending:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("the link closed the connection")
            self.pending += self.reader.feed(data)
        return self.pending.pop(0)

    def reset(self):
        """Close with RST, as a cut connection."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


@pytest.fixture
def connected():
    """A Link on one end of a 127.0.0.1 TCP connection, a Peer on the other."""
    made = []

    def make(**kw):
        with socket.create_server(("127.0.0.1", 0)) as ls:
            c = socket.create_connection(ls.getsockname())
            s, _ = ls.accept()
        got = []
        link = m2pa.Link(c, "t", on_msu=lambda _l, msu: got.append(msu), **kw)
        made.append((link, s))
        return link, Peer(s), got
    yield make
    for link, s in made:
        link.stop()
        s.close()


def align(link, peer):
    """Play the peer's side of alignment and proving; the link ends in service."""
    link.start()
    assert peer.next() == link_status(NONE, NONE, ALIGNMENT)
    peer.send(link_status(NONE, NONE, ALIGNMENT))
    assert peer.next() == link_status(NONE, NONE, PROVING_NORMAL)
    peer.send(link_status(NONE, NONE, PROVING_NORMAL), link_status(NONE, NONE, READY))
    assert peer.next() == link_status(NONE, NONE, READY)
    wait_for(lambda: link.state == m2pa.IN_SERVICE, 2, "in service")


def test_a_link_aligns_proves_for_its_period_and_numbers_msus(connected):
    link, peer, got = connected(proving_s=0.3)
    align(link, peer)
    states = [s for _, s in link.states]
    assert states == ["out_of_service", "aligning", "proving", "in_service"]
    (t_prove, _), (t_up, _) = link.states[2], link.states[3]
    assert t_up - t_prove >= 0.3                                 # the whole proving period
    for i in range(3):
        link.send(bytes([5]) + b"msu%d" % i)
    assert [peer.next() for _ in range(3)] == \
        [user_data(NONE, i, bytes([5]) + b"msu%d" % i) for i in range(3)]
    assert link.unacknowledged() == 3
    peer.send(user_data(2, 0, b"\x05from peer"))                 # acknowledges all three
    wait_for(lambda: got == [b"\x05from peer"], 2, "the peer's MSU delivered")
    assert link.unacknowledged() == 0
    assert peer.next() == user_data(0, 2, None)                  # an empty User Data acks it
    assert link.status()["accepted"] == 0 and link.status()["acked"] == 2


def test_data_that_stands_for_ready_brings_the_link_in_service(connected):
    link, peer, got = connected(proving_s=0.1)
    link.start()
    peer.next()
    peer.send(link_status(NONE, NONE, ALIGNMENT))
    peer.next()
    assert peer.next() == link_status(NONE, NONE, READY)         # our proving is over
    peer.send(user_data(NONE, 0, b"\x05first"))                  # RFC 4165: Data for Ready
    wait_for(lambda: got == [b"\x05first"], 2, "the MSU delivered")
    assert link.state == m2pa.IN_SERVICE


def test_a_full_window_holds_msus_and_acks_release_them(connected):
    link, peer, _ = connected(proving_s=0.05, window=4)
    align(link, peer)
    for i in range(10):
        link.send(bytes([5, i]))
    sent = [peer.next() for _ in range(4)]
    assert [f.fsn for f in sent] == [0, 1, 2, 3]
    assert link.status()["waiting"] == 6
    peer.send(user_data(1, NONE, None))                           # acks FSN 0 and 1
    assert [peer.next().fsn for _ in range(2)] == [4, 5]
    assert link.status()["waiting"] == 4


def test_a_lost_connection_fails_the_link_and_leaves_the_unacknowledged(connected):
    link, peer, _ = connected(proving_s=0.05)
    align(link, peer)
    msus = [bytes([5]) + b"m%d" % i for i in range(6)]
    for m in msus:
        link.send(m)
    assert [peer.next().fsn for _ in msus] == list(range(6))
    peer.send(user_data(1, NONE, None))          # the peer acknowledges FSN 0 and 1 only
    wait_for(lambda: link.status()["acked"] == 1, 2, "the acknowledgement")
    peer.reset()
    wait_for(lambda: link.state == m2pa.FAILED, 2, "the failure")
    assert "reset" in link.failure or "closed" in link.failure
    assert link.failed_at is not None
    with pytest.raises(m2pa.LinkUnavailable):
        link.send(b"\x05late")
    assert link.retrieve(100, bits=7) is None    # FSN 100 was never the peer's to accept
    # the peer accepted up to FSN 3 (its acknowledgement of 2 and 3 was lost with the
    # connection): a COO says so with the FSN's 7 low bits; 4 and 5 are to send again
    assert link.retrieve(3, bits=7) == msus[4:]
    assert link.retrieve(3, bits=7) == []        # taken once
    assert link.unacknowledged() == 0


def test_retrieval_from_the_last_acknowledged_returns_every_unacknowledged(connected):
    link, peer, _ = connected(proving_s=0.05)
    align(link, peer)
    for i in range(3):
        link.send(bytes([5, i]))
    [peer.next() for _ in range(3)]
    link.fail("test")
    assert link.retrieve(NONE) == [bytes([5, i]) for i in range(3)]


def test_no_alignment_within_the_timeout_fails_the_link(connected):
    link, peer, _ = connected(align_timeout_s=0.3)
    link.start()
    peer.next()                                  # the peer never answers
    wait_for(lambda: link.state == m2pa.FAILED, 2, "the failure")
    assert link.failure == "not aligned within 0.3 s"


@pytest.mark.parametrize("state, reason", [(OUT_OF_SERVICE, "peer sent Out of Service"),
                                           (PROCESSOR_OUTAGE, "remote processor outage")])
def test_the_peer_taking_the_link_down_fails_it(connected, state, reason):
    link, peer, _ = connected(proving_s=0.05)
    align(link, peer)
    peer.send(link_status(NONE, NONE, state))
    wait_for(lambda: link.state == m2pa.FAILED, 2, "the failure")
    assert link.failure == reason


@pytest.mark.parametrize("bad, reason", [
    (_frame(version=2), "protocol error: version 2"),
    (encode(user_data(NONE, 5, b"\x05gap")), "protocol error: FSN 5, expected 0"),
    (encode(user_data(40, NONE, None)), "protocol error: BSN 40 acknowledges an FSN never"),
])
def test_a_malformed_frame_or_sequence_from_the_peer_fails_the_link(connected, bad, reason):
    link, peer, got = connected(proving_s=0.05)
    align(link, peer)
    peer.sock.sendall(bad)
    wait_for(lambda: link.state == m2pa.FAILED, 2, "the failure")
    assert link.failure.startswith(reason)
    assert got == []
    with pytest.raises((EOFError, ConnectionResetError)):
        peer.next(timeout=2)                     # the link closed the connection


def test_two_links_over_tcp_carry_msus_both_ways_in_order():
    with socket.create_server(("127.0.0.1", 0)) as ls:
        c = socket.create_connection(ls.getsockname())
        s, _ = ls.accept()
    got = {"a": [], "b": []}
    a = m2pa.Link(c, "a", proving_s=0.2, on_msu=lambda _l, m: got["a"].append(m))
    b = m2pa.Link(s, "b", proving_s=0.2, on_msu=lambda _l, m: got["b"].append(m))
    try:
        b.start()
        a.start()
        wait_for(lambda: a.state == b.state == m2pa.IN_SERVICE, 3, "both in service")
        for i in range(300):                     # beyond the window of 127
            a.send(bytes([5]) + i.to_bytes(2, "big"))
            b.send(bytes([3]) + i.to_bytes(2, "big"))
        wait_for(lambda: len(got["a"]) == len(got["b"]) == 300, 10, "300 MSUs each way")
        assert got["b"] == [bytes([5]) + i.to_bytes(2, "big") for i in range(300)]
        assert got["a"] == [bytes([3]) + i.to_bytes(2, "big") for i in range(300)]
        wait_for(lambda: a.unacknowledged() == b.unacknowledged() == 0, 3, "all acknowledged")
        b.stop()
        wait_for(lambda: a.state == m2pa.FAILED, 3, "a's failure")
        assert a.failure == "peer sent Out of Service"
        assert b.state == m2pa.OUT
    finally:
        a.stop()
        b.stop()
