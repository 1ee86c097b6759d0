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


# The answer each case must get (the code); a case not named here is answered 400 or
# dropped. Why each: emulator/tmedia/sip_checks.py.
EXPECT = {"SIP/3.0": "505", "tel: Request-URI": "416", "CSeq method not the request's": "400",
          "no From": "400", "no To": "400", "no Call-ID": "400", "no CSeq": "400",
          "bad SDP": "400", "Content-Length shorter than the body": "400", "IPv6 SDP": "488",
          "Content-Length too long": "400",
          "BYE for no dialog": "481", "CANCEL for no transaction": "481",
          "UPDATE for no dialog": "405", "MESSAGE": "405"}


def cases(target: str, me: str, port: int) -> dict[str, bytes]:
    def invite(headers: str = "", body: str = "", length: int | None = None, via: bool = True,
               method: str = "INVITE", ruri: str | None = None, version: str = "SIP/2.0",
               cseq: str | None = None, drop: str = "") -> bytes:
        branch = "z9hG4bK" + secrets.token_hex(6)
        body_b = body.encode()
        cl = len(body_b) if length is None else length
        lines = [f"{method} {ruri or f'sip:1000@{target}:5060'} {version}",
                 f"Via: SIP/2.0/UDP {me}:{port};branch={branch}" if via else "",
                 f"From: <sip:bad@{me}>;tag={secrets.token_hex(4)}", f"To: <sip:1000@{target}>",
                 f"Call-ID: {secrets.token_hex(8)}@{me}", f"CSeq: {cseq or f'1 {method}'}",
                 "Max-Forwards: 70", f"Contact: <sip:bad@{me}:{port}>"]
        lines = [x for x in lines if x and not (drop and x.startswith(drop + ":"))]
        if body and "Content-Type" not in headers:
            headers += "Content-Type: application/sdp\r\n"
        return ("\r\n".join(lines) + f"\r\n{headers}Content-Length: {cl}\r\n\r\n").encode() + body_b
    sdp = (f"v=0\r\no=bad 1 1 IN IP4 {me}\r\ns=-\r\nc=IN IP4 {me}\r\nt=0 0\r\n"
           f"m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
    good = invite()
    return {
        "SIP/3.0": invite(version="SIP/3.0", body=sdp),
        "tel: Request-URI": invite(ruri="tel:+15551234", body=sdp),
        "CSeq method not the request's": invite(cseq="1 BYE", body=sdp),
        "no From": invite(drop="From", body=sdp),
        "no To": invite(drop="To", body=sdp),
        "no Call-ID": invite(drop="Call-ID", body=sdp),
        "no CSeq": invite(drop="CSeq", body=sdp),
        "bad SDP": invite(body="v=0\r\nthis is not SDP\r\n"),
        "Content-Length shorter than the body": invite(body=sdp, length=20),
        "IPv6 SDP": invite(body=sdp.replace(f"IN IP4 {me}", "IN IP6 ::1")),
        "BYE for no dialog": invite(method="BYE"),
        "CANCEL for no transaction": invite(method="CANCEL"),
        "UPDATE for no dialog": invite(method="UPDATE"),
        "MESSAGE": invite(method="MESSAGE", body="hello", headers="Content-Type: text/plain\r\n"),
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
