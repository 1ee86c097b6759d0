"""The inventory format: a good one loads, and each malformed one gets an error that
names the file and the field (no Docker)."""
import copy

import pytest
import yaml

from harness.inventory import InventoryError, load, main, parse


def node(role, **kw):
    nets = {"host": ("ctrl-a", "ctrl-b"), "unit": ("ctrl-a", "ctrl-b"), "agent": ("voip",)}[role]
    base = {"role": role, "reach": "docker", "container": f"c-{role}",
            "addresses": {n: f"10.0.{k}.1" for k, n in enumerate(nets, 1)}}
    return {**base, **kw}


GOOD = {"name": "lab", "nodes": {
    "host-a": node("host", reach="ssh", container=None,
                   ssh={"address": "192.0.2.11", "user": "ops", "key": "~/.ssh/id_ed25519",
                        "known_hosts": "lab_known_hosts"},
                   power_off=["ipmitool", "-H", "bmc-{node}", "chassis", "power", "off"],
                   power_on=["ipmitool", "-H", "bmc-{node}", "chassis", "power", "on"]),
    "host-b": node("host"), "tmedia-1": node("unit"), "tmedia-2": node("unit"),
    "sipp-uac": node("agent"), "sipp-uas": node("agent")}}


def broken(path: str, value):
    """GOOD with the field at dotted `path` set to value (None removes it)."""
    data = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    d = data
    for p in parents:
        d = d[p]
    if value is None:
        del d[last]
    else:
        d[last] = value
    return data


def test_a_good_inventory_loads_and_fills_in_the_power_commands():
    inv = parse(GOOD)
    assert inv.nodes["host-a"].ssh.port == 22
    off, on = inv.power_commands("host-a")
    assert off[2] == "bmc-host-a" and on[-1] == "on"
    assert inv.power_commands("host-b") is None


@pytest.mark.parametrize("path,value,field,says", [
    ("nodes.host-a.ssh.user", None, "nodes.host-a.ssh.user", "Field required"),
    ("nodes.host-a.ssh.address", "localhost", "nodes.host-a.ssh.address", "not localhost"),
    ("nodes.host-a.ssh.port", 70000, "nodes.host-a.ssh.port", "less than or equal to 65535"),
    ("nodes.host-a.ssh", None, "nodes.host-a", "reach: ssh needs `ssh`"),
    ("nodes.host-b.container", None, "nodes.host-b", "needs `container`"),
    ("nodes.host-b.reach", "telnet", "nodes.host-b.reach", "'docker' or 'ssh'"),
    ("nodes.host-b.addresses.ctrl-b", None, "nodes.host-b", "address on ctrl-b"),
    ("nodes.host-b.addresses.ctrl-a", "10.0.1.300", "nodes.host-b.addresses.ctrl-a", "IPv4"),
    ("nodes.host-b.addresses.ctrl-c", "10.0.3.1", "nodes.host-b.addresses.ctrl-c", "ctrl-a"),
    ("nodes.host-a.power_on", None, "nodes.host-a", "go together"),
    ("nodes.tmedia-2", None, "(top level)", "node tmedia-2 (role unit) is missing"),
    ("nodes.sipp-uac.role", "switch", "(top level)", "sipp-uac must have role agent, not switch"),
    ("nodes.host-b.colour", "blue", "nodes.host-b.colour", "Extra inputs"),
    ("name", "", "name", "at least 1 character"),
])
def test_a_malformed_inventory_names_the_field(path, value, field, says):
    with pytest.raises(InventoryError) as e:
        parse(broken(path, value), "lab.yaml")
    assert str(e.value).startswith(f"lab.yaml: {field}: "), str(e.value)
    assert says in str(e.value), str(e.value)


def test_not_a_mapping_and_not_yaml(tmp_path):
    with pytest.raises(InventoryError, match="a mapping with `name` and `nodes`"):
        parse(["host-a"], "x.yaml")
    f = tmp_path / "bad.yaml"
    f.write_text("nodes: [unclosed\n")
    with pytest.raises(InventoryError, match="bad.yaml: not YAML"):
        load(f)
    with pytest.raises(InventoryError, match="No such file"):
        load(tmp_path / "absent.yaml")


def test_the_check_command(tmp_path, capsys):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(yaml.safe_dump(GOOD))
    bad.write_text(yaml.safe_dump(broken("nodes.host-a.ssh.key", None)))
    assert main(["check", str(good)]) == 0
    assert "lab, 6 nodes (docker 5, ssh 1)" in capsys.readouterr().out
    assert main(["check", str(bad)]) == 1
    assert "nodes.host-a.ssh.key: Field required" in capsys.readouterr().err
