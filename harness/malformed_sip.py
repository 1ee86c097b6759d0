"""Malformed SIP, built and sent with scapy from this machine to a unit's SIP port.

Each case is one UDP datagram (an oversized one goes as IP fragments). Replies come
back to a UDP socket bound on this machine's address on the VoIP network (the `.1`
of its subnet: Docker's bridge), named in the Via header; `send_all` returns each
case's first reply line, or None when the unit dropped it.
"""
from __future__ import annotations

import secrets
import socket
import time


def cases(target: str, me: str, port: int) -> dict[str, bytes]:
    def invite(headers: str = "", body: str = "", length: int | None = None, via: bool = True) -> bytes:
        branch = "z9hG4bK" + secrets.token_hex(6)
        body_b = body.encode()
        cl = len(body_b) if length is None else length
        head = (f"INVITE sip:1000@{target}:5060 SIP/2.0\r\n"
                + (f"Via: SIP/2.0/UDP {me}:{port};branch={branch}\r\n" if via else "")
                + f"From: <sip:bad@{me}>;tag={secrets.token_hex(4)}\r\n"
                f"To: <sip:1000@{target}>\r\n"
                f"Call-ID: {secrets.token_hex(8)}@{me}\r\n"
                f"CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContact: <sip:bad@{me}:{port}>\r\n"
                f"{headers}Content-Length: {cl}\r\n\r\n")
        return head.encode() + body_b
    good = invite()
    return {
        "truncated": good[: len(good) // 2],
        "garbage": secrets.token_bytes(700),
        "no request line": good.split(b"\r\n", 1)[1],
        "bad CSeq": invite().replace(b"CSeq: 1 INVITE", b"CSeq: one INVITE"),
        "duplicated To": invite(f"To: <sip:2000@{target}>\r\n"),
        "duplicated Call-ID": invite(f"Call-ID: other-{secrets.token_hex(4)}\r\n"),
        "bad header line": invite("this is not a header\r\n"),
        "Content-Length too long": invite(body="v=0\r\n", length=500),
        "Content-Length negative": invite(body="v=0\r\n", length=-4),
        "oversized": invite("X-Pad: " + "a" * 60000 + "\r\n"),
        "no Via": invite(via=False),
    }


def send_all(target: str, sip_port: int = 5060, wait_s: float = 1.0) -> dict[str, str | None]:
    from scapy.layers.inet import IP, UDP, fragment
    from scapy.packet import Raw
    from scapy.sendrecv import send

    me = target.rsplit(".", 1)[0] + ".1"      # this machine on the VoIP network
    out: dict[str, str | None] = {}
    for name, payload in cases(target, me, 0).items():
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((me, 0))
        port = sock.getsockname()[1]
        payload = payload.replace(f"{me}:0".encode(), f"{me}:{port}".encode())
        pkt = IP(src=me, dst=target) / UDP(sport=port, dport=sip_port) / Raw(load=payload)
        send(fragment(pkt, fragsize=1400) if len(payload) > 1400 else pkt, verbose=False)
        sock.settimeout(wait_s)
        reply = None
        end = time.monotonic() + wait_s
        try:
            while time.monotonic() < end:
                data = sock.recv(65535)
                line = data.split(b"\r\n", 1)[0].decode(errors="replace")
                if not line.startswith("SIP/2.0 100"):   # provisional: wait for the final
                    reply = line
                    break
                reply = reply or line
        except socket.timeout:
            pass
        finally:
            sock.close()
        out[name] = reply
    return out
