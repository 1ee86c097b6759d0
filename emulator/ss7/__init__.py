"""SS7 signalling for the emulated TMedia units: the link and MTP3 layers only.

`m2pa` carries MTP2-level signalling links as M2PA (RFC 4165) frames over TCP, one
connection per link; `mtp3` runs one linkset over two or more of them (load sharing by
SLS, changeover and changeback); `snm` codes the few network management messages those
procedures send. ISUP, SCCP and TCAP payloads are pycrate's (pycrate_mobile,
pycrate_asn1dir); nothing above MTP3 (circuits, calls, routing sets) is built here."""
