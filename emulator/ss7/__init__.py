"""SS7 signalling for the emulated TMedia units and their far end.

`m2pa` carries MTP2-level signalling links as M2PA (RFC 4165) frames over TCP, one
connection per link; `mtp3` runs one linkset over two or more of them (load sharing by
SLS, changeover and changeback); `snm` codes the few network management messages those
procedures send. Above MTP3: `isup` (basic call control per CIC, replicable to a
standby), `tcap` (a dialogue user in SCCP UDTs) and `peer` (the ss7-peer far end tool).
`spread` is the system's signalling point over two units: each unit ends one link, MTP3
on both (the active's procedures reach the other unit's link through its reports), ISUP
and TCAP active on one unit and standby on the other, taken over when that unit is lost.
Payloads are pycrate's (pycrate_mobile, pycrate_asn1dir). The ss7 variant runs it on the
units' containers with the ss7-peer far end; `interwork` is each unit's SIP side."""

MAX_PC = (1 << 14) - 1   # ITU point codes are 14 bits
MAX_CIC = (1 << 12) - 1  # ISUP's CIC field is 12 bits
