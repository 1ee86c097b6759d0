"""The inventory: every node of a deployment, its addresses, and how the harness reaches
it, `docker` (a container on this machine, today's testbed) or `ssh` (a real machine).
The harness reaches the system only as an operator would, so an inventory is all it
needs to know about a deployment it did not bring up. The testbed's own topology is one
inventory, written at bring-up (`from_testbed`).

    python -m harness.inventory check FILE         # the first error names its field
    python -m harness.inventory generate [--project P]   # the running testbed's, as YAML

Bring-up writes the testbed's own as .testbed/<project>/inventory.yaml.

A node is named by its place in the system (host-a, tmedia-1, sipp-uac, ...): those are
the names the matrix and the faults use. Keys of `ssh` nodes are files (no passwords);
`power_off` / `power_on` / `shutdown` / `logs` are commands run on the harness's machine
(a BMC or PDU tool; for logs e.g. `ssh node journalctl ...`), with `{node}` replaced by
the node's name: a machine cannot power itself back on.

`TB_INVENTORY=FILE` makes the harness reach the inventory's `ssh` nodes over SSH
(harness/remote.py); the others, and every node without it, through Docker."""
from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

NETS = ("ctrl-a", "ctrl-b", "voip", "voip-p1", "voip-p2", "vlan101", "vlan102")
ROLES = ("host", "unit", "database", "agent", "switch")
# the nodes every deployment has, with the role each must have
REQUIRED = {"host-a": "host", "host-b": "host", "tmedia-1": "unit", "tmedia-2": "unit",
            "sipp-uac": "agent", "sipp-uas": "agent"}
# the networks a node of a role must have an address on: the hosts and units are
# reached over both control networks (the seed's redundant paths), callers on VoIP
NEEDS = {"host": ("ctrl-a", "ctrl-b"), "unit": ("ctrl-a", "ctrl-b"), "agent": ("voip",),
         "database": ("ctrl-a",), "switch": ()}


class InventoryError(ValueError):
    """A malformed inventory: the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Ssh(_Strict):
    address: str = Field(min_length=1)
    port: int = Field(22, ge=1, le=65535)
    user: str = Field(min_length=1)
    key: Path                    # the private key file; no password is ever used
    known_hosts: Path            # the node's host key: an unknown or changed one is refused
    # an agent's directory for SIPp's scenario, traces and captures (copied by SFTP)
    work_dir: str = Field("/var/tmp/ha-testbed", pattern=r"^/[\w./-]*$")

    @field_validator("address")
    @classmethod
    def _no_localhost(cls, v: str) -> str:
        if v.strip().lower() in ("localhost", "127.0.0.1", "::1"):
            raise ValueError("an explicit address of the machine, not localhost")
        return v


class Node(_Strict):
    role: Literal[ROLES]
    reach: Literal["docker", "ssh"] = "docker"
    container: str | None = None          # docker: the container's name
    ssh: Ssh | None = None                 # ssh: how to log in
    addresses: dict[Literal[NETS], ipaddress.IPv4Address] = Field(default_factory=dict)
    power_off: list[str] | None = None     # argv run on the harness's machine
    power_on: list[str] | None = None
    shutdown: list[str] | None = None      # a graceful shutdown (argv, harness's machine)
    logs: list[str] | None = None          # prints the node's log, RFC 3339 stamps; {since}: unix time

    @model_validator(mode="after")
    def _reachable(self):
        if self.reach == "docker" and not self.container:
            raise ValueError("reach: docker needs `container` (the container's name)")
        if self.reach == "ssh" and self.ssh is None:
            raise ValueError("reach: ssh needs `ssh` (address, user, key)")
        if (self.power_off is None) != (self.power_on is None):
            raise ValueError("power_off and power_on go together (a node powered off must come back)")
        missing = [n for n in NEEDS[self.role] if n not in self.addresses]
        if missing:
            raise ValueError(f"role {self.role} needs an address on {', '.join(missing)}")
        return self


class Inventory(_Strict):
    name: str = Field(min_length=1)
    nodes: dict[str, Node]

    @model_validator(mode="after")
    def _complete(self):
        for name, role in REQUIRED.items():
            if name not in self.nodes:
                raise ValueError(f"node {name} (role {role}) is missing")
            if self.nodes[name].role != role:
                raise ValueError(f"node {name} must have role {role}, not {self.nodes[name].role}")
        return self

    def power_commands(self, node: str) -> tuple[list[str], list[str]] | None:
        """(off, on) argv for `node`, `{node}` filled in; None when it has none."""
        n = self.nodes[node]
        if n.power_off is None:
            return None
        return ([a.replace("{node}", node) for a in n.power_off],
                [a.replace("{node}", node) for a in n.power_on])


def _field(loc: tuple) -> str:
    # pydantic marks a bad mapping key with "[key]": the key is the field named
    return ".".join(str(p) for p in loc if p != "[key]") or "(top level)"


def parse(data, source: str = "inventory") -> Inventory:
    """An Inventory from parsed YAML; InventoryError naming `source` and the field."""
    if not isinstance(data, dict):
        raise InventoryError(f"{source}: a mapping with `name` and `nodes` expected, "
                             f"not {type(data).__name__}")
    try:
        return Inventory.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        msg = first["msg"].removeprefix("Value error, ")
        raise InventoryError(f"{source}: {_field(first['loc'])}: {msg}{more}") from None


def load(path: Path) -> Inventory:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise InventoryError(f"{path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise InventoryError(f"{path}: not YAML: {exc}") from None
    return parse(data, str(path))


def from_testbed(tb, ssh: tuple[str, ...] = ()) -> dict:
    """The running testbed as an inventory (plain data, as the YAML file holds it): every
    container of the project reached by docker, with the addresses Docker gave it on
    each network of the project, and power through `docker kill` / `docker start`. (A
    unit's VoIP address is not a board's: it moves with the unit to the spare.)"""
    nodes = {}
    prefix = f"{tb.project}_"
    for c in sorted(tb.docker_containers(), key=lambda c: c.name):
        name = c.labels.get("com.docker.compose.service", c.name)
        nets = c.attrs.get("NetworkSettings", {}).get("Networks", {}) or {}
        # a stopped container has no IPAddress: its static one (compose) is in IPAMConfig
        addresses = {k[len(prefix):]: v.get("IPAddress") or (v.get("IPAMConfig") or {}).get("IPv4Address")
                     for k, v in sorted(nets.items()) if k.startswith(prefix) and k[len(prefix):] in NETS}
        # voip-p1/p2 are the bond's two ports, layer 2 only: Docker's address on them is
        # on no interface of the node (its bridge, or the unit's bond, holds the address)
        addresses = {k: v for k, v in addresses.items() if v and k not in ("voip-p1", "voip-p2")}
        role = ("host" if name.startswith("host-") else "unit" if name.startswith("tmedia-")
                else "agent" if name.startswith("sipp-") else "database" if name.startswith("db-")
                else "switch")
        nodes[name] = {"role": role, "reach": "docker", "container": c.name, "addresses": addresses,
                       "power_off": ["docker", "kill", c.name], "power_on": ["docker", "start", c.name]}
        if name in ssh:
            # as a real machine: SSH to its ctrl-a address (an agent's VoIP one) with the
            # bring-up's keys (paths relative to the inventory, in the testbed's state
            # directory); an agent's SIPp files in a directory of its own, not the one the
            # container shares with the harness, so that they really cross SFTP
            nodes[name].update(
                reach="ssh", container=None,
                ssh={"address": addresses.get("ctrl-a") or addresses["voip"], "user": "root",
                     "key": "ssh/client_ed25519", "known_hosts": "ssh/known_hosts",
                     "work_dir": "/var/tmp/ha-testbed"},
                shutdown=["docker", "stop", "-t", "20", c.name],
                logs=["docker", "logs", "-t", "--since", "{since}", c.name])
    return {"name": tb.project, "nodes": nodes}


def write_for(tb, path: Path, ssh: tuple[str, ...] = ()) -> Path:
    """The testbed's inventory into `path` (in its state directory: key paths are
    relative to it), checked by reading it back; `ssh`: the nodes reached over SSH."""
    data = from_testbed(tb, ssh)
    parse(data, f"the testbed {tb.project}")
    path.write_text("# written at bring-up: this testbed as an inventory (harness/inventory.py)\n"
                    + yaml.safe_dump(data, sort_keys=False))
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.inventory", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="check an inventory file").add_argument("file", type=Path)
    g = sub.add_parser("generate", help="the running testbed's inventory, as YAML")
    g.add_argument("--project", default=None)
    g.add_argument("--ssh", default="", help="nodes reached over SSH, comma-separated (e.g. host-a,host-b)")
    args = p.parse_args(argv)
    if args.command == "check":
        try:
            inv = load(args.file)
        except InventoryError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        by = {}
        for n in inv.nodes.values():
            by[n.reach] = by.get(n.reach, 0) + 1
        print(f"{args.file}: {inv.name}, {len(inv.nodes)} nodes ("
              + ", ".join(f"{k} {v}" for k, v in sorted(by.items())) + ")")
        return 0
    from .testbed import Testbed
    tb = Testbed(args.project)
    if not tb.running():
        print(f"error: project {tb.project} is not running", file=sys.stderr)
        return 1
    data = from_testbed(tb, tuple(n for n in args.ssh.split(",") if n))
    parse(data, f"the testbed {tb.project}")      # what it writes, it can read back
    print(yaml.safe_dump(data, sort_keys=False), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
