"""Brings the compose project up (or attaches to a running one), waits until it is healthy,
names the nodes and resolves master/slave from live roles. Also the `make` entry points:

    python -m harness.testbed up|down|status|logs|heal
"""
from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
import ipaddress
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import httpx

from . import compose

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "compose" / "testbed.yml"
HOSTS = ("host-a", "host-b")
BOARDS = ("tmedia-1", "tmedia-2", "tmedia-3")     # the boards (containers)
UNITS = ("tmedia-1", "tmedia-2")                  # the units' VoIP interfaces (tmedia-3: spare)
AGENTS = ("sipp-uac", "sipp-uas")                 # the SIPp agents (callers, far end)
DB_HOSTS = ("db-a", "db-b")                       # the external-db variant's database hosts
# VARIANT (TB_VARIANT): compose overlays laid over testbed.yml. external-db: the seed's
# two external database hosts (db-a main, db-b backup); the Toolpack hosts run no MariaDB.
# ss7: the units' SS7 nodes and the ss7-peer far end (compose/ss7.yml).
VARIANTS = {"": (), "external-db": ("external-db.yml",), "ss7": ("ss7.yml",)}


def image_tag() -> str:
    """TB_TAG names this checkout's images (CI uses its own, so a build in another
    checkout on the same machine never changes what CI tests)."""
    return os.environ.get("TB_TAG", "latest")


OCTET = {"host-a": 11, "host-b": 12, "db-a": 13, "db-b": 14, "tmedia-1": 21, "tmedia-2": 22, "tmedia-3": 23,
         "sipp-uac": 31, "sipp-uas": 32, "sipp-uas-2": 33, "ss7-peer": 41}   # -2: the far end's second address
# the OAM's database view must be this fresh to count (its cache refreshes when asked,
# in about a connect timeout); health() asks again for up to DB_VIEW_DEADLINE_S
DB_VIEW_SLACK_S = 0.5
DB_VIEW_DEADLINE_S = 3.0


def db_view_checked_at(view: dict) -> float:
    """When the older of the two servers in an OAM database view was asked."""
    return min(float(view.get(k, {}).get("checked_at") or 0) for k in ("main", "backup"))


NET_INDEX = {"ctrl-a": 1, "ctrl-b": 2, "voip": 3, "voip-p1": 4, "voip-p2": 5,
             "vlan101": 101, "vlan102": 102}      # vlanN: the virtual ports (VXLAN, VNI N)


def project_name() -> str:
    return os.environ.get("TB_PROJECT", "hatb")


def state_dir(project: str) -> Path:
    return ROOT / ".testbed" / project


def variant_name() -> str:
    v = os.environ.get("TB_VARIANT", "")
    if v not in VARIANTS:
        raise TestbedError(f"unknown VARIANT {v!r} (known: "
                           f"{', '.join(repr(k) if k else '(none)' for k in VARIANTS)})")
    return v


def check_db_address(name: str, value: str) -> str:
    """The database servers are named by explicit addresses (the seed: with two servers
    'localhost' or '' is no longer permitted); the hosts refuse anything else at start
    (emulator/host/settings.py, the system's own rule), the bring-up before anything
    starts (the same rule here: the harness never imports the emulator)."""
    v = (value or "").strip()
    try:
        ip = ipaddress.IPv4Address(v)
    except ValueError:
        raise TestbedError(f"{name} must be an explicit IPv4 address of the database server, "
                           f"not {value!r} ('localhost' or '' is not permitted)") from None
    if ip.is_loopback or ip.is_unspecified:
        raise TestbedError(f"{name} must be the database server's own address, not {v}")
    return v


def log(msg: str) -> None:
    print(f"[testbed {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class TestbedError(RuntimeError):
    pass


def free_net_prefix(client: docker.DockerClient) -> str:
    """First 172.N (N = 20..31) whose /16 overlaps no existing Docker network, so two
    projects (or a user's own networks) never collide."""
    used = []
    for net in client.networks.list():
        for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
            if cfg.get("Subnet") and ":" not in cfg["Subnet"]:
                used.append(ipaddress.ip_network(cfg["Subnet"], strict=False))
    for n in range(20, 32):
        cand = ipaddress.ip_network(f"172.{n}.0.0/16")
        if not any(cand.overlaps(u) for u in used):
            return f"172.{n}"
    raise TestbedError("no free 172.20-31.0.0/16 range for the testbed networks")


@dataclass
class HostStatus:
    name: str
    ok: bool
    data: dict | None
    error: str | None = None


class Testbed:
    def __init__(self, project: str | None = None):
        self.project = project or project_name()
        self.dir = state_dir(self.project)
        self.env_file = self.dir / "testbed.env"
        self.docker = docker.from_env()
        self.env = self._read_env()
        # a running testbed's variant is the one it was brought up with
        self.variant = self.env.get("TB_VARIANT", "") if self.env else variant_name()
        # TB_INVENTORY: its `ssh` nodes are reached over SSH (harness/remote.py), the
        # rest through Docker
        self.inventory, self._remote = None, {}
        if os.environ.get("TB_INVENTORY"):
            from .inventory import load
            self.inventory_path = Path(os.environ["TB_INVENTORY"]).resolve()
            self.inventory = load(self.inventory_path)

    # ---- configuration --------------------------------------------------------------
    def _read_env(self) -> dict:
        if not self.env_file.exists():
            return {}
        out = {}
        for line in self.env_file.read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                out[k] = v
        return out

    def _write_env(self) -> None:
        """Credentials are generated per bring-up: there is no default password or token."""
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "sipp").mkdir(exist_ok=True)
        net = free_net_prefix(self.docker)
        main, backup = self.db_hosts
        env = {
            "TB_NET": net,
            "TB_VARIANT": self.variant,
            # TB_DB_MAIN / TB_DB_BACKUP in the environment replace them (checked here)
            "TB_DB_MAIN": check_db_address("TB_DB_MAIN", os.environ.get(
                "TB_DB_MAIN", f"{net}.{NET_INDEX['ctrl-a']}.{OCTET[main]}")),
            "TB_DB_BACKUP": check_db_address("TB_DB_BACKUP", os.environ.get(
                "TB_DB_BACKUP", f"{net}.{NET_INDEX['ctrl-a']}.{OCTET[backup]}")),
            "TB_DB_PASSWORD": secrets.token_urlsafe(18),
            "TB_REPL_PASSWORD": secrets.token_urlsafe(18),
            "TB_OAM_TOKEN": secrets.token_urlsafe(24),
            "TB_STATE_DIR": str(self.dir),
            **{f"TB_IMAGE_{n.upper()}": f"tb/{n}:{image_tag()}" for n in ("host", "tmedia", "sipp")},
        }
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        self.env_file.chmod(0o600)
        self.env = env
        # the nodes' SSH keys, new with every bring-up (an inventory may reach hosts over SSH)
        from .remote import make_keys
        make_keys(self.dir / "ssh", [self.ip(n, net) for n in self.server_hosts + BOARDS
                                     for net in ("ctrl-a", "ctrl-b")]
                  + [self.ip(a, "voip") for a in AGENTS])

    @property
    def db_hosts(self) -> tuple[str, str]:
        """The hosts of the main and the backup database server by preference."""
        return DB_HOSTS if self.variant == "external-db" else HOSTS

    @property
    def server_hosts(self) -> tuple[str, ...]:
        """The Toolpack hosts, then the database hosts of their own (if any)."""
        return HOSTS + tuple(h for h in self.db_hosts if h not in HOSTS)

    def ip(self, node: str, net: str = "ctrl-a") -> str:
        return f"{self.env['TB_NET']}.{NET_INDEX[net]}.{OCTET[node]}"

    def compose(self, *args: str, check: bool = True, capture: bool = False):
        overlays = [a for f in VARIANTS[self.variant] for a in ("-f", str(COMPOSE_FILE.parent / f))]
        cmd = compose.command() + ["--env-file", str(self.env_file), "-p", self.project,
                                   "-f", str(COMPOSE_FILE), *overlays, *args]
        return subprocess.run(cmd, check=check, text=True,
                              capture_output=capture, cwd=ROOT)

    # ---- nodes ----------------------------------------------------------------------
    def _ssh_node(self, service: str):
        """The node as reached over SSH when the inventory says so, else None."""
        node = self.inventory.nodes.get(service) if self.inventory else None
        if node is None or node.reach != "ssh":
            return None
        if service not in self._remote:
            from .remote import SshNode
            self._remote[service] = SshNode(service, node, self.inventory_path.parent)
        return self._remote[service]

    def container(self, service: str):
        """The node's container, or its SshNode (the same API) when reached over SSH."""
        remote = self._ssh_node(service)
        if remote is not None:
            return remote
        found = self.docker.containers.list(all=True, filters={"label": [
            f"com.docker.compose.project={self.project}", f"com.docker.compose.service={service}"]})
        if not found:
            raise TestbedError(f"no container for {service} in project {self.project}")
        return found[0]

    def sipp_executor(self, node: str):
        """Where SIPp runs on the agent `node`: its container (the state directory's sipp/
        bind-mounted at /work) or the machine over SSH (harness/sipp.py agent_executor)."""
        from .sipp import agent_executor
        return agent_executor(self.container(node), self.dir / "sipp")

    def docker_containers(self):
        """The project's containers, whatever the inventory says (what bring-up made)."""
        return self.docker.containers.list(all=True, filters={
            "label": f"com.docker.compose.project={self.project}"})

    def containers(self):
        """Every node of the project: its container, or its SshNode when reached over SSH."""
        return [self._ssh_node(c.labels.get("com.docker.compose.service", "")) or c
                for c in self.docker_containers()]

    def running(self) -> bool:
        return bool(self.env) and any(c.status == "running" for c in self.containers())

    # ---- OAM ------------------------------------------------------------------------
    def oam(self, host: str, path: str, method: str = "GET", timeout: float = 3.0, **kw):
        """Ask a host's tboamapp over ctrl-a, falling back to ctrl-b (redundant paths)."""
        headers = {"Authorization": f"Bearer {self.env['TB_OAM_TOKEN']}"}
        last = None
        for net in ("ctrl-a", "ctrl-b"):
            try:
                r = httpx.request(method, f"http://{self.ip(host, net)}:8080{path}",
                                  headers=headers, timeout=timeout, **kw)
                r.raise_for_status()
                return r.json()
            except httpx.HTTPError as exc:
                last = exc
        raise TestbedError(f"OAM of {host} unreachable: {last}")

    def host_status(self, host: str, timeout: float = 3.0) -> HostStatus:
        try:
            return HostStatus(host, True, self.oam(host, "/api/v1/status", timeout=timeout))
        except TestbedError as exc:
            return HostStatus(host, False, None, str(exc))

    def roles(self, timeout: float = 0.5) -> dict[str, str]:
        """Both hosts asked at once, briefly: a dead host must not slow the sampling."""
        with ThreadPoolExecutor(len(HOSTS)) as pool:
            sts = dict(zip(HOSTS, pool.map(lambda h: self.host_status(h, timeout), HOSTS)))
        return {h: st.data["role"] if st.ok else "unreachable" for h, st in sts.items()}

    def master(self) -> str:
        active = [h for h, r in self.roles().items() if r == "active"]
        if len(active) != 1:
            raise TestbedError(f"expected exactly one active host, roles are {self.roles()}")
        return active[0]

    def slave(self) -> str:
        m = self.master()
        return [h for h in HOSTS if h != m][0]

    # ---- health ---------------------------------------------------------------------
    def health(self) -> tuple[bool, list[str]]:
        """Healthy: one active host holding every unit, both services fully running,
        replication running semi-synchronously from the main to the backup (judged on a
        fresh database view, see fresh_statuses)."""
        statuses, db = self.fresh_statuses()
        problems = self._problems(statuses, db)
        if db is None and any(st.ok for st in statuses.values()):
            problems.append(f"database view not refreshed within {DB_VIEW_DEADLINE_S:.0f} s")
        return not problems, problems

    def fresh_statuses(self) -> tuple[dict[str, HostStatus], dict | None]:
        """Both hosts' status, and a database view checked after this call began.

        The OAM serves the database view from a cache that is only refreshed when asked
        (and the answer that triggers the refresh is the old one), so a host whose OAM
        nobody asked for a while answers with how the servers were back then. Only a view
        checked after this call began counts (up to DB_VIEW_DEADLINE_S of asking again);
        None when no OAM gave one."""
        t0 = time.time()
        end = time.monotonic() + DB_VIEW_DEADLINE_S
        while True:
            statuses = {h: self.host_status(h) for h in HOSTS}
            views = [st.data["database"] for st in statuses.values() if st.ok]
            fresh = [v for v in views if db_view_checked_at(v) >= t0 - DB_VIEW_SLACK_S]
            if fresh or not views or time.monotonic() > end:
                return statuses, (fresh[0] if fresh else None)
            time.sleep(0.2)     # the refresh runs in the OAM now; ask again

    def db_view(self) -> dict:
        """The OAM's database view ({"main": ..., "backup": ...}) checked now."""
        _, db = self.fresh_statuses()
        if db is None:
            raise TestbedError("no OAM gave a fresh database view")
        return db

    def _problems(self, statuses: dict, db: dict | None) -> list[str]:
        problems = []
        for h, st in statuses.items():
            if not st.ok:
                problems.append(f"{h}: OAM unreachable")
                continue
            down = [a for a, i in st.data["apps"].items() if i.get("state") != "running"]
            if len(st.data["apps"]) < 4 or down:
                problems.append(f"{h}: applications not running: {down or 'unknown'}")
        live = {h: st.data for h, st in statuses.items() if st.ok}
        active = [h for h, d in live.items() if d["role"] == "active"]
        if len(active) != 1:
            problems.append(f"active hosts: {active or 'none'}")
        else:
            units = live[active[0]]["units"]
            unheld = [u for u in BOARDS if not units.get(u, {}).get("held")]
            if unheld:
                problems.append(f"units not under control of {active[0]}: {unheld}")
            services = live[active[0]].get("services", {})
            unserved = [u for u in UNITS if not services.get(u)]
            if unserved:
                problems.append(f"unit interfaces not served: {unserved}")
            bonds = [u for u in BOARDS if not ((units.get(u, {}).get("status") or {}).get("bond") or {})
                     .get("up")]
            if bonds:
                problems.append(f"bond down on {bonds}")
            apps = [u for u in BOARDS if (units.get(u, {}).get("status") or {}).get("serves")
                    and (units[u]["status"].get("rtp_packets") is None)]
            if apps:
                problems.append(f"SIP application not ready on {apps}")
        if db:
            main, backup = db["main"], db["backup"]
            if not main.get("reachable"):
                problems.append("main database unreachable")
            elif main.get("semi_sync", {}).get("Rpl_semi_sync_master_status") != "ON" \
                    or main.get("semi_sync_clients", 0) < 1:
                problems.append("main database: semi-synchronous replication not active")
            rep = backup.get("replica")
            if not backup.get("reachable"):
                problems.append("backup database unreachable")
            elif not rep or rep["io_running"] != "Yes" or rep["sql_running"] != "Yes":
                problems.append(f"backup database not replicating: {rep}")
        return problems

    def wait_healthy(self, deadline_s: float = 120.0, quiet: bool = False) -> None:
        end = time.monotonic() + deadline_s
        last = None
        while True:
            ok, problems = self.health()
            if ok:
                return
            if problems != last and not quiet:
                log("waiting: " + "; ".join(problems))
                last = problems
            if time.monotonic() > end:
                raise TestbedError(f"testbed not healthy after {deadline_s:.0f} s: "
                                   + "; ".join(problems))
            time.sleep(0.5)

    # ---- lifecycle ------------------------------------------------------------------
    def ensure_images(self) -> None:
        """Build (or confirm) the images: seconds when nothing changed, so always done;
        TB_SKIP_BUILD=1 uses whatever images are there."""
        if os.environ.get("TB_SKIP_BUILD") == "1":
            return
        subprocess.run(["bash", str(ROOT / "images" / "build.sh")], check=True,
                       env={**os.environ, "TAG": image_tag()},
                       stdout=subprocess.DEVNULL if os.environ.get("CI") else None)

    def stale_containers(self) -> list[str]:
        """Containers started from an older build of their image (attach would test old code)."""
        out = []
        for c in self.containers():
            if not hasattr(c, "image"):
                continue      # a node reached over SSH: not an image of this checkout
            try:
                if c.image.id != self.docker.images.get(c.attrs["Config"]["Image"]).id:
                    out.append(c.name)
            except docker.errors.ImageNotFound:
                out.append(c.name)
        return out

    def up(self, deadline_s: float = 180.0, logs_dir: Path | None = None) -> None:
        """Bring the project up (or attach) and wait until healthy. A bring-up that fails
        saves every node's log to `logs_dir` (default runs/bringup-<time>/) and tears down
        what it started, then raises; an attached testbed is never torn down."""
        self.ensure_images()
        started = False
        if self.running():
            log(f"project {self.project} already running: attaching"
                + (f" (variant {self.variant})" if self.variant else ""))
            wanted = variant_name()
            if os.environ.get("TB_VARIANT") is not None and wanted != self.variant:
                raise TestbedError(f"project {self.project} runs variant {self.variant or '(none)'}, "
                                   f"not {wanted or '(none)'}: `make testbed-down` first, or "
                                   f"another PROJECT=")
            stale = self.stale_containers()
            if stale:
                log(f"WARNING: {', '.join(stale)} run older images than the ones just built: "
                    f"`make testbed-down testbed-up` to test the current code")
        else:
            if self.containers():   # leftovers of an interrupted run: start clean
                self.compose("down", "-v", "--remove-orphans", check=False)
            self.variant = variant_name()
            self._write_env()
            log(f"starting project {self.project} on {self.env['TB_NET']}.0.0/16"
                + (f", variant {self.variant}" if self.variant else ""))
            started = True
        t0 = time.monotonic()
        try:
            if started:
                self.compose("up", "-d")
            self.wait_healthy(deadline_s)
        except BaseException:
            if started:
                out = self.save_logs(logs_dir or ROOT / "runs" / f"bringup-{time.strftime('%Y%m%d-%H%M%S')}")
                log(f"bring-up failed: logs saved in {out}; removing project {self.project}")
                self.down()
            raise
        log(f"healthy after {time.monotonic() - t0:.1f} s")
        from .inventory import InventoryError, write_for
        (self.dir / "inventory.yaml").unlink(missing_ok=True)
        try:     # a bad one fails its own test (test_topology), not the bring-up
            log(f"inventory: {write_for(self, self.dir / 'inventory.yaml')}")
        except InventoryError as exc:
            log(f"WARNING: no inventory written: {exc}")

    def save_logs(self, out: Path) -> Path:
        """Every container's log (stdout and stderr, with timestamps) into `out`."""
        out.mkdir(parents=True, exist_ok=True)
        for c in self.containers():
            try:
                (out / f"{c.name}.log").write_bytes(c.logs(timestamps=True))
            except docker.errors.APIError as exc:
                (out / f"{c.name}.log").write_text(f"logs unavailable: {exc}\n")
        return out

    def down(self) -> None:
        if self.env_file.exists() or self.containers():
            if not self.env_file.exists():
                self._write_env()   # compose needs the variables to parse the file
            self.compose("down", "-v", "--remove-orphans", "-t", "5", check=False)
        if self.dir.exists():
            subprocess.run(["rm", "-rf", str(self.dir)], check=False)
        log(f"project {self.project} removed")

    def status_table(self) -> str:
        rows = [("node", "state", "role", "apps", "detail")]
        for h in HOSTS:
            st = self.host_status(h)
            c = self._state(h)
            if not st.ok:
                rows.append((h, c, "?", "?", st.error or ""))
                continue
            d = st.data
            apps = " ".join(f"{a.split('_')[-1]}:{i['state'][:3]}({i['restarts']})"
                            for a, i in d["apps"].items())
            peer = d.get("peer") or {}
            rows.append((h, c, d["role"], apps,
                         f"peer paths {peer.get('paths_alive')}; db via {d['gateway'].get('db_server')}"))
        db, units = None, None
        for h in HOSTS:
            st = self.host_status(h)
            if st.ok:
                db = db or st.data["database"]
                if st.data["role"] == "active":
                    units = st.data["units"]
        if db:
            m, b = db["main"], db["backup"]
            for h in self.server_hosts[len(HOSTS):]:
                rows.append((h, self._state(h), "database host", "", self.ip(h)))
            rows.append(("db main", "up" if m.get("reachable") else "down", "main", "",
                         f"{m['ip']} semi-sync {m.get('semi_sync', {}).get('Rpl_semi_sync_master_status')} "
                         f"clients {m.get('semi_sync_clients')} gtid {m.get('gtid')}"))
            rep = b.get("replica") or {}
            rows.append(("db backup", "up" if b.get("reachable") else "down", "backup", "",
                         f"{b['ip']} io {rep.get('io_running')} sql {rep.get('sql_running')} "
                         f"gtid {b.get('gtid')}"))
        for u in BOARDS:
            info = (units or {}).get(u, {}) if db else {}
            s = info.get("status") or {}
            bond = s.get("bond") or {}
            hot = (s.get("hot_spare") or {}).get("waiting")
            rows.append((u, self._state(u), "held" if info.get("held") else "not held",
                         f"serves {s.get('serves') or 'nothing (spare' + (f', hot: {hot} SIP stacks waiting' if hot else '') + ')'}",
                         f"controller {s.get('controller')} calls {s.get('calls_active')}/"
                         f"{s.get('calls_total')} bond {bond.get('active_port')} "
                         f"failovers {bond.get('failovers')} boots {s.get('boots')}"))
        rows.append(("voip-sw", self._state("voip-sw"), "", "", "voip + voip-p1 + voip-p2"))
        for n in ("sipp-uac", "sipp-uas"):
            rows.append((n, self._state(n), "", "", self.ip(n, "voip")))
        widths = [max(len(str(r[i])) for r in rows) for i in range(5)]
        return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(r, widths)) for r in rows)

    def _state(self, service: str) -> str:
        try:
            return self.container(service).status
        except TestbedError:
            return "absent"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.testbed")
    p.add_argument("command", choices=["up", "down", "status", "logs", "heal"])
    p.add_argument("--project", default=None)
    args = p.parse_args(argv)
    tb = Testbed(args.project)
    try:
        if args.command == "up":
            tb.up()
            print(tb.status_table())
        elif args.command == "down":
            tb.down()
        elif args.command == "status":
            if not tb.running():
                print(f"project {tb.project} is not running")
                return 1
            ok, problems = tb.health()
            print(tb.status_table())
            print("healthy" if ok else "NOT healthy: " + "; ".join(problems))
            return 0 if ok else 1
        elif args.command == "logs":
            tb.compose("logs", "--no-color", "-t")
        elif args.command == "heal":
            from .faults import heal_all
            heal_all(tb)
            tb.wait_healthy()
            print(tb.status_table())
    except (TestbedError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
