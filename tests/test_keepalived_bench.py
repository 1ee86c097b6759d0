"""bench/keepalived.py, the parts without Docker: the keepalived.conf of each profile, the
failover from the probe replies, and the election read from keepalived's log."""
import re

from bench.keepalived import FAST_ADVERT_INT, PROFILES, failover_s, render_config, settled, state_changes

MASTER_MAC, BACKUP_MAC = "02:42:0a:00:00:02", "02:42:0a:00:00:03"


def option(conf: str, key: str) -> list[str]:
    return re.findall(rf"^\s*{key} (\S+)$", conf, re.M)


def test_default_profile_is_keepalived_defaults():
    conf = render_config("a", "MASTER", 200, "eth0", "10.1.2.100", PROFILES["default"])
    assert option(conf, "vrrp_version") == ["2"]
    assert option(conf, "advert_int") == ["1"]
    assert option(conf, "priority") == ["200"]
    assert option(conf, "state") == ["MASTER"]
    assert option(conf, "interface") == ["eth0"]
    assert "10.1.2.100/24" in conf
    assert "unicast_peer" not in conf and "preempt" not in conf      # multicast, preempting


def test_fast_profile_is_vrrp3_centiseconds():
    conf = render_config("b", "BACKUP", 100, "eth1", "10.1.2.100", PROFILES["fast"])
    assert option(conf, "vrrp_version") == ["3"]
    assert option(conf, "advert_int") == [f"{FAST_ADVERT_INT:g}"]
    assert 0.01 <= FAST_ADVERT_INT < 1
    assert option(conf, "priority") == ["100"] and option(conf, "state") == ["BACKUP"]


def test_unicast_peers_rendered():
    conf = render_config("a", "MASTER", 200, "eth0", "10.1.2.100", PROFILES["fast"],
                         unicast_src="10.1.2.2", unicast_peers=("10.1.2.3",))
    assert option(conf, "unicast_src_ip") == ["10.1.2.2"]
    assert re.search(r"unicast_peer \{\s+10\.1\.2\.3\s+\}", conf)
    assert conf.count("{") == conf.count("}")


def test_failover_is_first_backup_reply_after_t0():
    replies = [(9.0, MASTER_MAC), (9.995, MASTER_MAC), (10.01, MASTER_MAC),   # kill in flight
               (10.2, BACKUP_MAC.upper()), (10.205, BACKUP_MAC)]
    assert abs(failover_s(replies, 10.0, BACKUP_MAC) - 0.2) < 1e-9


def test_no_backup_reply_no_failover():
    assert failover_s([(9.0, MASTER_MAC), (10.5, MASTER_MAC)], 10.0, BACKUP_MAC) is None
    assert failover_s([(9.5, BACKUP_MAC)], 10.0, BACKUP_MAC) is None          # before t0


LOG_MASTER = """\
Startup complete
(VI_BENCH) Entering BACKUP STATE (init)
(VI_BENCH) Entering MASTER STATE
"""
# a backup that missed the master's first adverts, then preempted
LOG_BACKUP = """\
(VI_BENCH) Entering MASTER STATE
(VI_BENCH) Master received advert from 10.1.2.2 with higher priority 200, ours 100
(VI_BENCH) Entering BACKUP STATE
"""


def test_state_changes_in_order():
    assert state_changes(LOG_BACKUP) == ["(VI_BENCH) Entering MASTER STATE",
                                         "(VI_BENCH) Entering BACKUP STATE"]


def test_settled_once_master_is_master_and_backup_backup():
    assert settled(LOG_MASTER, LOG_BACKUP)
    assert not settled(LOG_MASTER, "(VI_BENCH) Entering MASTER STATE\n")      # two masters
    assert not settled(LOG_MASTER + "(VI_BENCH) Entering BACKUP STATE\n", LOG_BACKUP)
    assert not settled(LOG_MASTER, "Startup complete\n")                       # not yet running
