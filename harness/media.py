"""Media measured on the wire: tcpdump in a SIPp container captures the RTP a unit relays
to it, scapy reads the capture, and each call's stream (the relay's source port) gets
its packet count and its largest gap between two packets (the media interruption).

SIPp plays g711a.pcap (a packet every 20 ms) and the far end echoes it, so a stream's
gaps above ~20 ms are loss or delay; `around(t)` keeps the streams that ran across
an instant (a fault) so the interruption is measured where it happened.

The relay reuses a port soon after a call ends, and every call plays the same pcap
(same SSRC), so one flow can hold several calls one after the other: a flow is cut
into streams where the RTP sequence number goes back (the pcap starting over), never
where it only jumps ahead (packets lost inside one call).
"""
from __future__ import annotations

import socket
from dataclasses import dataclass

from . import verdict as vd
from .util import wait_for
from .testbed import Testbed, log

# The largest RTP gap a call kept across a fault may show, per fault kind (ms). Measured
# on this project's 2-core CI machine, over the whole matrix: the largest single gap of
# any operation was 35.6 to 88.1 ms (median per operation 34.8 to 71.2 ms; up to 107 ms
# median while MariaDB restarts and takes the CPU); a bond port failover 60 ms median,
# 91 ms max (15 calls x 3 runs). Host and application faults do not touch the media
# path at all, so their bound is the machine's noise: 2.5 x the worst seen. A fault on
# the media path (a bond port) gets the same, its measured failover being inside it.
# A silent port (link up, frames dropped) is seen by the ARP monitor: its window (500 ms)
# plus the failover, plus the same noise.
GAP_BOUND_MS = {"default": 250.0, "bond_port_down": 250.0, "bond_port_silent": 800.0}
# calls that must carry media across the fault: answered this long before it, and
# hung up this long after it (a stream needs packets on both sides of the instant)
MARGIN_S = 1.0


def gap_bound_ms(kind: str) -> float:
    return GAP_BOUND_MS.get(kind, GAP_BOUND_MS["default"])


def unit_media_ips(tb: Testbed, unit: str = "tmedia-1") -> list[str]:
    """Where a unit's media can come from: its address on the bond and its voice paths."""
    return [tb.ip(unit, n) for n in ("voip", "vlan101", "vlan102")]


def units_media_ips(tb: Testbed, units) -> list[str]:
    return [ip for u in units for ip in unit_media_ips(tb, u)]


def summary(streams: list, t: float) -> dict:
    """The media of the calls running across an instant: how many streams, their fewest
    packets and their largest gap (and the median of the per-stream largest gaps)."""
    across = [s for s in streams if s.spans(t)]
    gaps = sorted(s.largest_gap_s for s in across)
    return {"streams": len(across),
            "min_packets": min((s.packets for s in across), default=0),
            "largest_gap_ms": round(gaps[-1] * 1000, 1) if gaps else None,
            "median_largest_gap_ms": round(gaps[len(gaps) // 2] * 1000, 1) if gaps else None}


def judge(streams: list, t: float, kept_calls: int, bound_ms: float) -> vd.SubCheck:
    """Media of the calls kept across the fault at `t`: every one of the `kept_calls`
    (established, kept, with MARGIN_S on both sides) has a stream with packets after
    the fault, and no stream's largest gap exceeds `bound_ms`."""
    m = summary(streams, t)
    data = {**m, "kept_calls": kept_calls, "bound_ms": bound_ms}
    if kept_calls == 0:
        return vd.unknown("media", "no established call kept across the fault: nothing to "
                                   "measure", **data)
    if m["streams"] < kept_calls:
        return vd.failed("media", f"{m['streams']} RTP streams run across the fault, but "
                                  f"{kept_calls} kept calls should: media stopped on "
                                  f"{kept_calls - m['streams']}", **data)
    if m["largest_gap_ms"] > bound_ms:
        return vd.failed("media", f"largest RTP gap {m['largest_gap_ms']:.0f} ms > "
                                  f"{bound_ms:.0f} ms", **data)
    return vd.ok("media", f"{m['streams']} streams across the fault (for {kept_calls} kept "
                          f"calls), largest gap {m['largest_gap_ms']:.0f} ms <= "
                          f"{bound_ms:.0f} ms", **data)


def kept_across(calls, t: float, lost: frozenset = frozenset()) -> int:
    """How many calls must show media across `t` (see MARGIN_S)."""
    return sum(1 for c in calls if c.call_id not in lost and c.answer_t is not None
               and c.answer_t < t - MARGIN_S and c.bye_sent_t is not None
               and c.bye_sent_t > t + MARGIN_S and c.outcome == "completed")


@dataclass
class Stream:
    key: tuple              # (src ip, src port, dst ip, dst port)
    times: list

    @property
    def packets(self) -> int:
        return len(self.times)

    @property
    def largest_gap_s(self) -> float:
        return max((b - a for a, b in zip(self.times, self.times[1:])), default=0.0)

    def spans(self, t: float) -> bool:
        return bool(self.times) and self.times[0] < t < self.times[-1]


def rtp_seq(payload: bytes):
    """The RTP sequence number of a UDP payload, None when it is not RTP version 2."""
    if len(payload) < 12 or payload[0] >> 6 != 2:
        return None
    return int.from_bytes(payload[2:4], "big")


# where the IPv4 header starts, and where the frame says IPv4 (offset, value), per pcap
# link type: Ethernet, Linux cooked v1 (tcpdump -i any) and v2 (newer libpcap)
_LINK = {1: (14, 12), 113: (16, 14), 276: (20, 0)}


def udp_datagrams(path):
    """(time, (src, sport, dst, dport), payload) of each IPv4/UDP packet of a capture.
    scapy's RawPcapReader reads the file (and its link type); only the two fixed headers
    are unpacked here: scapy's full dissection took 5.6 s for the 20000 packets of one
    operation, this 0.09 s (tests/test_media.py checks both read the same)."""
    from scapy.utils import RawPcapReader
    with RawPcapReader(str(path)) as reader:
        link = reader.linktype
        if link not in _LINK:
            raise ValueError(f"{path}: pcap link type {link} not handled")
        ip_at, type_at = _LINK[link]
        for data, meta in reader:
            if data[type_at:type_at + 2] != b"\x08\x00" or len(data) < ip_at + 28:
                continue
            ip = data[ip_at:]
            ihl = (ip[0] & 0x0F) * 4
            if ip[0] >> 4 != 4 or ip[9] != 17 or len(ip) < ihl + 8:
                continue
            udp = ip[ihl:]
            key = (socket.inet_ntoa(ip[12:16]), int.from_bytes(udp[0:2], "big"),
                   socket.inet_ntoa(ip[16:20]), int.from_bytes(udp[2:4], "big"))
            t = meta.sec + meta.usec / (1e9 if getattr(reader, "nano", False) else 1e6)
            yield t, key, udp[8:int.from_bytes(udp[4:6], "big")]


def split_calls(key: tuple, pkts: list) -> list[Stream]:
    """One flow's (time, seq) packets as the streams of the calls that used it in turn."""
    streams, times, last = [], [], None
    for t, seq in sorted(pkts):
        restarted = (seq is not None and last is not None and seq < last
                     and not (last > 65000 and seq < 536))     # not a wrap-around
        if restarted and times:
            streams.append(Stream(key, times))
            times = []
        times.append(t)
        last = seq if seq is not None else last
    if times:
        streams.append(Stream(key, times))
    return streams


class MediaCapture:
    """RTP from the addresses `src` (not SIP) arriving at `node`, written under the testbed's
    sipp dir. A unit relays media from its voice paths' addresses: give them all."""

    def __init__(self, tb: Testbed, node: str, src, name: str):
        self.tb, self.node, self.name = tb, node, name
        self.src = (src,) if isinstance(src, str) else tuple(src)
        self.file = f"{name}.pcap"
        # written where the agent's SIPp files are (its container's /work, or its work
        # directory when reached over SSH), read here
        self.ex = tb.sipp_executor(node)
        self.path = self.ex.host_dir / self.file

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self) -> None:
        self.path.unlink(missing_ok=True)
        hosts = " or ".join(f"src host {ip}" for ip in self.src)
        # not SIP, not the VXLAN underlay, not the units' voice path probes (discard port)
        flt = f"udp and ({hosts}) and not port 5060 and not port 4789 and not port 9"
        c = self.tb.container(self.node)
        c.exec_run(["mkdir", "-p", str(self.ex.exec_dir)])
        c.exec_run(["tcpdump", "-U", "-n", "-i", "any", "-w", str(self.ex.exec_dir / self.file), flt],
                   detach=True)

        def listening():         # tcpdump writes the file header once it listens
            self.ex.fetch(self.file)
            return self.path.exists() and self.path.stat().st_size >= 24
        wait_for(listening, 10, f"tcpdump to listen on {self.node}")

    def stop(self) -> None:
        c = self.tb.container(self.node)
        c.exec_run(["pkill", "-INT", "-f", f"tcpdump.*{self.file}"])
        # tcpdump writes its last buffer as it exits (-U: packet-buffered already)
        wait_for(lambda: c.exec_run(["pgrep", "-f", f"tcpdump.*{self.file}"]).exit_code != 0, 5,
                 f"tcpdump on {self.node} to exit")
        self.ex.fetch(self.file)

    def streams(self) -> list[Stream]:
        flows: dict[tuple, list] = {}
        for t, key, payload in udp_datagrams(self.path):
            flows.setdefault(key, []).append((t, rtp_seq(payload)))
        out = [s for key, pkts in flows.items() for s in split_calls(key, pkts)]
        log(f"media: {sum(s.packets for s in out)} RTP packets in {len(out)} streams "
            f"({len(flows)} flows) captured on {self.node}")
        return out

    def around(self, t: float) -> list[Stream]:
        return [s for s in self.streams() if s.spans(t)]
