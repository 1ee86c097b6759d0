"""Faults: each has inject() and heal(); heal() is idempotent and always runs (test end,
failure, Ctrl-C, or `make heal`). Everything a fault touches is inside our own compose
project (found by its labels), so a sweep never touches anything else."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import threading

from .testbed import NET_INDEX, Testbed, TestbedError, log
from .util import exec_checked, wait_for  # noqa: F401  (re-exported)


@dataclass
class Fault:
    tb: Testbed
    injected_at: float | None = field(default=None, init=False)
    healed_at: float | None = field(default=None, init=False)

    name = "fault"

    def inject(self) -> float: ...
    def heal(self) -> None: ...


@dataclass
class KillProcess(Fault):
    """SIGKILL one Toolpack application on a host (pid from the host's OAM status). The
    service monitor restarts it; heal() waits for that and, if it does not happen,
    restarts the host container so the next test starts from a whole testbed."""
    host: str = ""
    app: str = ""
    pid: int | None = field(default=None, init=False)

    @property
    def name(self):
        return f"kill {self.app} on {self.host}"

    def inject(self) -> float:
        info = self.tb.oam(self.host, "/api/v1/status")["apps"][self.app]
        if info.get("state") != "running" or not info.get("pid"):
            raise TestbedError(f"{self.app} on {self.host} is not running: {info}")
        self.pid = int(info["pid"])
        self.injected_at = time.time()
        exec_checked(self.tb, self.host, ["kill", "-KILL", str(self.pid)], f"kill {self.pid}")
        log(f"fault: killed {self.app} (pid {self.pid}) on {self.host}")
        return self.injected_at

    def _back(self):
        try:
            info = self.tb.oam(self.host, "/api/v1/status", timeout=1.5)["apps"][self.app]
        except TestbedError:
            return False
        return info.get("state") == "running" and info.get("pid") != self.pid

    def heal(self) -> None:
        try:
            wait_for(self._back, 15, f"{self.app} restarted on {self.host}")
        except TestbedError:
            log(f"heal: {self.app} did not come back on {self.host}; restarting the host")
            self.tb.container(self.host).restart(timeout=10)
        self.healed_at = time.time()


@dataclass
class Deadlock(KillProcess):
    """SIGSTOP one application (the test's deadlock): the service monitor must notice
    the missing heartbeats, kill and restart it. heal() makes sure nothing stays stopped."""

    @property
    def name(self):
        return f"deadlock {self.app} on {self.host}"

    def inject(self) -> float:
        self.pid = int(self.tb.oam(self.host, "/api/v1/status")["apps"][self.app]["pid"])
        self.injected_at = time.time()
        self.tb.container(self.host).exec_run(["kill", "-STOP", str(self.pid)])
        log(f"fault: stopped {self.app} (pid {self.pid}) on {self.host}")
        return self.injected_at

    def heal(self) -> None:
        super().heal()   # wait for a new pid (or restart the host)
        self.tb.container(self.host).exec_run(["kill", "-CONT", str(self.pid)])


@dataclass
class HostPowerOff(Fault):
    """Disconnect the power: SIGKILL the host's container (no graceful anything)."""
    host: str = ""

    @property
    def name(self):
        return f"power off {self.host}"

    def inject(self) -> float:
        self.injected_at = time.time()
        self.tb.container(self.host).kill()
        log(f"fault: powered off {self.host}")
        return self.injected_at

    def heal(self) -> None:
        c = self.tb.container(self.host)
        c.reload()
        if c.status != "running":
            c.start()
        self.healed_at = time.time()


@dataclass
class HostShutdown(HostPowerOff):
    """Shut the server down: `docker stop` (SIGTERM to the host's init, which quits the
    Toolpack service gracefully, then MariaDB). Runs in the background so the harness
    watches the switchover while the host goes down."""
    thread: threading.Thread | None = field(default=None, init=False)

    @property
    def name(self):
        return f"shutdown {self.host}"

    def inject(self) -> float:
        self.injected_at = time.time()
        c = self.tb.container(self.host)
        self.thread = threading.Thread(target=c.stop, kwargs={"timeout": 30}, daemon=True)
        self.thread.start()
        log(f"fault: shutting down {self.host}")
        return self.injected_at

    def heal(self) -> None:
        if self.thread is not None:
            self.thread.join(timeout=40)
        HostPowerOff.heal(self)


NFT_TABLE = "tbfault"


@dataclass
class NetworkCut(Fault):
    """Disconnect the network(s) of a node: nftables drop rules inside its own network
    namespace, ahead of conntrack (priority -300), so flows already established stop
    too. `nets` None cuts every interface but loopback; else only those networks."""
    host: str = ""
    nets: tuple[str, ...] | None = None
    peers: tuple[str, ...] = ()      # instead: cut only the traffic with these addresses
    own: tuple[str, ...] = ()        # instead: cut only these addresses of the node's own
    ifaces: tuple[str, ...] = ()     # instead: cut only these interfaces (a virtual port)

    @property
    def name(self):
        if self.peers:
            return f"cut {self.host} from {', '.join(self.peers)}"
        if self.own:
            return f"cut {', '.join(self.own)} of {self.host}"
        if self.ifaces:
            return f"cut {', '.join(self.ifaces)} of {self.host}"
        return f"cut {'+'.join(self.nets) if self.nets else 'all networks'} of {self.host}"

    def _ruleset(self) -> str:
        if self.peers:
            ips = ", ".join(self.peers)
            match_in, match_out = [f"ip saddr {{ {ips} }}"], [f"ip daddr {{ {ips} }}"]
        elif self.own:
            ips = ", ".join(self.own)
            match_in, match_out = [f"ip daddr {{ {ips} }}"], [f"ip saddr {{ {ips} }}"]
        elif self.ifaces:
            names = ", ".join(f'"{i}"' for i in self.ifaces)
            match_in, match_out = [f"iifname {{ {names} }}"], [f"oifname {{ {names} }}"]
        elif self.nets is None:
            match_in, match_out = ['iifname != "lo"'], ['oifname != "lo"']
        else:
            subnets = ", ".join(f"{self.tb.env['TB_NET']}.{NET_INDEX[n]}.0/24" for n in self.nets)
            match_in, match_out = [f"ip saddr {{ {subnets} }}"], [f"ip daddr {{ {subnets} }}"]
        return (f"table inet {NFT_TABLE} {{\n"
                f"  chain in {{ type filter hook input priority -300; {match_in[0]} drop; }}\n"
                f"  chain out {{ type filter hook output priority -300; {match_out[0]} drop; }}\n"
                f"}}\n")

    def inject(self) -> float:
        c = self.tb.container(self.host)
        rules = self._ruleset()
        res = c.exec_run(["sh", "-c", f"printf '%s' '{rules}' | nft -f -"])
        self.injected_at = time.time()
        if res.exit_code != 0:
            raise TestbedError(f"nft on {self.host} failed: {res.output.decode(errors='replace')}")
        log(f"fault: {self.name}")
        return self.injected_at

    def heal(self) -> None:
        remove_cuts(self.tb.container(self.host))
        self.healed_at = time.time()


def remove_cuts(container) -> None:
    container.reload()
    if container.status == "running":
        container.exec_run(["nft", "delete", "table", "inet", NFT_TABLE])


class FaultSet:
    """The faults of one test: healed in reverse order, whatever happened."""

    def __init__(self, tb: Testbed):
        self.tb = tb
        self.faults: list[Fault] = []

    def inject(self, fault: Fault) -> float:
        self.faults.append(fault)   # registered first: a half-injected fault is healed too
        return fault.inject()

    def heal(self) -> None:
        errors = []
        while self.faults:
            fault = self.faults.pop()
            try:
                fault.heal()
            except Exception as exc:   # heal the rest, then report
                errors.append(f"{fault.name}: {exc}")
        heal_all(self.tb)
        if errors:
            raise TestbedError("healing failed: " + "; ".join(errors))


def heal_all(tb: Testbed) -> None:
    """Sweep for leftovers of any fault (also of a killed run): every container of the
    project running and unpaused, no cut left, no process left stopped."""
    for c in tb.containers():
        c.reload()
        if c.status == "paused":
            log(f"sweep: unpausing {c.name}")
            c.unpause()
        elif c.status in ("exited", "created", "dead"):
            log(f"sweep: starting {c.name}")
            c.start()
        remove_cuts(c)
        if c.labels.get("com.docker.compose.service", "").startswith("tmedia"):
            from .faults_unit import bring_ports_up
            bring_ports_up(c)       # a VoIP port left down
        c.exec_run(["sh", "-c", "ps -eo pid=,stat= | awk '$2 ~ /^T/ {print $1}' "
                                "| xargs -r kill -CONT"])
    from .faults_db import sweep_host_services
    sweep_host_services(tb)     # MySQL or the Toolpack service left stopped
