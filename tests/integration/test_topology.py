"""The running testbed: one active host, the unit under its control, credentials
generated, replication carrying writes from the main to the backup."""
import secrets
import time

import httpx
import pymysql
import pytest

from harness.faults import wait_for
from harness.testbed import HOSTS


def test_exactly_one_active_host_holding_the_unit(testbed):
    roles = testbed.roles()
    assert sorted(roles.values()) == ["active", "standby"], roles
    master = testbed.master()
    st = testbed.oam(master, "/api/v1/status")
    assert st["units"]["tmedia-1"]["held"]
    assert st["units"]["tmedia-1"]["status"]["controller"] == master
    assert st["peer"]["paths_alive"] == ["ctrl-a", "ctrl-b"]


@pytest.mark.parametrize("token", [None, "wrong", "x" * 32])
def test_oam_refuses_a_missing_or_wrong_token(testbed, token):
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    r = httpx.get(f"http://{testbed.ip('host-a')}:8080/api/v1/status", headers=headers, timeout=3)
    assert r.status_code in (401, 403), r.text


def test_credentials_are_generated_per_bring_up(testbed):
    env = testbed.env
    for key in ("TB_DB_PASSWORD", "TB_REPL_PASSWORD", "TB_OAM_TOKEN"):
        assert len(env[key]) >= 20
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(host=testbed.ip("host-a"), user="toolpack", password="toolpack",
                        connect_timeout=2)


def _conn(testbed, host):
    return pymysql.connect(host=testbed.ip(host), user="toolpack",
                           password=testbed.env["TB_DB_PASSWORD"], database="toolpack",
                           autocommit=True, connect_timeout=3)


def _db_hosts(testbed):
    """(main, backup) host names from the live database roles (no automatic failback)."""
    ip = testbed.db_view()["main"]["ip"]
    main = next(h for h in HOSTS if ip in (testbed.ip(h, "ctrl-a"), testbed.ip(h, "ctrl-b")))
    return main, next(h for h in HOSTS if h != main)


def test_replication_carries_a_write_from_main_to_backup(testbed):
    token = secrets.token_hex(8)
    main_host, backup_host = _db_hosts(testbed)
    main = _conn(testbed, main_host)
    with main.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS tb_probe (token VARCHAR(32) PRIMARY KEY, t DOUBLE)")
        cur.execute("INSERT INTO tb_probe VALUES (%s, %s)", (token, time.time()))
    backup = _conn(testbed, backup_host)

    def replicated():
        with backup.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM tb_probe WHERE token = %s", (token,))
            return cur.fetchone()[0] == 1
    wait_for(replicated, 10, "the probe row on the backup")
    with main.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_yes_tx'")
        assert int(cur.fetchone()[1]) >= 1     # acknowledged by the backup, not async
        cur.execute("DELETE FROM tb_probe WHERE token = %s", (token,))
    main.close()
    backup.close()


def test_both_hosts_run_all_four_applications(testbed):
    for h in HOSTS:
        apps = testbed.oam(h, "/api/v1/status")["apps"]
        assert sorted(apps) == ["gateway", "tboamapp", "toolpack_engine", "toolpack_sys_manager"]
        assert all(a["state"] == "running" and a["pid"] for a in apps.values()), apps


def test_the_inventory_written_at_bring_up_says_where_each_node_is(testbed):
    """The testbed as an inventory: each address it names is on an interface inside that
    node's container (asked there, not in Docker's records), and every node is in it."""
    from harness.inventory import REQUIRED, load
    inv = load(testbed.dir / "inventory.yaml")
    assert set(REQUIRED) <= set(inv.nodes)
    assert {c.labels["com.docker.compose.service"] for c in testbed.containers()} == set(inv.nodes)
    for name, node in inv.nodes.items():
        c = testbed.docker.containers.get(node.container)
        assert c.labels["com.docker.compose.service"] == name
        have = c.exec_run(["ip", "-o", "-4", "addr", "show"]).output.decode()
        for net, ip in node.addresses.items():
            assert f" {ip}/" in have, f"{name}: {net} {ip} not on any interface:\n{have}"
