"""The external-db variant (two database hosts of their own, compose/external-db.yml)
without a running testbed: explicit database addresses refused at both ends, a database
host's rule for its peer's loss, and the overlay as Compose merges it. The variant's
MySQL and host operations run on a real testbed in `make test` (the Makefile's XDB_OPS)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import yaml

from emulator.host.db_agent import db_host_peer_lost, reachable
from harness import compose
from harness.testbed import TestbedError as TbError
from harness.testbed import COMPOSE_FILE, ROOT, VARIANTS, check_db_address, variant_name

PEER = ("10.0.1.14", "10.0.2.14")
WITNESSES = ("10.0.1.11", "10.0.2.11", "10.0.1.12", "10.0.2.12")


# -- explicit addresses (the seed: 'localhost' or '' is no longer permitted) -------------

@pytest.mark.parametrize("bad", ["localhost", "", " ", "127.0.0.1", "0.0.0.0", "db-a", "10.0.1"])
def test_the_bring_up_refuses_a_database_address_that_is_not_explicit(bad):
    with pytest.raises(TbError, match="TB_DB_MAIN"):
        check_db_address("TB_DB_MAIN", bad)


def test_an_explicit_database_address_passes():
    assert check_db_address("TB_DB_BACKUP", " 172.28.1.14 ") == "172.28.1.14"


@pytest.mark.parametrize("module", ["emulator.host.init", "emulator.host.db_host"])
@pytest.mark.parametrize("bad", ["localhost", ""])
def test_a_host_refuses_to_start_with_a_database_address_that_is_not_explicit(module, bad):
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "TB_HOST": "host-a",
           "TB_PEER": "host-b", "TB_CTRL_IPS": "10.0.1.11,10.0.2.11",
           "TB_PEER_CTRL_IPS": "10.0.1.12,10.0.2.12", "TB_DB_MAIN": bad,
           "TB_DB_BACKUP": "10.0.1.12", "TB_DB_ROLE": "main", "TB_DB_PASSWORD": "x",
           "TB_REPL_PASSWORD": "y", "TB_OAM_TOKEN": "z", "TB_RUN_DIR": "/nonexistent/tb"}
    res = subprocess.run([sys.executable, "-m", module], env=env, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode != 0
    assert "TB_DB_MAIN must be an explicit IPv4 address" in res.stderr, res.stderr[-2000:]
    assert "'localhost' or '' is not permitted" in res.stderr


# -- a database host's view of its peer (no sys_manager to ask) ---------------------------

def probe(up: set[str]):
    asked = []

    def p(ip, port):
        asked.append((ip, port))
        return ip in up
    return p, asked


def test_the_peer_database_host_is_lost_when_silent_on_both_paths_and_a_witness_answers():
    p, asked = probe({"10.0.1.11"})
    assert db_host_peer_lost(PEER, WITNESSES, p)
    assert asked[:2] == [(PEER[0], 3306), (PEER[1], 3306)]     # both of its paths first


def test_a_peer_heard_on_one_path_is_not_lost():
    p, _ = probe({PEER[1], "10.0.1.11"})                       # only ctrl-a cut
    assert not db_host_peer_lost(PEER, WITNESSES, p)


def test_a_database_host_that_hears_no_witness_is_the_one_cut_off_and_does_not_promote():
    p, _ = probe(set())
    assert not db_host_peer_lost(PEER, WITNESSES, p)


def test_reachable_counts_a_refused_connection_as_a_host_that_answers():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]        # bound, not listening: refused
        assert reachable("127.0.0.1", port)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert reachable("127.0.0.1", s.getsockname()[1])


# -- the variant and its overlay ----------------------------------------------------------

def test_an_unknown_variant_is_an_error_naming_the_known_ones(monkeypatch):
    monkeypatch.setenv("TB_VARIANT", "three-dbs")
    with pytest.raises(TbError, match="unknown VARIANT 'three-dbs'.*external-db"):
        variant_name()


def test_a_database_host_without_the_configuration_seed_refuses_to_start():
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "TB_HOST": "db-a",
           "TB_PEER": "db-b", "TB_CTRL_IPS": "10.0.1.13,10.0.2.13",
           "TB_PEER_CTRL_IPS": "10.0.1.14,10.0.2.14", "TB_DB_MAIN": "10.0.1.13",
           "TB_DB_BACKUP": "10.0.1.14", "TB_DB_ROLE": "main", "TB_DB_PASSWORD": "x",
           "TB_REPL_PASSWORD": "y", "TB_OAM_TOKEN": "z", "TB_DB_WITNESS_IPS": "10.0.1.11",
           "TB_RUN_DIR": "/nonexistent/tb"}
    res = subprocess.run([sys.executable, "-m", "emulator.host.db_host"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "needs TB_SERVICES" in res.stderr, res.stderr[-2000:]


def test_the_overlay_adds_two_database_hosts_and_takes_the_server_off_the_toolpack_hosts(tmp_path):
    env = tmp_path / "testbed.env"
    env.write_text("TB_NET=172.29\nTB_DB_MAIN=172.29.1.13\nTB_DB_BACKUP=172.29.1.14\n"
                   "TB_DB_PASSWORD=p\nTB_REPL_PASSWORD=r\nTB_OAM_TOKEN=t\n"
                   f"TB_STATE_DIR={tmp_path}\n")
    files = [a for f in ("testbed.yml", *VARIANTS["external-db"])
             for a in ("-f", str(COMPOSE_FILE.parent / f))]
    res = subprocess.run(compose.command() + ["--env-file", str(env), "-p", "xdbtest", *files,
                                              "config"], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    services = yaml.safe_load(res.stdout)["services"]

    def env_of(name):
        e = services[name]["environment"]
        return e if isinstance(e, dict) else dict(x.split("=", 1) for x in e)
    for h in ("host-a", "host-b"):
        e = env_of(h)
        assert e["TB_DB_ROLE"] == "none"
        assert (e["TB_DB_MAIN"], e["TB_DB_BACKUP"]) == ("172.29.1.13", "172.29.1.14")
        assert e["TB_UNITS"].startswith("tmedia-1=")          # the base's keys are kept
    for db, role, octet in (("db-a", "main", 13), ("db-b", "backup", 14)):
        e = env_of(db)
        assert e["TB_DB_ROLE"] == role and e["TB_HOST"] == db
        assert e["TB_CTRL_IPS"] == f"172.29.1.{octet},172.29.2.{octet}"
        assert len(e["TB_DB_WITNESS_IPS"].split(",")) == 4
        # the seed of a fresh cluster, which either database host may bootstrap
        assert e["TB_SERVICES"].startswith("tmedia-1=172.29.3.21/24,tmedia-2=")
        assert e["TB_SEED_ROUTES"] == "172.29.3.32:5060,172.29.3.33:5060"
        nets = services[db]["networks"]
        assert {n: v["ipv4_address"] for n, v in nets.items()} == {
            "ctrl-a": f"172.29.1.{octet}", "ctrl-b": f"172.29.2.{octet}"}


# -- a Toolpack host's loss takes no database with it (judged by the servers' processes) --

def test_database_servers_untouched_only_with_the_same_process_in_the_same_role():
    from harness.scenario import db_untouched_check
    before = {"db-a": {"pid": 10, "role": "main"}, "db-b": {"pid": 11, "role": "replica"}}
    assert db_untouched_check(before, dict(before)).status == "ok"
    restarted = {**before, "db-a": {"pid": 99, "role": "main"}}
    assert db_untouched_check(before, restarted).status == "failed"
    promoted = {"db-a": {"pid": 10, "role": "replica"}, "db-b": {"pid": 11, "role": "main"}}
    sub = db_untouched_check(before, promoted)
    assert sub.status == "failed" and "db-b" in sub.detail
    gone = {**before, "db-b": {"error": "ctl mysql status on db-b: db-b is exited"}}
    assert db_untouched_check(before, gone).status == "failed"


def test_the_check_runs_for_host_faults_only_where_the_servers_are_apart():
    from types import SimpleNamespace as NS
    from harness.scenario import _db_apart
    external, own = NS(db_hosts=("db-a", "db-b")), NS(db_hosts=("host-a", "host-b"))
    op = lambda kind: NS(fault={"kind": kind})
    assert _db_apart(external, op("host_power_off")) and _db_apart(external, op("network_cut"))
    assert not _db_apart(external, op("mysql_kill")) and not _db_apart(external, op("kill_process"))
    assert not _db_apart(own, op("host_power_off"))
