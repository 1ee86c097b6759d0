"""Emulated TMedia unit: one process per unit container (`python -m emulator.tmedia.unit`).

It exists so the testbed has media gateways that behave like the seed's TMedia units on
the wire: a control agent leased by one host's sys_manager at a time, and a SIP B2BUA
(sippy) that asks the leasing host's gateway for routes and relays RTP (rtp.io)."""
