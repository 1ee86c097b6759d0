"""The VoIP switch: `python -m emulator.tmedia.switch` in the `voip-sw` container.

Docker cannot attach a container twice to one network, so a unit's two VoIP ports sit
on two networks, `voip-p1` (every unit's port 1) and `voip-p2` (port 2), as a real
bond goes to two switches; this container joins them and `voip` (where the SIPp
generators are) into one Ethernet segment with a Linux bridge: the link between the
two switches and the uplink. It finds its interfaces by the addresses Docker gave them
(TB_SWITCH_IPS, comma-separated), removes those addresses and bridges the interfaces,
keeping the first address on the bridge (the address the units' port monitors probe);
then it waits for SIGTERM. Built anew at every start, so a restart loses nothing.
"""
from __future__ import annotations

import os
import signal
import sys
import time

from .ports import iface_with_address, run


def main() -> int:
    ips = [x.strip() for x in os.environ.get("TB_SWITCH_IPS", "").split(",") if x.strip()]
    if len(ips) < 2:
        print("switch: bad configuration: TB_SWITCH_IPS needs two or more addresses", file=sys.stderr)
        return 2
    devs = [iface_with_address(ip) for ip in ips]
    # the first address stays, on the bridge: the units' port monitors probe it (ARP)
    keep = next(ln.split()[3] for ln in run("ip", "-o", "-4", "addr", "show", "dev", devs[0]).splitlines())
    run("ip", "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
    for dev in devs:
        run("ip", "addr", "flush", "dev", dev)
        run("ip", "link", "set", dev, "master", "br0")
    run("ip", "link", "set", "br0", "up")
    run("ip", "addr", "add", keep, "dev", "br0")
    print(f"switch: bridged {', '.join(devs)} ({', '.join(ips)}) into br0", flush=True)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop:
        time.sleep(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
