"""Requests refused before sippy sees them (emulator/tmedia/sip_checks.py): each
malformed request gets the RFC 3261 answer, built from its own headers, or is dropped
when it cannot be answered; a well-formed one passes untouched. The live unit is held
to the same list in tests/integration/test_units.py (harness/malformed_sip.py)."""
from __future__ import annotations

import pytest

from emulator.tmedia.sip_checks import datagram, problem, refusal

ME = "192.0.2.7"
SDP = ("v=0\r\no=u 1 1 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\n"
       "m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


def req(method="INVITE", ruri="sip:1000@192.0.2.9:5060", ver="SIP/2.0", cseq=None, body="",
        cl=None, drop=(), ctype="application/sdp") -> bytes:
    hs = {"Via": f"SIP/2.0/UDP {ME}:5060;branch=z9hG4bK1", "From": f"<sip:a@{ME}>;tag=1",
          "To": "<sip:1000@192.0.2.9>", "Call-ID": "c1@x", "CSeq": cseq or f"1 {method}",
          "Max-Forwards": "70"}
    if body:
        hs["Content-Type"] = ctype
    b = body.encode()
    lines = [f"{method} {ruri} {ver}"] + [f"{k}: {v}" for k, v in hs.items() if k not in drop]
    return ("\r\n".join(lines) + f"\r\nContent-Length: {len(b) if cl is None else cl}\r\n\r\n").encode() + b


@pytest.mark.parametrize("data,code", [
    (req(ver="SIP/3.0", body=SDP), 505),
    (req("OPTIONS", ver="SIP/1.0"), 505),
    (req(cseq="1 BYE", body=SDP), 400),
    (req(cseq="one INVITE", body=SDP), 400),
    (req(ruri="tel:+15551234", body=SDP), 416),
    (req(ruri="http://x", body=SDP), 416),
    (req(body="v=0\r\nthis is not sdp\r\n"), 400),
    (req(body="v=0\r\no=u 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n"), 400),        # no m= line
    (req(body=SDP.replace("6000", "x")), 400),
    (req(body=SDP, cl=20), 400),          # the SDP cut at 20 bytes (18.3) no longer parses
    (req(body=SDP, cl=500), 400),         # the datagram ended before the body did
    (req(body=SDP.replace("IN IP4 192.0.2.7", "IN IP6 ::1")), 488),
    (req(drop=("From",), body=SDP), 400),
    (req(drop=("To",), body=SDP), 400),
    (req(drop=("Call-ID",), body=SDP), 400),
    (req(drop=("CSeq",), body=SDP), 400),
])
def test_a_malformed_request_gets_its_answer(data, code):
    p = problem(data)
    assert p is not None and p[0] == code, p
    answer, why = refusal(data, "t1")
    assert why.startswith(str(code))
    first, *rest = answer.decode().split("\r\n")
    assert first.startswith(f"SIP/2.0 {code} ")
    # the stateless answer copies what the caller matches it with (RFC 3261 8.2.6)
    assert f"Via: SIP/2.0/UDP {ME}:5060;branch=z9hG4bK1" in rest
    assert any(h.startswith("To: <sip:1000@192.0.2.9>;tag=") for h in rest) == (b"\r\nTo:" in data)
    assert ("Call-ID: c1@x" in rest) == (b"Call-ID" in data)


@pytest.mark.parametrize("data", [
    req(body=SDP), req("OPTIONS"), req("BYE"),
    req(body="some text", ctype="text/plain"), req("INVITE"),           # an offer-less INVITE
    b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n", b"garbage", b"INVITE\r\n\r\n",  # responses, junk: sippy's
])
def test_a_well_formed_request_and_what_sippy_handles_pass(data):
    assert problem(data) is None


def test_an_ack_or_a_request_without_via_is_refused_without_an_answer():
    assert refusal(req("ACK", ver="SIP/3.0"), "t") == (None, "505 Version Not Supported")
    answer, why = refusal(req(drop=("Via",), body=SDP), "t")
    assert answer is None and why.startswith("400")


def test_content_length_is_counted_in_bytes():
    body = SDP + "a=tool:caf\u00e9\r\n"        # a 2-byte character: bytes, not characters
    assert problem(req(body=body)) is None
    assert problem(req(body=body, cl=len(body.encode()) + 1))[0] == 400


def test_bytes_past_the_content_length_are_cut_off_not_refused():
    data = req("MESSAGE", body="hello world", ctype="text/plain", cl=5)
    assert problem(data) is None
    assert datagram(data).endswith(b"\r\n\r\nhello")
    whole = req(body=SDP)
    assert datagram(whole) is whole
    assert problem(req(body=SDP + "trailing junk", cl=len(SDP))) is None   # the SDP itself is good


def test_update_is_refused_with_405_and_allow_in_a_call_or_not():
    for data in (req("UPDATE"), req("UPDATE", body=SDP).replace(b"To: <sip:1000@192.0.2.9>",
                                                                  b"To: <sip:1000@192.0.2.9>;tag=far1")):
        answer, why = refusal(data, "t")
        text = answer.decode()
        assert text.startswith("SIP/2.0 405 ") and "\r\nAllow: INVITE, ACK, BYE, CANCEL, OPTIONS\r\n" in text
        assert "UPDATE" not in text.split("Allow:")[1].split("\r\n")[0]
    assert ";tag=far1" in text and ";tag=tbck" not in text    # the dialog's own tag kept
