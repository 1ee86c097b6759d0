"""Side-by-side peer for the host failover benchmark: the same power-off, measured the same
way, against keepalived's VRRP instead of our own election.

Two running containers get a keepalived.conf (/tmp/vrrpbench-keepalived.conf) and run
Debian's keepalived (VRRP only) detached: one MASTER (priority 200), one BACKUP (priority
100), a virtual address VIP/24 on one interface each. This machine, which has an address
on every Docker bridge, pings the VIP every 5 ms through its own kernel, so its ARP cache
has to follow the new master's gratuitous ARP as any client's would, and sniffs the
replies on the bridge with their kernel receive time and source MAC. The failover is the
first reply from the backup's MAC after t0, t0 (time.time(), the harness's clock) stamped
just before `docker kill` of the master.

VRRP goes by multicast, keepalived's default: 224.0.0.18 is link-local, so a Linux bridge
floods it to every port whatever its IGMP snooping, and Docker lets traffic inside a
network through. Measured on Docker bridges: the BACKUP hears the adverts and stays
BACKUP. `unicast=True` renders unicast_src_ip/unicast_peer instead, for networks that
filter multicast.

Profiles (PROFILES): `default` is keepalived's defaults (VRRPv2, advert_int 1: the backup
takes over 3 adverts + skew = 3.61 s after the last advert it heard, priority 100); `fast`
is VRRPv3 with the shortest advert_int that stayed stable here (no state change in 2
minutes idle with one of the two cores busy), see FAST_ADVERT_INT: 0.15 s, so 0.54 s.
Neither needs more than NET_ADMIN and NET_RAW (the testbed's hosts have no CAP_SYS_NICE,
so keepalived's realtime scheduling options are left out).

Integration (bench/switchover.py), on the running testbed (VIP $TB_NET.1.100 on ctrl-a):

    from bench.keepalived import testbed_pair
    fault = HostPowerOff(tb, host="host-a")
    try:
        with testbed_pair(tb, master="host-a", profile="fast") as pair:
            prober = pair.prober()
            prober.arm()                   # returns once the VIP answers from host-a
            t0 = fault.inject()            # time.time() just before docker kill
            failover_s = prober.result(t0, timeout=10)   # TestbedError after 10 s
        # here keepalived is stopped and the VIP removed on both hosts, also on errors
    finally:
        fault.heal()

Development, on a private network and two containers of its own (removed at the end):

    python bench/keepalived.py --standalone --runs 5 --profile default --profile fast
    python bench/keepalived.py --standalone --soak 120 --busy --profile fast --advert-int 0.02
"""
from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import os
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.testbed import HOSTS, NET_INDEX, TestbedError, image_tag  # noqa: E402
from harness.util import wait_for  # noqa: E402

# `fast`: measured with --soak 120 --busy (one core busy; the `hatb` testbed was running
# meanwhile, CPU pressure 20-70 %, wake-up latency up to 100-230 ms): 0.01, 0.02, 0.05 flapped
# within seconds, 0.1 once in two runs; 0.15 held in three runs, 0.2 in two.
FAST_ADVERT_INT = 0.15
CONF = "/tmp/vrrpbench-keepalived.conf"
LOG = "/tmp/vrrpbench-keepalived.log"
PID = "/tmp/vrrpbench-keepalived.pid"


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    version: int = 2        # VRRPv2 advertises whole seconds only; v3 centiseconds
    advert_int: float = 1.0


PROFILES = {"default": Profile("default"),
            "fast": Profile("fast", version=3, advert_int=FAST_ADVERT_INT)}


def render_config(name: str, state: str, priority: int, iface: str, vip: str, profile: Profile,
                  prefix: int = 24, vrid: int = 51, unicast_src: str | None = None,
                  unicast_peers: tuple[str, ...] = ()) -> str:
    unicast = ([f"  unicast_src_ip {unicast_src}", "  unicast_peer {",
                *(f"    {p}" for p in unicast_peers), "  }"] if unicast_peers else [])
    return "\n".join([
        "global_defs {", f"  router_id {name}", f"  vrrp_version {profile.version}", "}",
        "vrrp_instance VI_BENCH {", f"  state {state}", f"  interface {iface}",
        f"  virtual_router_id {vrid}", f"  priority {priority}",
        f"  advert_int {profile.advert_int:g}", *unicast,
        "  virtual_ipaddress {", f"    {vip}/{prefix}", "  }", "}", ""])


def failover_s(replies: list[tuple[float, str]], t0: float, backup_mac: str) -> float | None:
    """Seconds from t0 to the first reply (time, source MAC) after t0 from the backup."""
    times = [t for t, mac in replies if t > t0 and mac.lower() == backup_mac.lower()]
    return min(times) - t0 if times else None


def state_changes(log: str) -> list[str]:
    """keepalived's state changes in its log, in order."""
    return [line for line in log.splitlines() if "Entering" in line]


def settled(master_log: str, backup_log: str) -> bool:
    """The election is over: the master last became MASTER, the backup last BACKUP."""
    m, b = state_changes(master_log), state_changes(backup_log)
    return bool(m and b) and "MASTER STATE" in m[-1] and "BACKUP STATE" in b[-1]


def _sh(container, script: str, *args: str, check: bool = True) -> str:
    """A shell script in the container, its arguments passed as $1.. (never interpolated)."""
    res = container.exec_run(["sh", "-c", script, "sh", *args])
    out = res.output.decode(errors="replace")
    if check and res.exit_code != 0:
        raise TestbedError(f"{container.name}: `{script}` failed (exit {res.exit_code}): {out.strip()}")
    return out


def iface_with(container, ip: str) -> str:
    """The container's interface that has `ip`."""
    for line in _sh(container, "ip -o -4 addr show").splitlines():
        f = line.split()
        if f[3].split("/")[0] == ip:
            return f[1]
    raise TestbedError(f"{container.name} has no interface with {ip}")


class VrrpPair:
    """keepalived on `master` (MASTER, priority 200) and `backup` (BACKUP, 100) for vip/prefix
    on their interface (`ifaces`: one name for both, or container name -> interface). A
    context manager: stop() always runs."""

    def __init__(self, master, backup, vip: str, profile: str | Profile = "default",
                 ifaces: str | dict[str, str] = "eth0", unicast: bool = False,
                 prefix: int = 24, vrid: int = 51):
        self.profile = PROFILES[profile] if isinstance(profile, str) else profile
        self.master, self.backup, self.vip, self.prefix = master, backup, vip, prefix
        self.roles = ((master, "MASTER", 200), (backup, "BACKUP", 100))
        self.ifaces = {c.name: ifaces if isinstance(ifaces, str) else ifaces[c.name]
                       for c in (master, backup)}
        self.unicast, self.vrid, self.macs, self._seen, self._probers = unicast, vrid, {}, {}, []

    def _log(self, c) -> str:
        return _sh(c, 'cat "$1"', LOG)

    def start(self, deadline_s: float = 30.0) -> None:
        """The master first, until it holds the VIP, then the backup, until the election has
        settled (a backup that missed the first adverts may be master for a moment); state
        changes after that are flaps."""
        ips = {}
        for c, _, _ in self.roles:
            iface = self.ifaces[c.name]
            self.macs[c.name] = _sh(c, 'cat /sys/class/net/"$1"/address', iface).strip()
            ips[c.name] = _sh(c, 'ip -o -4 addr show dev "$1"', iface).split()[3].split("/")[0]
        for c, state, prio in self.roles:
            peers = tuple(ip for n, ip in ips.items() if n != c.name) if self.unicast else ()
            conf = render_config(c.name, state, prio, self.ifaces[c.name], self.vip, self.profile,
                                 self.prefix, self.vrid, ips[c.name], peers)
            # a powered-off run leaves pid files whose numbers may be live processes now
            _sh(c, 'printf %s "$1" > "$2"; : > "$3"; rm -f "$4" "$4.vrrp"', conf, CONF, LOG, PID)
            c.exec_run(["sh", "-c", f"exec keepalived -n -l -P -f {CONF} -p {PID} "
                        f"-r {PID}.vrrp > {LOG} 2>&1"], detach=True)
            try:
                wait_for((lambda: self._has_vip(c)) if state == "MASTER" else self._settled, deadline_s,
                         f"keepalived {state} on {c.name}")
            except TestbedError as exc:
                tail = "\n".join(self._log(c).splitlines()[-10:])
                raise TestbedError(f"{exc}; its log ends:\n{tail}") from None

    def _has_vip(self, c) -> bool:
        return f" {self.vip}/" in _sh(c, 'ip -o -4 addr show dev "$1"', self.ifaces[c.name])

    def _settled(self) -> bool:
        logs = {c.name: self._log(c) for c in (self.master, self.backup)}
        if not (settled(logs[self.master.name], logs[self.backup.name])
                and self._has_vip(self.master) and not self._has_vip(self.backup)):
            return False
        self._seen = {n: len(state_changes(log)) for n, log in logs.items()}
        return True

    def stop(self) -> None:
        """Probing ended, keepalived killed (TERM, then KILL) and the VIP removed in each
        running container."""
        for p in self._probers:
            p.close()
        errors = []
        for c, _, _ in reversed(self.roles):      # the backup first: it takes nothing over
            try:
                c.reload()
                if c.status != "running":
                    continue          # powered off: its keepalived and VIP are gone with it
                _sh(c, 'p=$(cat "$1" 2>/dev/null) || exit 0; kill "$p" 2>/dev/null; '
                       'for i in $(seq 50); do kill -0 "$p" 2>/dev/null || exit 0; sleep 0.1; done; '
                       'kill -9 "$p"', PID)
                if self._has_vip(c):
                    _sh(c, 'ip addr del "$1" dev "$2"', f"{self.vip}/{self.prefix}", self.ifaces[c.name])
            except Exception as exc:    # noqa: BLE001 - the other container is healed all the same
                errors.append(f"{c.name}: {exc}")
        if errors:
            raise TestbedError("keepalived cleanup failed: " + "; ".join(errors))

    def flaps(self) -> list[str]:
        """State changes since start() saw the election settle."""
        return [f"{c.name}: {e}" for c in (self.master, self.backup)
                for e in state_changes(self._log(c))[self._seen[c.name]:]]

    def prober(self, interval: float = 0.005) -> Prober:
        """A Prober of the VIP, for this master and backup (closed by stop() at the latest)."""
        p = Prober(self.vip, self.macs[self.master.name], self.macs[self.backup.name], interval)
        self._probers.append(p)
        return p

    def __enter__(self) -> VrrpPair:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def testbed_pair(tb, master: str = "host-a", profile: str | Profile = "fast",
                 net: str = "ctrl-a", **kw) -> VrrpPair:
    """A VrrpPair on the testbed's hosts: `master` and the other host, VIP $TB_NET.<net>.100."""
    backup = next(h for h in HOSTS if h != master)
    mc, bc = tb.container(master), tb.container(backup)
    ifaces = {mc.name: iface_with(mc, tb.ip(master, net)), bc.name: iface_with(bc, tb.ip(backup, net))}
    return VrrpPair(mc, bc, f"{tb.env['TB_NET']}.{NET_INDEX[net]}.100", profile, ifaces, **kw)


def _checksum(data: bytes) -> int:
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF


class Prober:
    """ICMP echo requests to the VIP every `interval` s through this machine's kernel; the
    replies sniffed on its interface towards the VIP, with the kernel's receive time (wall
    clock, as t0) and source MAC, in `replies`."""
    SO_TIMESTAMPNS = 35       # Linux; Python's socket module lacks it

    def __init__(self, vip: str, master_mac: str, backup_mac: str, interval: float = 0.005):
        self.vip, self.master_mac, self.backup_mac, self.interval = vip, master_mac, backup_mac, interval
        route = subprocess.run(["ip", "-o", "route", "get", vip], capture_output=True, text=True,
                               check=True).stdout.split()
        self.dev = route[route.index("dev") + 1]
        self.ident = os.getpid() & 0xFFFF
        self.replies: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def arm(self, deadline_s: float = 15.0) -> Prober:
        """Start probing; return once the VIP answers from the master."""
        # a cached MAC of an earlier run must not answer for this one
        subprocess.run(["ip", "neigh", "del", self.vip, "dev", self.dev], capture_output=True)
        rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
        rx.setsockopt(socket.SOL_SOCKET, self.SO_TIMESTAMPNS, 1)
        rx.bind((self.dev, 0))
        rx.settimeout(0.1)
        tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        tx.setsockopt(255, 1, struct.pack("I", 0xFFFFFFFF))   # SOL_RAW ICMP_FILTER: read nothing
        self._threads = [threading.Thread(target=f, args=(s,), daemon=True)
                         for f, s in ((self._receive, rx), (self._send, tx))]
        for t in self._threads:
            t.start()
        try:
            wait_for(lambda: any(m == self.master_mac for _, m in self.replies), deadline_s,
                     f"the VIP {self.vip} to answer from the master ({self.master_mac}) on {self.dev}",
                     interval=0.01)
        except BaseException:
            self.close()
            raise
        return self

    def result(self, t0: float, timeout: float = 10.0) -> float:
        """failover_s: t0 to the first reply from the backup; raises after `timeout` s."""
        try:
            return wait_for(lambda: failover_s(self.replies, t0, self.backup_mac), timeout,
                            f"a reply to {self.vip} from the backup ({self.backup_mac})", interval=0.01)
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(2)

    def _send(self, s: socket.socket) -> None:
        seq, next_t = 0, time.monotonic()
        with s:
            while not self._stop.is_set():
                seq = (seq + 1) & 0xFFFF
                body = struct.pack("!HH", self.ident, seq) + b"vrrpbench-probe."
                msg = struct.pack("!BBH", 8, 0, _checksum(b"\x08\x00\x00\x00" + body)) + body
                try:
                    s.sendto(msg, (self.vip, 0))
                except OSError:
                    pass      # neighbour unresolved during the failover: the next probe goes
                next_t += self.interval
                time.sleep(max(0.0, next_t - time.monotonic()))   # the probe rate, not a wait

    def _receive(self, s: socket.socket) -> None:
        vip = socket.inet_aton(self.vip)
        with s:
            while not self._stop.is_set():
                try:
                    data, anc, _, _ = s.recvmsg(2048, socket.CMSG_SPACE(16))
                except socket.timeout:
                    continue
                ihl = (data[14] & 0x0F) * 4
                icmp = data[14 + ihl:]
                if (data[23] != 1 or data[26:30] != vip or len(icmp) < 8 or icmp[0] != 0
                        or struct.unpack("!H", icmp[4:6])[0] != self.ident):
                    continue
                t = next((sec + ns / 1e9 for lvl, typ, d in anc
                          if lvl == socket.SOL_SOCKET and typ == self.SO_TIMESTAMPNS
                          for sec, ns in [struct.unpack("qq", d[:16])]), time.time())
                self.replies.append((t, data[6:12].hex(":")))


# ---- standalone mode ----------------------------------------------------------------------
class Standalone:
    """A private bridge network (a free 10.251.N.0/24) and two tb/host containers running
    `sleep infinity`, removed on exit."""

    def __init__(self):
        import docker
        self.docker = docker.from_env()
        self.name = f"vrrpbench-{os.getpid()}"
        self.net, self.containers = None, []

    def _free_subnet(self) -> ipaddress.IPv4Network:
        used = [ipaddress.ip_network(cfg["Subnet"], strict=False)
                for n in self.docker.networks.list()
                for cfg in (n.attrs.get("IPAM") or {}).get("Config") or []
                if ":" not in cfg.get("Subnet", ":")]
        routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
        used += [ipaddress.ip_network(r.split()[0], strict=False)
                 for r in routes.splitlines() if r[:1].isdigit()]
        for n in range(256):
            cand = ipaddress.ip_network(f"10.251.{n}.0/24")
            if not any(cand.overlaps(u) for u in used):
                return cand
        raise TestbedError("no free 10.251.N.0/24 for the vrrpbench network")

    def __enter__(self) -> Standalone:
        from docker.types import IPAMConfig, IPAMPool
        try:
            self.subnet = self._free_subnet()
            self.net = self.docker.networks.create(
                self.name, driver="bridge", labels={"vrrpbench": "1"},
                ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=str(self.subnet))]))
            for side in ("a", "b"):
                self.containers.append(self.docker.containers.run(
                    f"tb/host:{image_tag()}", ["infinity"], entrypoint=["sleep"], detach=True,
                    name=f"{self.name}-{side}", hostname=f"vrrp-{side}", network=self.name,
                    cap_add=["NET_ADMIN", "NET_RAW"], labels={"vrrpbench": "1"}))
        except BaseException:
            self.__exit__()
            raise
        return self

    @property
    def vip(self) -> str:
        return str(self.subnet.network_address + 100)

    def running(self):
        """Both containers, the powered-off one started again."""
        for c in self.containers:
            c.reload()
            if c.status != "running":
                c.start()
        wait_for(lambda: all(c.reload() or c.status == "running" for c in self.containers), 30,
                 "the vrrpbench containers to run")
        return self.containers

    def __exit__(self, *exc) -> None:
        try:
            for c in self.containers:
                c.remove(force=True)
        finally:
            if self.net is not None:
                self.net.remove()      # fails, saying so, while a container is still on it


def _busy(core: int) -> subprocess.Popen:
    """A busy loop pinned to one core (the 'other core busy' of the stability runs)."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"],
                            preexec_fn=lambda: os.sched_setaffinity(0, {core}))


def standalone(profiles: list[Profile], runs: int, soak_s: float, busy: bool, unicast: bool) -> int:
    results: dict[str, list[float]] = {}
    hog = _busy(os.cpu_count() - 1) if busy else None
    try:
        with Standalone() as env:
            for prof in profiles:
                if soak_s:
                    a, b = env.running()
                    with VrrpPair(a, b, env.vip, prof, unicast=unicast) as pair:
                        end = time.monotonic() + soak_s
                        # the soak's duration is the measurement; a flap ends it early
                        while time.monotonic() < end and not pair.flaps():
                            time.sleep(5)
                        found = pair.flaps()
                    print(f"profile {prof.name} (v{prof.version}, advert_int {prof.advert_int:g}) "
                          f"soak {soak_s:.0f} s{' busy' if busy else ''}: "
                          f"{'STABLE' if not found else 'FLAPPED: ' + '; '.join(found)}", flush=True)
                    continue
                for i in range(runs):
                    a, b = env.running()
                    with VrrpPair(a, b, env.vip, prof, unicast=unicast) as pair:
                        prober = pair.prober().arm()
                        t0 = time.time()
                        a.kill()
                        fs = prober.result(t0, timeout=5 + 10 * prof.advert_int)
                    results.setdefault(prof.name, []).append(fs)
                    print(f"profile {prof.name} run {i + 1}: failover {fs:.3f} s", flush=True)
    finally:
        if hog:
            hog.kill()
            hog.wait()
    if results:
        print("\n| profile | VRRP | advert_int s | failover s min / median / max | runs |")
        print("|---|---|---|---|---|")
        for prof in profiles:
            r = results[prof.name]
            print(f"| {prof.name} | v{prof.version} | {prof.advert_int:g} | {min(r):.3f} / "
                  f"{statistics.median(r):.3f} / {max(r):.3f} | {len(r)} |")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--standalone", action="store_true", required=True,
                   help="own network and two containers (the only mode of the command line)")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--profile", action="append", choices=sorted(PROFILES))
    p.add_argument("--advert-int", type=float, help="override the profiles' advert_int (s)")
    p.add_argument("--unicast", action="store_true", help="unicast_peer instead of multicast")
    p.add_argument("--soak", type=float, default=0, metavar="S",
                   help="instead of failovers: S s idle, report any state change")
    p.add_argument("--busy", action="store_true", help="a busy loop on the last core meanwhile")
    args = p.parse_args(argv)
    profiles = [PROFILES[n] for n in args.profile or ["default", "fast"]]
    if args.advert_int:
        profiles = [dataclasses.replace(pr, advert_int=args.advert_int) for pr in profiles]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # clean up as on Ctrl-C
    try:
        return standalone(profiles, args.runs, args.soak, args.busy, args.unicast)
    except TestbedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: the vrrpbench network and containers are removed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
