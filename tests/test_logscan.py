"""The log matcher of harness/logscan.py on log text as Docker returns it (timestamps on)."""
from harness import logscan

TS = "2026-12-01T20:07:26.{:06d}000Z "


def docker_log(*lines: str) -> str:
    return "".join(TS.format(i) + line + "\n" for i, line in enumerate(lines))


HOST = docker_log(
    "2026-12-01 20:07:24 0 [Note] mariadbd: ready for connections.",
    "20:07:26.258 toolpack: start gateway {'pid': 28}",
    "20:07:40.001 toolpack: crash gateway {'code': -9}",
    "20:07:40.203 toolpack: restart gateway {'pid': 901}",
    "20:07:40.210 toolpack_sys_manager: handing over to host-b: gateway pid changed",
)
UNIT = docker_log(
    "2026-12-01T20:07:40.215Z tmedia-1 lease released by host-a",
    "2026-12-01T20:07:40.420Z tmedia-1 lease acquired by host-b epoch=2 lease_ms=1500",
)
# an uncaught exception in an application: the frames are indented, the exception last
CRASH = docker_log(
    "20:08:01.500 gateway: listening on UDP 7100",
    "Traceback (most recent call last):",
    '  File "/opt/testbed/emulator/host/gateway.py", line 97, in handle',
    "    return handler(msg, addr)",
    "KeyError: 'call_id'",
    "20:08:01.700 toolpack: crash gateway {'code': 1}",
)


def test_clean_logs_with_the_expected_events_are_ok():
    sub = logscan.judge({"host-a": HOST, "tmedia-1": UNIT}, {},
                        expect=logscan.expected("kill_process", app="gateway")
                        + [logscan.EVENTS["handover"], logscan.EVENTS["lease_released"]])
    assert sub.status == "ok", sub.detail
    assert sub.data["errors"] == 0


def test_a_traceback_is_caught_with_its_container_and_exception():
    sub = logscan.judge({"host-a": HOST, "host-b": CRASH}, {})
    assert sub.status == "failed"
    assert "host-b: " in sub.detail and "Traceback (most recent call last)" in sub.detail
    assert "KeyError: 'call_id'" in sub.detail        # the exception, not only the header
    assert sub.data["errors"] == 1                    # one entry per traceback, not per frame


# the backup's replication when the main's host was powered off (seen on the testbed)
MAIN_LOST = docker_log(
    "2026-12-01 20:17:53 41 [ERROR] Error reading packet from server: Lost connection to "
    "server during query (server_errno=2013)",
    "2026-12-01 20:17:53 41 [ERROR] Slave I/O: error reconnecting to master "
    "'repl@172.20.1.11:3306' - retry-time: 1  maximum-retries: 100000")


def test_error_markers_and_mariadb_errors_are_failures():
    text = docker_log("20:09:00.000 tboamapp: ERROR something broke",
                      "CRITICAL: out of memory",
                      "2026-12-01 20:09:01 5 [Warning] Aborted connection 34 to db: 'toolpack' "
                      "(Got an error reading communication packets)",
                      "20:09:02.000 gateway: no error here, 'error': None") + MAIN_LOST
    found = logscan.find_errors(text)
    assert len(found) == 4 and not any("no error here" in f or "Warning" in f for f in found)
    # allowed exactly, for an operation that takes the main database away; the others stay
    left = logscan.find_errors(text, allow=logscan.MAIN_DB_LOST)
    assert len(left) == 2 and "something broke" in left[0] and "out of memory" in left[1]


def test_the_mains_lost_backup_is_allowed_only_for_operations_that_take_a_database_away():
    line = docker_log("2026-12-03 13:19:06 16 [ERROR] Semi-sync master failed on net_flush() "
                      "before waiting for slave reply")
    assert logscan.find_errors(line)                                  # an error by itself
    assert not logscan.find_errors(line, allow=logscan.BACKUP_DB_LOST)
    from types import SimpleNamespace
    from harness.scenario import db_may_go
    own = SimpleNamespace(db_hosts=("host-a", "host-b"))       # the hosts run the servers
    external = SimpleNamespace(db_hosts=("db-a", "db-b"))      # the external-db variant
    assert db_may_go(own, "network_cut") and not db_may_go(own, "kill_process")
    assert db_may_go(external, "mysql_kill") and db_may_go(external, "mysql_shutdown")
    # a Toolpack host's loss takes no database with it there: its errors are not allowed
    for kind in ("host_power_off", "host_shutdown", "network_cut"):
        assert not db_may_go(external, kind)


def test_a_missing_expected_event_fails_and_says_which():
    sub = logscan.judge({"host-a": HOST}, {}, expect=[logscan.EVENTS["app_deadlocked"].format(app="gateway")])
    assert sub.status == "failed" and "toolpack: deadlock gateway" in sub.detail


def test_unreadable_logs_are_unknown_but_errors_elsewhere_still_fail():
    sub = logscan.judge({"host-a": HOST}, {"tmedia-3": "NotFound: no such container"})
    assert sub.status == "unknown" and "tmedia-3" in sub.detail
    sub = logscan.judge({"host-b": CRASH}, {"tmedia-3": "NotFound"})
    assert sub.status == "failed"


def test_only_the_first_few_offending_lines_are_shown():
    text = docker_log(*[f"20:10:00.{i:03d} gateway: ERROR number {i}" for i in range(9)])
    sub = logscan.judge({"host-a": text}, {})
    assert sub.data["errors"] == 9 and "and 4 more" in sub.detail
    assert "number 5" not in sub.detail


DEADLOCK_KILL = docker_log(
    "20:09:10.100 toolpack: deadlock gateway {'pid': 901, 'silent_s': 0.61}",
    "20:09:10.120 toolpack: restart gateway {'pid': 955}",
)
UNIT_REBOOT = docker_log(
    "2026-12-01T20:09:12.000Z tmedia-2 REBOOT: SIP application deadlocked (no heartbeat for 1.62 s)",
)


def test_a_deadlock_kill_or_a_unit_reboot_the_fault_does_not_cause_fails():
    """A healthy application killed for a missed heartbeat, or a board rebooting, during a
    MySQL operation: the system failed over on its own, whatever the calls showed."""
    sub = logscan.judge({"host-b": DEADLOCK_KILL, "tmedia-2": UNIT_REBOOT}, {},
                        forbid=logscan.unexpected("mysql_kill", False))
    assert sub.status == "failed"
    assert "unexpected: " in sub.detail and "deadlock gateway" in sub.detail
    assert "REBOOT: SIP application deadlocked" in sub.detail and sub.data["errors"] == 2


def test_the_deadlock_operation_may_kill_and_unit_faults_may_reboot():
    assert logscan.judge({"host-a": DEADLOCK_KILL}, {},
                         forbid=logscan.unexpected("deadlock", False)).status == "ok"
    from harness.faults import REGISTRY
    for kind, cls in REGISTRY.items():
        forbid = logscan.unexpected(kind, cls.unit_level)
        assert (logscan.UNIT_REBOOT in forbid) is (not cls.unit_level), kind
        assert (logscan.FALSE_DEADLOCK in forbid) is (kind != "deadlock"), kind
    assert logscan.judge({"tmedia-2": UNIT_REBOOT}, {},
                         forbid=logscan.unexpected("voip_ports_down", True)).status == "ok"
