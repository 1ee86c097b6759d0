"""Q.704 signalling network management messages of changeover and changeback.

pycrate 0.7.8 decodes the MTP3 routing label (pycrate_mobile.SIGTRAN.MTP3) but has no
signalling network management messages (service indicator 0): nothing in pycrate_mobile
or pycrate_asn1dir codes COO/COA/CBD/CBA. So the ones this layer sends are defined here,
from Q.704 15.4 and 15.5, with pycrate_core's elements as pycrate defines its own
messages. They follow the routing label, which mtp3.py codes; its SLS field carries the
signalling link code (SLC) of the link the message is about.

    heading: H1 (4 bits) | H0 (4 bits) = 0001, the changeover/changeback group
    COO 0x11, COA 0x21: spare (1) | FSN of the last accepted MSU (7)
    XCO 0x31, XCA 0x41: FSN of the last accepted MSU (24, least significant octet first)
    CBD 0x51, CBA 0x61: changeback code (8)
"""
from __future__ import annotations

from dataclasses import dataclass

from pycrate_core.base import Uint, Uint8, Uint24LE
from pycrate_core.elt import Envelope

H0_CHANGEOVER = 1
H1 = {"COO": 1, "COA": 2, "XCO": 3, "XCA": 4, "CBD": 5, "CBA": 6}
NAMES = {v: k for k, v in H1.items()}
FSN_BITS = {"COO": 7, "COA": 7, "XCO": 24, "XCA": 24}


class SnmError(Exception):
    """Bytes that are not one of the messages above."""


def _heading():
    return (Uint("H1", bl=4, dic=NAMES), Uint("H0", bl=4, val=H0_CHANGEOVER))


class _Changeover(Envelope):
    _GEN = (*_heading(), Uint("spare", bl=1), Uint("FSN", bl=7))


class _ExtendedChangeover(Envelope):
    _GEN = (*_heading(), Uint24LE("FSN"))


class _Changeback(Envelope):
    _GEN = (*_heading(), Uint8("Code"))


def _layout(name: str):
    if name in ("COO", "COA"):
        return _Changeover, "FSN", 2
    if name in ("XCO", "XCA"):
        return _ExtendedChangeover, "FSN", 4
    return _Changeback, "Code", 2


@dataclass(frozen=True)
class SnmMessage:
    name: str       # COO, COA, XCO, XCA, CBD, CBA
    value: int      # the FSN (7 or 24 bits) or the changeback code (8 bits)


def encode(m: SnmMessage) -> bytes:
    if m.name not in H1:
        raise SnmError(f"no message {m.name!r}")
    cls, field, _ = _layout(m.name)
    limit = 1 << FSN_BITS.get(m.name, 8)
    if not 0 <= m.value < limit:
        raise SnmError(f"{m.name} value {m.value} out of range 0..{limit - 1}")
    return cls(val={"H1": H1[m.name], field: m.value}).to_bytes()


def decode(sif: bytes) -> SnmMessage:
    """The SIF after the routing label; raises SnmError."""
    if not sif:
        raise SnmError("empty network management message")
    h0, h1 = sif[0] & 0x0F, sif[0] >> 4
    if h0 != H0_CHANGEOVER or h1 not in NAMES:
        raise SnmError(f"heading H0={h0} H1={h1}: not a changeover/changeback message")
    name = NAMES[h1]
    cls, field, size = _layout(name)
    if len(sif) != size:
        raise SnmError(f"{name} of {len(sif)} octets, expected {size}")
    m = cls()
    m.from_bytes(sif)
    return SnmMessage(name, m[field].get_val())
