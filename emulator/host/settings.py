"""Host settings, all from the environment the compose file sets (one place to read them)."""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field

RUN_DIR = os.environ.get("TB_RUN_DIR", "/run/toolpack")

GATEWAY_PORT = 7100
SYSMGR_PORT = 7200
UNIT_CONTROL_PORT = 7000
OAM_PORT = 8080
APPS = ("toolpack_sys_manager", "toolpack_engine", "gateway", "tboamapp")


def _env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None or value == "":
        raise SystemExit(f"missing required environment variable {name}")
    return value


def _choice(name: str, choices: tuple[str, ...]) -> str:
    value = _env(name)
    if value not in choices:
        raise SystemExit(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def explicit_address(name: str, value: str) -> str:
    """A database server's address must be explicit (the seed: with two database servers
    'localhost' or '' is no longer permitted): an IPv4 address that is not loopback."""
    v = (value or "").strip()
    try:
        ip = ipaddress.IPv4Address(v)
    except ValueError:
        raise SystemExit(f"{name} must be an explicit IPv4 address of the database server, "
                         f"not {value!r} ('localhost' or '' is not permitted)") from None
    if ip.is_loopback or ip.is_unspecified:
        raise SystemExit(f"{name} must be the database server's own address, not {v} "
                         "(loopback or unspecified: the peer could not reach it)")
    return v


def _ms(name: str, default: int) -> float:
    return int(os.environ.get(name, default)) / 1000.0


@dataclass(frozen=True)
class Settings:
    host: str                       # this host's name: host-a / host-b
    peer: str
    ctrl_ips: tuple[str, str]       # this host on ctrl-a, ctrl-b
    peer_ctrl_ips: tuple[str, str]
    units: dict[str, tuple[str, str]]   # unit name -> (ctrl-a ip, ctrl-b ip)
    db_main: str                    # explicit IPs, never localhost (seed)
    db_backup: str
    db_role: str                    # "main" or "backup": what this host's server starts as;
                                    # "none": no server here (two external database hosts)
    db_password: str
    repl_password: str
    oam_token: str
    priority: int                   # lower wins the first election
    hb_interval: float = 0.1
    peer_timeout: float = 0.6
    poll_interval: float = 0.2
    lease: float = 1.5
    handover_holddown: float = 3.0
    # N+1 (n_plus_one.py): unit -> {"address": ip/prefix on the bond, "vlans": [[id,
    # ip/prefix], ...]}; its default board is the board of the same name, the others spares
    services: dict = field(default_factory=dict)
    unit_dead: float = 3.0
    # a database host's witnesses: the Toolpack hosts' control addresses (db_agent.py)
    witness_ips: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> "Settings":
        units = {}
        # TB_UNITS="tmedia-1=172.28.1.21/172.28.2.21,tmedia-2=..." (none on a database host)
        for item in filter(str.strip, os.environ.get("TB_UNITS", "").split(",")):
            name, ips = item.split("=")
            a, b = ips.split("/")
            units[name.strip()] = (a.strip(), b.strip())
        services = {}
        # TB_SERVICES="tmedia-1=172.28.3.21/24+101:172.28.101.21/24,tmedia-2=...": each
        # unit's VoIP interface on the bond, then its virtual ports (VLAN id:address)
        for item in os.environ.get("TB_SERVICES", "").split(","):
            if item.strip():
                name, spec = item.split("=")
                address, *vlans = spec.strip().split("+")
                services[name.strip()] = {
                    "address": address, "vlans": [[int(v.split(":")[0]), v.split(":")[1]] for v in vlans]}
        return cls(
            host=_env("TB_HOST"),
            peer=_env("TB_PEER"),
            ctrl_ips=tuple(_env("TB_CTRL_IPS").split(",")),
            peer_ctrl_ips=tuple(_env("TB_PEER_CTRL_IPS").split(",")),
            units=units,
            db_main=explicit_address("TB_DB_MAIN", os.environ.get("TB_DB_MAIN", "")),
            db_backup=explicit_address("TB_DB_BACKUP", os.environ.get("TB_DB_BACKUP", "")),
            db_role=_choice("TB_DB_ROLE", ("main", "backup", "none")),
            db_password=_env("TB_DB_PASSWORD"),
            repl_password=_env("TB_REPL_PASSWORD"),
            oam_token=_env("TB_OAM_TOKEN"),
            priority=int(_env("TB_PRIORITY", "1")),
            hb_interval=_ms("TB_HB_INTERVAL_MS", 50),
            peer_timeout=_ms("TB_PEER_TIMEOUT_MS", 400),
            poll_interval=_ms("TB_POLL_INTERVAL_MS", 100),
            lease=_ms("TB_LEASE_MS", 1000),
            handover_holddown=_ms("TB_HANDOVER_HOLDDOWN_MS", 3000),
            services=services,
            unit_dead=_ms("TB_UNIT_DEAD_MS", 2000),
            witness_ips=tuple(ip for ip in os.environ.get("TB_DB_WITNESS_IPS", "").split(",") if ip),
        )
