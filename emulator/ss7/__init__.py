"""SS7 signalling for the emulated TMedia units and their far end.

`m2pa` carries MTP2-level signalling links as M2PA (RFC 4165) frames over TCP, one
connection per link; `mtp3` runs one linkset over two or more of them (load sharing by
SLS, changeover and changeback); `snm` codes the few network management messages those
procedures send. Above MTP3: `isup` (basic call control per CIC, replicable to a
standby), `tcap` (a dialogue user in SCCP UDTs) and `peer` (the ss7-peer far end tool).
Payloads are pycrate's (pycrate_mobile, pycrate_asn1dir). The units do not run any of
it yet; routing sets and active/standby ISUP on two units are not built."""
