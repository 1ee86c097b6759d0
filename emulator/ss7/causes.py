"""Release causes across the SIP-ISUP border, as RFC 3398 maps them (pure, unit-tested).

- `sip_code(cause)`: a REL's Q.850 cause -> the SIP final response of a call not yet
  answered (RFC 3398 7.2.4.1); a cause the table does not list gets its class's code.
- `isup_cause(code)`: a SIP final response -> the cause of the REL (RFC 3398 8.2.6.1);
  a code the table does not list gives 31 (normal, unspecified).
"""
from __future__ import annotations

# RFC 3398 7.2.4.1 (16, normal clearing, is a BYE or CANCEL, not a response)
_TO_SIP = {
    1: 404, 2: 404, 3: 404, 17: 486, 18: 408, 19: 480, 20: 480, 21: 403, 22: 410, 23: 410,
    26: 404, 27: 502, 28: 484, 29: 501, 31: 480, 34: 503, 38: 503, 41: 503, 42: 503,
    47: 503, 55: 403, 57: 403, 58: 503, 65: 488, 70: 488, 79: 501, 87: 403, 88: 503,
    102: 504, 111: 500, 127: 500,
}
# a cause outside the table, by its class (Q.850: the three high bits)
_CLASS_SIP = {0: 480, 1: 480, 2: 503, 3: 503, 4: 501, 5: 400, 6: 500, 7: 500}

# RFC 3398 8.2.6.1
_TO_CAUSE = {
    400: 41, 401: 21, 402: 21, 403: 21, 404: 1, 405: 63, 406: 79, 407: 21, 408: 102,
    410: 22, 413: 127, 414: 127, 415: 79, 416: 127, 420: 127, 421: 127, 423: 127,
    480: 18, 481: 41, 482: 25, 483: 25, 484: 28, 485: 1, 486: 17, 500: 41, 501: 79,
    502: 38, 503: 41, 504: 102, 505: 127, 513: 127, 600: 17, 603: 21, 604: 1,
}
NORMAL_UNSPECIFIED = 31

REASONS = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 408: "Request Timeout",
           410: "Gone", 480: "Temporarily Unavailable", 484: "Address Incomplete",
           486: "Busy Here", 488: "Not Acceptable Here", 500: "Server Internal Error",
           501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
           504: "Server Time-out"}


def sip_code(cause: int) -> int:
    if not 0 <= cause < 128:
        raise ValueError(f"{cause} is not a Q.850 cause (0..127)")
    return _TO_SIP.get(cause, _CLASS_SIP[cause >> 4])


def sip_response(cause: int) -> tuple[int, str]:
    """(code, reason phrase naming the cause) for a call the far end released."""
    code = sip_code(cause)
    return code, f"{REASONS.get(code, 'Failed')} (ISUP cause {cause})"


def isup_cause(code: int) -> int:
    if not 300 <= code < 700:
        raise ValueError(f"{code} is not a SIP failure response (300..699)")
    return _TO_CAUSE.get(code, NORMAL_UNSPECIFIED)
