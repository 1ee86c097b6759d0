"""Requests a SIP stack must refuse before sippy sees them, answered statelessly.

sippy 2.5 accepts or mishandles some malformed requests: a `SIP/3.0` request got
`SIP/3.0 200 OK`; an INVITE whose CSeq said BYE was taken; a `tel:` Request-URI, or a
request without To, From, Call-ID or CSeq, was dropped without an answer (the parse
error path raises again); an INVITE with bad SDP, a Content-Length shorter than its
body, or an IPv6 SDP reached the media relay and got 500 or 502. Bytes past the
Content-Length are not the body (RFC 3261 18.3): they are cut off (`datagram`) before
the SDP is judged and before sippy parses the request. Each is answered here
from the request's own text (RFC 3261 8.2.6: Vias, From, To with a tag, Call-ID and
CSeq copied), with the 4xx or 505 the RFC gives:

- 505 Version Not Supported: any SIP version but 2.0 (8.2.2.1 style: we speak 2.0);
- 416 Unsupported URI Scheme: a Request-URI that is not sip: or sips: (8.2.2.1);
- 400 Bad Request: Via, To, From, Call-ID or CSeq missing (8.1.1), a CSeq
  that is not `<number> <method of the request>` (8.1.1.5), a Content-Length longer
  than the body (18.3; sippy raised on it and sent nothing), SDP that does not parse
  (the mandatory v/o/s/t/m lines);
- 488 Not Acceptable Here: SDP whose connection address is not IPv4 (the media relay
  here is IPv4 only);
- 405 Method Not Allowed, with Allow: UPDATE, in a dialog or not (sippy left an UPDATE
  in a call unanswered; RFC 3311 is optional and the unit does not offer it). A
  re-INVITE passes through to the far end when its SDP changes; one with the same SDP
  (a session refresh) is answered by the unit itself, as sippy's B2BUA does by design.

A request without a usable Via cannot be answered and is dropped; an ACK is never
answered (17.1.1.3): dropped.
"""
from __future__ import annotations

import re
from typing import Optional

MANDATORY = ("via", "to", "from", "call-id", "cseq")
COMPACT = {"v": "via", "t": "to", "f": "from", "i": "call-id", "l": "content-length",
           "c": "content-type", "m": "contact"}
TAG = "tbck"
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS"      # what a unit takes (sip_stack.py too)
_CSEQ = re.compile(r"^\s*(\d{1,10})\s+([A-Za-z]+)\s*$")


def _headers(head_lines: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in head_lines:
        name, sep, value = line.partition(":")
        if not sep:
            continue
        name = name.strip().lower()
        out.setdefault(COMPACT.get(name, name), []).append(value.strip())
    return out


def sdp_problem(body: str) -> Optional[tuple[int, str]]:
    """(code, reason) when an SDP offer cannot be used, None when it can."""
    from sippy.SdpBody import SdpBody
    try:
        sdp = SdpBody(body)
        sections = sdp.sections
        if not sections:
            return 400, "Bad Request (SDP without a media line)"
    except Exception as exc:                              # sippy raises bare Exceptions too
        return 400, f"Bad Request (SDP: {str(exc)[:60] or type(exc).__name__})"
    for sec in sections:
        c = sec.c_header
        if c is None:
            return 400, "Bad Request (SDP without a connection address)"
        if c.atype != "IP4":
            return 488, f"Not Acceptable Here (SDP address type {c.atype[:8]}: IPv4 only)"
    return None


def problem(raw: bytes) -> Optional[tuple[int, str, dict]]:
    """(code, reason, headers) for a request to refuse here; None to pass it to sippy."""
    head_b, _, body_b = raw.partition(b"\r\n\r\n")
    head, body = head_b.decode("utf-8", errors="replace"), body_b.decode("utf-8", errors="replace")
    lines = head.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return None                                       # sippy's own parse drops it
    method, ruri, version = parts
    if method.startswith("SIP/"):
        return None                                       # a response: sippy's
    hs = _headers(lines[1:])
    if version != "SIP/2.0":
        return 505, "Version Not Supported", hs
    missing = [h for h in MANDATORY if h not in hs]
    if missing:
        return 400, f"Bad Request (missing {', '.join(missing)})", hs
    scheme = ruri.split(":", 1)[0].lower() if ":" in ruri else ""
    if scheme not in ("sip", "sips"):
        return 416, "Unsupported URI Scheme", hs
    if method == "UPDATE":
        # not supported (RFC 3311 is optional; the unit's 200s do not offer it): inside a
        # dialog sippy left it unanswered, so it is refused here, by design, everywhere
        return 405, "Method Not Allowed", hs
    m = _CSEQ.match(hs["cseq"][0])
    if m is None or len(hs["cseq"]) != 1:
        return 400, "Bad Request (bad CSeq)", hs
    if m.group(2) != method:
        return 400, f"Bad Request (CSeq method {m.group(2)[:10]} is not {method[:10]})", hs
    length = hs.get("content-length", [None])[0]
    if length is not None and length.isdigit():          # counted in bytes, as sent
        if int(length) > len(body_b):    # RFC 3261 18.3: the datagram ended early
            return 400, "Bad Request (Content-Length longer than the body)", hs
        # bytes past Content-Length are not the body (18.3: discarded; see datagram())
        body = body_b[:int(length)].decode("utf-8", errors="replace")
    ctype = (hs.get("content-type") or [""])[0].split(";")[0].strip().lower()
    if method == "INVITE" and body.strip() and ctype == "application/sdp":
        sdp = sdp_problem(body)
        if sdp is not None:
            return sdp[0], sdp[1], hs
    return None


def response(code: int, reason: str, hs: dict, tag: str) -> Optional[bytes]:
    """The stateless answer, or None when the request cannot be answered (no Via, or
    one of the headers to copy missing or doubled)."""
    if not hs.get("via"):
        return None
    lines = [f"SIP/2.0 {code} {reason}"] + [f"Via: {v}" for v in hs["via"]]
    for name, label in (("from", "From"), ("to", "To"), ("call-id", "Call-ID"), ("cseq", "CSeq")):
        values = hs.get(name) or []
        if len(values) > 1:
            return None
        if values:
            value = values[0]
            if name == "to" and ";tag=" not in value.replace(" ", "").lower():
                value += f";tag={TAG}{tag}"
            lines.append(f"{label}: {value}")
    if code == 405:
        lines.append(f"Allow: {ALLOW}")
    lines += ["Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode()


def datagram(raw: bytes) -> bytes:
    """The request as sippy should see it: the bytes past its Content-Length discarded
    (RFC 3261 18.3; sippy took them as part of the body)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() in (b"content-length", b"l") and value.strip().isdigit():
            n = int(value.strip())
            return head + sep + body[:n] if n < len(body) else raw
    return raw


def refusal(raw: bytes, tag: str) -> tuple[Optional[bytes], Optional[str]]:
    """(answer or None, why) for a request refused here; (None, None) to pass it on.
    An ACK or an unanswerable request is refused with no answer (dropped)."""
    p = problem(raw)
    if p is None:
        return None, None
    code, reason, hs = p
    why = f"{code} {reason}"
    if raw.startswith(b"ACK "):
        return None, why
    return response(code, reason, hs, tag), why
