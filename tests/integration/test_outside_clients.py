"""SIP clients nobody here wrote, against the units, each while background calls run:
SIPVicious (svmap, svwar) against every SIP stack, SIPp's own built-in scenarios at rates
the project's scenarios never use, and a flood of INVITEs that are never acknowledged.
Each time: 0 background calls may fail, no unit reboots, and no answer is a 5xx other
than the overload's 503 (which carries Retry-After). The counts go to runs/latest
(outside_clients.json) and the log."""
from __future__ import annotations

import json
import re
import secrets
import socket
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

import sipvicious

from harness.calls import bad, run_calls, wait_established
from harness.faults import placement, unit_status
from harness.testbed import log
from harness.util import wait_for

UNITS = ("tmedia-1", "tmedia-2")
SV_DIR = "/opt/sipvicious"           # where the package is copied into sipp-uac


def record(run_dir: Path, key: str, data: dict) -> None:
    path = run_dir / "outside_clients.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results[key] = data
    path.write_text(json.dumps(results, indent=2) + "\n")


def boots(tb) -> dict:
    return {b: unit_status(tb, b).get("boots") for b in placement(tb).values()}


def stacks(tb) -> list[str]:
    """Every SIP stack of the serving units: on the bond and on each virtual port."""
    return [tb.ip(u, net) for u in UNITS for net in ("voip", "vlan101", "vlan102")]


@pytest.fixture(scope="module")
def sipvicious_in_uac(testbed):
    """SIPVicious (pure Python, from this checkout's venv) copied into sipp-uac, which
    reaches every stack (the virtual ports' segments end there)."""
    pkg = Path(sipvicious.__file__).parent
    c = testbed.container("sipp-uac")
    c.exec_run(["mkdir", "-p", SV_DIR])
    subprocess.run(["docker", "cp", str(pkg), f"{c.id}:{SV_DIR}/"], check=True)
    return c


def sv(c, tool: str, *args: str) -> tuple[int, str]:
    # never -R (--reportback): it sends the command line to the author
    code = (f"import sys; sys.path.insert(0, {SV_DIR!r}); sys.argv = ['{tool}'] + sys.argv[1:]; "
            f"from sipvicious.{tool} import main; main()")
    res = c.exec_run(["timeout", "60", "python3", "-c", code, *args], workdir="/tmp")
    return res.exit_code, res.output.decode(errors="replace")


def status_lines(text: str) -> Counter:
    """The SIP status codes in SIPVicious's debug output (-d prints what it received)."""
    return Counter(m.group(1) for m in re.finditer(r"SIP/2\.0 (\d{3}) ", text))


def assert_no_5xx(codes: Counter, what: str) -> None:
    server_errors = {c: n for c, n in codes.items() if c.startswith("5") and c != "503"}
    assert not server_errors, f"{what}: 5xx answers {server_errors}"


def test_svmap_and_svwar_against_every_sip_stack_while_calls_go_on(testbed, sipvicious_in_uac, run_dir):
    before = boots(testbed)
    found, codes, war = {}, Counter(), Counter()

    def scans(uac):
        wait_established(uac, 3)
        c = sipvicious_in_uac
        for ip in stacks(testbed):
            rc, out = sv(c, "svmap", "-d", "-p", "5060", ip)
            found[ip] = f"{ip}:5060" in out
            codes.update(status_lines(out))
            assert rc == 0 and "Traceback" not in out, (rc, out[-2000:])
            # not INVITE: svwar's INVITE scan places real calls to the far end, which the
            # flood test below covers (and which the background's far end cannot join)
            for method in ("REGISTER", "OPTIONS"):
                rc, out = sv(c, "svwar", "--debug", "-m", method, "-e", "1000-1010", "-p", "5060", ip)
                war.update(status_lines(out))
                assert "Traceback" not in out, out[-2000:]
    calls = run_calls(testbed, "sv-bg", during=scans, rate=5, hold_s=2, duration_s=60)
    log(f"SIPVicious: stacks found {sum(found.values())}/{len(found)}; svmap answers {dict(codes)}, "
        f"svwar answers {dict(war)}; "
        f"background calls {len(calls)}, bad {len(bad(calls))}")
    record(run_dir, "sipvicious", {"stacks": found, "svmap_answers": dict(codes), "svwar_answers": dict(war),
                                   "background_calls": len(calls), "background_bad": len(bad(calls))})
    assert all(found.values()), f"svmap did not find: {[ip for ip, f in found.items() if not f]}"
    assert sum(war.values()) >= len(found), f"svwar got hardly an answer: {dict(war)}"
    assert_no_5xx(codes + war, "SIPVicious")
    assert not bad(calls), bad(calls)[:5]
    assert boots(testbed) == before


@pytest.mark.parametrize("scenario,rate,calls", [("uac", 60, 300), ("uac_pcap", 20, 100)])
def test_sipp_builtin_scenarios_while_calls_go_on(testbed, run_dir, scenario, rate, calls):
    """SIPp's own scenarios (not ours: no X-Tb headers, their own timing and SDP) at a
    rate above every load of the matrix, to tmedia-2 and tmedia-1 at once, beside the
    background calls; the far end answers them all (it takes any INVITE)."""
    before = boots(testbed)
    uac = testbed.container("sipp-uac")
    results = {}

    def builtin(bg):
        wait_established(bg, 3)

        def one(unit, port, media, ctrl):
            cmd = (f"rm -f /tmp/builtin/{scenario}-{unit}.*; mkdir -p /tmp/builtin/pcap && "
                   # the built-in uac_pcap plays pcap/g711a.pcap, relative to its directory
                   f"ln -sf /usr/share/sip-tester/*.pcap /tmp/builtin/pcap/ && cd /tmp/builtin && "
                   f"timeout 90 sipp {testbed.ip(unit, 'voip')}:5060 -sn {scenario} -s 1000 "
                   f"-i {testbed.ip('sipp-uac', 'voip')} -p {port} -mi {testbed.ip('sipp-uac', 'voip')} "
                   f"-mp {media} -cp {ctrl} "
                   f"-r {rate} -m {calls} -d 1000 -nostdin -timeout 80 -timeout_error "
                   f"-trace_stat -stf {scenario}-{unit}.csv >{scenario}-{unit}.out 2>&1; echo rc=$?")
            out = uac.exec_run(["sh", "-c", cmd]).output.decode()
            stat = uac.exec_run(["sh", "-c", f"tail -1 /tmp/builtin/{scenario}-{unit}.csv"]).output.decode()
            results[unit] = (out.strip().rsplit("rc=", 1)[-1], stat)
        ts = [threading.Thread(target=one, args=a) for a in
              (("tmedia-1", 5081, 6400, 8901), ("tmedia-2", 5082, 6500, 8902))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    bg = run_calls(testbed, f"builtin-{scenario}-bg", during=builtin, rate=5, hold_s=2, duration_s=30)
    header = uac.exec_run(["sh", "-c", f"head -1 /tmp/builtin/{scenario}-tmedia-1.csv"]).output.decode().split(";")
    summary = {}
    for unit, (rc, stat) in results.items():
        row = dict(zip(header, stat.split(";")))
        summary[unit] = {"sipp_exit": rc, "successful": int(row.get("SuccessfulCall(C)", -1)),
                         "failed": int(row.get("FailedCall(C)", -1))}
    log(f"SIPp -sn {scenario} at {rate} calls/s x {calls} to each unit: {summary}; "
        f"background {len(bg)}, bad {len(bad(bg))}")
    record(run_dir, f"sipp_builtin_{scenario}", {"rate": rate, "calls": calls, "units": summary,
                                                 "background_calls": len(bg), "background_bad": len(bad(bg))})
    for unit, s in summary.items():
        assert s["sipp_exit"] == "0" and s["successful"] == calls and s["failed"] == 0, (unit, s)
    assert not bad(bg), bad(bg)[:5]
    assert boots(testbed) == before


def flood(target: str, n: int, seconds: float) -> tuple[Counter, int, float]:
    """n new INVITEs (SDP, fresh Call-IDs) from this machine in `seconds`, never ACKed;
    the final answers by code, the datagrams received, and the sending time."""
    me = target.rsplit(".", 1)[0] + ".1"           # this machine on the VoIP network
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((me, 0))
    port = sock.getsockname()[1]
    sock.settimeout(0.2)
    codes, got, last = Counter(), [0], [time.monotonic()]
    finals: dict[str, str] = {}
    stop = threading.Event()

    def recv():
        while not stop.is_set():
            try:
                data = sock.recv(65535)
            except socket.timeout:
                continue
            got[0] += 1
            m = re.match(rb"SIP/2\.0 (\d{3}) ", data)
            cid = re.search(rb"\r\nCall-ID: *([^\r]+)", data, re.I)
            if m and cid:
                code = m.group(1).decode()
                if code >= "200" and cid.group(1).decode() not in finals:
                    finals[cid.group(1).decode()] = code
                    last[0] = time.monotonic()      # (retransmitted 200s are not news)
    t = threading.Thread(target=recv, daemon=True)
    t.start()
    sdp = (f"v=0\r\no=flood 1 1 IN IP4 {me}\r\ns=-\r\nc=IN IP4 {me}\r\nt=0 0\r\n"
           f"m=audio 7000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n").encode()
    start = time.monotonic()
    for i in range(n):
        cid = f"flood-{secrets.token_hex(6)}@{me}"
        msg = (f"INVITE sip:1000@{target}:5060 SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP {me}:{port};branch=z9hG4bK{secrets.token_hex(6)}\r\n"
               f"From: <sip:flood@{me}>;tag={secrets.token_hex(4)}\r\nTo: <sip:1000@{target}>\r\n"
               f"Call-ID: {cid}\r\nCSeq: 1 INVITE\r\nContact: <sip:flood@{me}:{port}>\r\n"
               f"Max-Forwards: 70\r\nContent-Type: application/sdp\r\n"
               f"Content-Length: {len(sdp)}\r\n\r\n").encode() + sdp
        sock.sendto(msg, (target, 5060))
        ahead = start + seconds * (i + 1) / n - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    sent_s = time.monotonic() - start
    # the answers still on their way: until every INVITE has its final answer, or no new
    # one came for 2 s (what the unit dropped gets none), within 30 s
    try:
        wait_for(lambda: len(finals) >= n or time.monotonic() - last[0] > 2.0, 30,
                 "the flood's final answers")
    finally:
        stop.set()
    t.join()
    sock.close()
    codes.update(finals.values())
    codes["no final answer"] = n - len(finals)
    return codes, got[0], sent_s


def rss_kb(tb, board: str) -> int:
    pid = unit_status(tb, board)["app"]["pid"]
    out = tb.container(board).exec_run(["ps", "-o", "rss=", "-p", str(pid)]).output.decode().strip()
    return int(out)


def test_an_invite_flood_without_ack_is_shed_and_calls_go_on(testbed, run_dir):
    """2000 INVITEs in 2.6 s from one source, none acknowledged: the unit answers the
    excess with 503 at the door (its share of the new calls, see overload.SourceShare),
    keeps its memory bounded, does not reboot, and the background calls from another
    source go on, every one."""
    before = boots(testbed)
    board = placement(testbed)["tmedia-1"]
    out = {}

    def flooding(bg):
        wait_established(bg, 3)
        out["rss_before"] = rss_kb(testbed, board)
        out["codes"], out["received"], out["sent_s"] = flood(testbed.ip("tmedia-1", "voip"), 2000, 2.6)
        out["rss_after"] = rss_kb(testbed, board)
    bg = run_calls(testbed, "flood-bg", during=flooding, rate=5, hold_s=2, duration_s=20)
    codes = out["codes"]
    grew_mb = (out["rss_after"] - out["rss_before"]) / 1024
    log(f"INVITE flood: 2000 sent in {out['sent_s']:.2f} s; final answers {dict(codes)}; "
        f"SIP stack memory {out['rss_before'] / 1024:.0f} -> {out['rss_after'] / 1024:.0f} MB; "
        f"background {len(bg)}, bad {len(bad(bg))}")
    record(run_dir, "invite_flood", {"sent": 2000, "sent_s": round(out["sent_s"], 2),
                                     "answers": dict(codes), "rss_grew_mb": round(grew_mb, 1),
                                     "background_calls": len(bg), "background_bad": len(bad(bg))})
    assert_no_5xx(codes, "INVITE flood")
    assert codes["503"] >= 1000, codes          # the excess is refused, not queued
    assert grew_mb < 64, f"the SIP stack grew {grew_mb:.0f} MB"
    assert not bad(bg), bad(bg)[:5]
    assert boots(testbed) == before
