"""End-to-end test of one TMedia unit on 127.0.0.1, without Docker.

The unit's board (`python -m emulator.tmedia.board`, no bonded ports, serving a fixed
unit on 127.0.0.1) starts its SIP application and runs on non-default ports; a tiny fake
gateway (UDP JSON) answers its route requests and records its call events; a poller
thread holds the unit's lease the way a sys_manager does; real SIPp (Debian sip-tester)
is the caller (UAC, playing g711a.pcap) and the far end (UAS with -rtp_echo). Calls are
judged at both ends from SIPp's statistics files, never from its exit code.

The UAS scenario answers with the Contact SIPp's built-in uas sends
(`;transport=UDP`, upper case: sippy 2.5 then fails every in-dialog request to that
peer with "newTransaction() to unsupported transport: UDP"), so passing here also shows the
stack's workaround: the BYE has to reach the UAS for it to count the call as a success.

The process-level checks (bad config, garbage on the SIP port, malformed control
requests, SIGTERM) need no SIPp and run everywhere.
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tools import needs

REPO = Path(__file__).resolve().parents[1]
SIPP = shutil.which("sipp")
PCAP = "/usr/share/sip-tester/g711a.pcap"
needs_sipp = needs("sipp", "Debian package sip-tester")

GATEWAY_NAME = "gw-test"
HOLD_MS = 2000


# --- helpers ------------------------------------------------------------------------------

def wait_for(cond, timeout: float, what: str, interval: float = 0.05):
    """Poll cond() until it returns a truthy value; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def control(port: int, msg, timeout: float = 1.0) -> dict:
    data = msg if isinstance(msg, bytes) else json.dumps(msg).encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(data, ("127.0.0.1", port))
        return json.loads(s.recv(65000))


class Unit:
    """The unit process with its logs in tmp_path."""

    def __init__(self, tmp_path: Path, sip_ip: str = "127.0.0.1", **env):
        self.sip_port = free_udp_port()
        self.control_port = free_udp_port()
        self.app_port = free_udp_port()
        self.out = tmp_path / "unit.out"
        self.err = tmp_path / "unit.err"
        self.state_dir = tmp_path / "state"
        self.env = dict(os.environ, TMEDIA_NAME="tmedia-t", TMEDIA_SERVICE=f"tmedia-t={sip_ip}/32",
                        TMEDIA_SIP_PORT=str(self.sip_port), TMEDIA_CONTROL_IP="127.0.0.1",
                        TMEDIA_CONTROL_PORT=str(self.control_port), TMEDIA_STATE_DIR=str(self.state_dir),
                        TMEDIA_APP_PORT=str(self.app_port), TMEDIA_BOOT_DIR=str(tmp_path / "boot"),
                        PYTHONUNBUFFERED="1")
        self.env.update(env)
        self.proc = subprocess.Popen([sys.executable, "-m", "emulator.tmedia.board"], cwd=REPO, env=self.env,
                                     stdout=open(self.out, "wb"), stderr=open(self.err, "wb"))

    def status(self) -> dict:
        return control(self.control_port, {"op": "status", "seq": 1})

    def wait_ready(self, timeout: float = 20.0) -> None:
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"unit exited {self.proc.returncode}: {self.err.read_text()}")
            try:
                st = self.status()
            except (socket.timeout, ConnectionRefusedError):
                return False
            return st.get("rtp_packets") is not None   # the media relay has reported
        wait_for(ready, timeout, "the unit's control agent and media relay")

    def log(self) -> str:
        return self.out.read_text()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def settled_status(unit: "Unit") -> dict:
    """The unit's status once its counters have caught up: the board reports the SIP
    application's counters from its last heartbeat (every 100 ms), so an earlier test's
    last call may still be on its way."""
    prev = [None]

    def same_twice():
        st = unit.status()
        stable = prev[0] is not None and st["calls_total"] == prev[0]["calls_total"]
        prev[0] = st
        return st if stable else None
    return wait_for(same_twice, 5, "the unit's counters to settle", interval=0.3)


class FakeGateway:
    """UDP JSON gateway: answers `route` with `routes` (or refuses with `refuse` = (code, text))
    and records requests and call events."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.routes: list = []
        self.refuse = None
        self.delay = 0.0      # seconds before answering a route request
        self.requests: list = []
        self.events: list = []
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                data, addr = self.sock.recvfrom(65000)
            except socket.timeout:
                continue
            except OSError:
                return
            msg = json.loads(data)
            if msg.get("op") == "call":
                self.events.append(msg)
                continue
            self.requests.append(msg)
            if self.refuse:
                reply = {"seq": msg["seq"], "ok": False, "code": self.refuse[0], "error": self.refuse[1]}
            else:
                reply = {"seq": msg["seq"], "ok": True, "gateway": GATEWAY_NAME,
                         "routes": [{"host": h, "port": p} for h, p in self.routes]}
            if self.delay:
                threading.Timer(self.delay, self._send, (reply, addr)).start()
            else:
                self._send(reply, addr)

    def _send(self, reply, addr):
        try:
            self.sock.sendto(json.dumps(reply).encode(), addr)
        except OSError:
            pass

    def events_for(self, event: str) -> set:
        return {e["call_id"] for e in self.events if e.get("event") == event}

    def close(self):
        self._stop = True
        self.thread.join(timeout=2)
        self.sock.close()


class Poller:
    """Holds the unit's lease like a sys_manager: a poll every 200 ms, lease 2 s. The
    lease's gateway list starts with an address nobody listens on (a cut control path):
    the unit must still get its routes through the other one."""

    def __init__(self, unit: Unit, gateway: FakeGateway):
        self.unit, self.dead = unit, free_udp_port()
        self.gateways = [["127.0.0.1", self.dead], ["127.0.0.1", gateway.port]]
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.seq = 0

    def poll(self) -> dict:
        self.seq += 1
        return control(self.unit.control_port, {"op": "poll", "seq": self.seq, "controller": "host-test",
                                                 "epoch": 1, "lease_ms": 2000, "gateways": self.gateways})

    def _run(self):
        while not self._stop.wait(0.2):
            try:
                self.poll()
            except (socket.timeout, OSError):
                pass

    def start(self):
        assert self.poll()["ok"] is True
        self.thread.start()

    def stop_and_release(self):
        self._stop.set()
        self.thread.join(timeout=2)
        assert control(self.unit.control_port, {"op": "release", "seq": 99, "controller": "host-test"}) \
            == {"ok": True, "seq": 99}


# --- SIPp -----------------------------------------------------------------------------------

SDP = """v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8
a=rtpmap:8 PCMA/8000
"""

# The caller's INVITE (SDP offer, X-Tb-Call) and its ACK of a 200, shared by the
# scenarios below.
INVITE_SEND = """  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: [service] <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
X-Tb-Call: tb-[call_number]
Content-Type: application/sdp
Content-Length: [len]

%(sdp)s
]]></send>
"""
ACK_200_SEND = """  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: [service] <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Length: 0
]]></send>
"""

# The ACK of a final failure response: part of the INVITE transaction (its branch).
ACK_FAILURE_SEND = """  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: [service] <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0
]]></send>
"""


def bye_send(txn: str | None = None, headers: str = "") -> str:
    """The caller's BYE (in its own transaction `txn` when given, so that a retransmitted
    200 to the INVITE cannot pass for the BYE's), with extra `headers` lines."""
    start = f' start_txn="{txn}"' if txn else ""
    return f"""  <send retrans="500"{start}><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: [service] <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
{headers}Content-Length: 0
]]></send>
"""


UAC_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="tb uac with media">
""" + INVITE_SEND + """  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true" rrs="true">
    <action>
      <ereg regexp="%(gateway)s" search_in="hdr" header="X-Tb-Gateway:" check_it="true" assign_to="gw"/>
    </action>
  </recv>
""" + ACK_200_SEND + """  <nop><action><exec play_pcap_audio="%(pcap)s"/></action></nop>
  <pause milliseconds="%(hold)d"/>
""" + bye_send(txn="bye", headers="X-Seen-Gateway: [$gw]\n") + """  <!-- response_txn: a retransmitted 200 to the INVITE must not pass for the BYE's -->
  <recv response="200" response_txn="bye" crlf="true"/>
</scenario>
"""

UAC_REFUSED_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="tb uac expecting a refusal">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: [service] <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

%(sdp)s
]]></send>
  <recv response="100" optional="true"/>
  <recv response="%(code)d"/>
""" + ACK_FAILURE_SEND + """</scenario>
"""

UAC_CANCEL_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="tb uac cancelling while the unit waits for its route">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: [service] <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

%(sdp)s
]]></send>
  <recv response="100"/>
  <pause milliseconds="200"/>
  <send><![CDATA[
CANCEL sip:[service]@[remote_ip]:[remote_port] SIP/2.0
[last_Via:]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: [service] <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 CANCEL
Max-Forwards: 70
Content-Length: 0
]]></send>
  <recv response="200"/>
  <recv response="487"/>
  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
[last_Via:]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: [service] <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0
]]></send>
</scenario>
"""

# The far end. Its Contact is the one SIPp's built-in uas sends (transport=UDP, upper
# case); it checks the caller's X-Tb-Call arrived unchanged.
UAS_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="tb uas">
  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="tb-[0-9]+" search_in="hdr" header="X-Tb-Call:" check_it="true" assign_to="tbcall"/>
    </action>
  </recv>
  <send><![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Length: 0
]]></send>
  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
X-Seen-Call: [$tbcall]
Content-Type: application/sdp
Content-Length: [len]

%(sdp)s
]]></send>
  <recv request="ACK" rtd="true" crlf="true"/>
  <recv request="BYE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Length: 0
]]></send>
  <timewait milliseconds="500"/>
</scenario>
"""


_AGENTS: list = []


class Sipp:
    """One SIPp agent in its own work directory, with explicit trace file names."""

    def __init__(self, workdir: Path, name: str, scenario: str, args: list):
        _AGENTS.append(self)
        self.dir = workdir / name
        self.dir.mkdir(parents=True)
        (self.dir / "scenario.xml").write_text(scenario)
        self.stat = self.dir / "stat.csv"
        self.cmd = [SIPP, *args, "-sf", "scenario.xml", "-nostdin", "-trace_stat", "-stf", "stat.csv",
                    "-fd", "1", "-trace_err", "-error_file", "errors.log",
                    "-trace_shortmsg", "-shortmessage_file", "messages.log",
                    "-trace_screen", "-screen_file", "screen.log"]
        self.proc = subprocess.Popen(self.cmd, cwd=self.dir, stdin=subprocess.DEVNULL,
                                     stdout=open(self.dir / "stdout.log", "wb"), stderr=subprocess.STDOUT)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            self.proc.wait(timeout=5)
            raise AssertionError(f"sipp {self.dir.name} did not finish within {timeout} s; "
                                 f"{self.describe()}") from None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def counts(self) -> dict:
        """Cumulative counters from the last line of SIPp's -trace_stat file."""
        rows = list(csv.reader(self.stat.read_text().splitlines(), delimiter=";"))
        header, last = rows[0], rows[-1]
        return {k: last[i] for i, k in enumerate(header) if i < len(last)}

    def calls(self) -> tuple:
        c = self.counts()
        return int(c["SuccessfulCall(C)"]), int(c["FailedCall(C)"])

    def describe(self) -> str:
        parts = []
        for f in ("errors.log", "stdout.log"):
            p = self.dir / f
            if p.exists():
                parts.append(f"{f}: {p.read_text(errors='replace')[-2000:]}")
        return "\n".join(parts)


def uas(tmp_path: Path, name: str, calls: int) -> tuple:
    port, mport = free_udp_port(), free_udp_port()
    agent = Sipp(tmp_path, name, UAS_XML % {"sdp": SDP},
                 ["-i", "127.0.0.1", "-p", str(port), "-mp", str(mport), "-rtp_echo",
                  "-m", str(calls), "-timeout", "120"])
    return agent, port


def uac(tmp_path: Path, name: str, unit: Unit, scenario: str, calls: int, rate: int = 10) -> Sipp:
    return Sipp(tmp_path, name, scenario,
                [f"127.0.0.1:{unit.sip_port}", "-i", "127.0.0.1", "-p", str(free_udp_port()),
                 "-mp", str(free_udp_port()), "-s", "1000", "-r", str(rate), "-m", str(calls),
                 "-timeout", "120"])


def wait_udp_bound(port: int, timeout: float = 10.0):
    """SIPp has bound its SIP port (the bind fails while it holds it)."""
    def bound():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return True
            return False
    wait_for(bound, timeout, f"SIPp to bind UDP {port}")


def media_records(unit: Unit) -> dict:
    """Per call, from the relay's own accounting (rtp.io's rtpproxy appends a line to
    rtpproxy_acct.csv in the unit's state directory when a call's media session ends):
    A-leg Call-ID -> (packets in from one side, from the other side, relayed)."""
    path = unit.state_dir / "rtpproxy_acct.csv"
    if not path.exists():
        return {}
    out = {}
    for row in csv.DictReader(path.read_text().splitlines()):
        cid = re.sub(r"-\d+$", "", row["call_id"])       # rtpproxy's session = Call-ID-<media index>
        out[cid] = (int(row["rtp_npkts_ina"]), int(row["rtp_npkts_ino"]), int(row["rtp_nrelayed"]))
    return out


# --- fixtures ----------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def no_sipp_left_behind():
    yield
    while _AGENTS:
        _AGENTS.pop().stop()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tmedia")
    # the tests poll now and then: a watchdog longer than the module keeps the unit up
    unit = Unit(tmp, TMEDIA_NO_REPLY_S="1", TMEDIA_WATCHDOG_MS="3600000")
    gateway = FakeGateway()
    try:
        unit.wait_ready()
        yield unit, gateway, tmp
    finally:
        rc = unit.stop()
        gateway.close()
        assert rc == 0, f"unit exit status {rc}: {unit.err.read_text()[-3000:]}"


# --- the calls ------------------------------------------------------------------------------

@needs_sipp
def test_no_lease_gets_503(env):
    unit, gateway, tmp = env
    assert unit.status()["controller"] is None
    n_requests = len(gateway.requests)
    caller = uac(tmp, "uac-nolease", unit, UAC_REFUSED_XML % {"sdp": SDP, "code": 503}, calls=1)
    caller.wait(30)
    assert caller.calls() == (1, 0), caller.describe()
    assert len(gateway.requests) == n_requests      # nobody to ask without a lease
    assert "failed code=503" in unit.log()


@needs_sipp
def test_calls_with_media_through_the_unit(env):
    unit, gateway, tmp = env
    calls = 30
    poller = Poller(unit, gateway)
    poller.start()
    try:
        far, far_port = uas(tmp, "uas", calls)
        gateway.routes = [("127.0.0.1", far_port)]
        wait_udp_bound(far_port)
        before = settled_status(unit)
        n_requests = len(gateway.requests)
        caller = uac(tmp, "uac", unit, UAC_XML % {"sdp": SDP, "gateway": GATEWAY_NAME, "pcap": PCAP,
                                                 "hold": HOLD_MS}, calls=calls, rate=10)
        caller.wait(90)
        far.wait(30)     # the UAS ends only when it has seen all its calls end (BYE)
    finally:
        poller.stop_and_release()
    # both ends: every call succeeded at the caller (200 with X-Tb-Gateway, BYE answered)
    # and at the far end (X-Tb-Call passed, ACK and BYE received)
    assert caller.calls() == (calls, 0), caller.describe()
    assert far.calls() == (calls, 0), far.describe()

    # the unit's own view and the gateway's
    st = wait_for(lambda: (lambda s: s if s["calls_active"] == 0 else None)(unit.status()), 10,
                  "no active call left")
    assert st["calls_total"] - before["calls_total"] == calls
    assert st["calls_answered"] - before["calls_answered"] == calls
    assert st["calls_failed"] == before["calls_failed"]
    routed = {r["call_id"] for r in gateway.requests[n_requests:]}
    assert len(routed) == calls
    wait_for(lambda: routed <= gateway.events_for("ended"), 5, "an 'ended' event per call")
    assert routed <= gateway.events_for("answered")
    assert all(e["unit"] == "tmedia-t" and e["gateway"] == GATEWAY_NAME for e in gateway.events)

    # media: every call's RTP went through the unit both ways (UAC -> unit -> UAS echo ->
    # unit -> UAC), per the relay's own per-call accounting, and the unit's counters grew
    records = wait_for(lambda: (lambda r: r if routed <= set(r) else None)(media_records(unit)), 10,
                       "the relay's media record for every call")
    per_call = {cid: records[cid] for cid in routed}
    # g711a.pcap carries ~33 packets/s; a 2 s hold gives ~65 each way, so 20 is a floor
    # that only a broken relay misses
    thin = {cid: v for cid, v in per_call.items() if v[0] < 20 or v[1] < 20}
    assert not thin, f"calls with little or no RTP (side a, side o, relayed): {thin}"
    relayed = sum(v[2] for v in per_call.values())
    st = wait_for(lambda: (lambda s: s if s["rtp_packets"] - before["rtp_packets"] >= relayed else None)(
        unit.status()), 5, "the unit's rtp_packets to count the relayed packets")
    print(f"\n{calls} calls ok at both ends; RTP through the unit: in from side a "
          f"{sum(v[0] for v in per_call.values())}, from side o {sum(v[1] for v in per_call.values())}, "
          f"relayed {relayed}; unit rtp_packets +{st['rtp_packets'] - before['rtp_packets']}")


@needs_sipp
def test_next_route_when_the_first_does_not_answer(env):
    unit, gateway, tmp = env
    poller = Poller(unit, gateway)
    poller.start()
    try:
        far, far_port = uas(tmp, "uas-alt", 1)
        gateway.routes = [("127.0.0.1", free_udp_port()), ("127.0.0.1", far_port)]   # first: nobody
        wait_udp_bound(far_port)
        caller = uac(tmp, "uac-alt", unit, UAC_XML % {"sdp": SDP, "gateway": GATEWAY_NAME, "pcap": PCAP,
                                                     "hold": 200}, calls=1)
        caller.wait(30)
        far.wait(30)
    finally:
        poller.stop_and_release()
    assert caller.calls() == (1, 0), caller.describe()
    assert far.calls() == (1, 0), far.describe()


@needs_sipp
def test_gateway_refusal_code_reaches_the_caller(env):
    unit, gateway, tmp = env
    poller = Poller(unit, gateway)
    poller.start()
    gateway.refuse = (404, "no route for '1000'")
    try:
        caller = uac(tmp, "uac-404", unit, UAC_REFUSED_XML % {"sdp": SDP, "code": 404}, calls=1)
        caller.wait(30)
    finally:
        gateway.refuse = None
        poller.stop_and_release()
    assert caller.calls() == (1, 0), caller.describe()


@needs_sipp
def test_caller_cancel_while_the_route_is_pending(env):
    """The route answer comes back after the caller gave up: the unit must not place a
    B-leg (sippy's rDone finds the A-leg no longer trying)."""
    unit, gateway, tmp = env
    poller = Poller(unit, gateway)
    poller.start()
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # where a B-leg INVITE would go
    probe.bind(("127.0.0.1", 0))
    probe.settimeout(0.1)
    gateway.routes = [("127.0.0.1", probe.getsockname()[1])]
    gateway.delay = 0.6     # inside the unit's 1 s deadline, after the CANCEL
    n_requests = len(gateway.requests)
    try:
        caller = uac(tmp, "uac-cancel", unit, UAC_CANCEL_XML % {"sdp": SDP}, calls=1)
        caller.wait(30)
        assert caller.calls() == (1, 0), caller.describe()
        wait_for(lambda: len(gateway.requests) > n_requests, 5, "the route request")
        # the route answer is due 0.6 s after the request; give it that and 0.5 s more
        # to (not) turn into an INVITE towards the route
        deadline = time.monotonic() + 1.1
        while time.monotonic() < deadline:
            try:
                data = probe.recv(65000)
            except socket.timeout:
                continue
            raise AssertionError(f"B-leg placed after the caller cancelled: {data[:200]!r}")
    finally:
        gateway.delay = 0.0
        probe.close()
        poller.stop_and_release()
    assert "cancelled by caller" in unit.log()


@needs_sipp
def test_sigterm_hangs_up_calls_in_progress(tmp_path):
    unit = Unit(tmp_path)
    gateway = FakeGateway()
    try:
        unit.wait_ready()
        poller = Poller(unit, gateway)
        poller.start()
        far, far_port = uas(tmp_path, "uas-term", 3)
        gateway.routes = [("127.0.0.1", far_port)]
        wait_udp_bound(far_port)
        uac(tmp_path, "uac-term", unit, UAC_XML % {"sdp": SDP, "gateway": GATEWAY_NAME, "pcap": PCAP,
                                                  "hold": 60000}, calls=3)   # stopped by the fixture
        wait_for(lambda: unit.status()["calls_active"] == 3, 20, "3 answered calls")
        poller.stop_and_release()
        assert unit.stop() == 0, unit.err.read_text()[-3000:]
        far.wait(30)       # the far end saw a BYE for each of its calls
        assert far.calls() == (3, 0), far.describe()
        assert "stopping: hanging up 3 call(s)" in unit.log()
    finally:
        unit.stop()
        gateway.close()


# --- the process --------------------------------------------------------------------------

def test_bad_config_exits_nonzero_with_a_message():
    for env, needle in (({"TMEDIA_NAME": ""}, "TMEDIA_NAME"),
                        ({"TMEDIA_NAME": "u", "TMEDIA_SIP_IP": "0.0.0.0"}, "TMEDIA_SIP_IP"),
                        ({"TMEDIA_NAME": "u", "TMEDIA_SIP_IP": "not-an-ip"}, "TMEDIA_SIP_IP"),
                        ({"TMEDIA_NAME": "u", "TMEDIA_SIP_IP": "127.0.0.1", "TMEDIA_SIP_PORT": "99999"},
                         "TMEDIA_SIP_PORT")):
        full = {k: v for k, v in os.environ.items() if not k.startswith("TMEDIA_")}
        full.update(env)
        r = subprocess.run([sys.executable, "-m", "emulator.tmedia.unit"], cwd=REPO, env=full,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2, (env, r.stderr)
        assert "bad configuration" in r.stderr and needle in r.stderr, r.stderr


def test_unbindable_sip_address_reboots_the_unit(tmp_path):
    # 192.0.2.1 (TEST-NET-1) is on no interface here: bind fails, nothing is sent anywhere.
    # The SIP application exits 2, and the on-board monitor reboots the unit (exit 75).
    unit = Unit(tmp_path, sip_ip="192.0.2.1")
    assert unit.proc.wait(timeout=60) == 75
    assert "cannot bind" in unit.err.read_text()
    assert "REBOOT: SIP application crashed (exit status 2)" in unit.log()
    boot = json.loads((tmp_path / "boot" / "boot.json").read_text())
    assert boot["boots"] == 1 and "crashed" in boot["reboots"][-1]["reason"]


def test_watchdog_reboots_a_unit_no_host_polls_and_not_one_that_is_polled(tmp_path):
    unit = Unit(tmp_path, TMEDIA_WATCHDOG_MS="1500")
    try:
        unit.wait_ready()
        time.sleep(2.0)      # not armed before the first poll: no host has come yet
        assert unit.proc.poll() is None
        for i in range(12):  # polled every 0.25 s for 3 s: twice the watchdog, no reboot
            assert control(unit.control_port, {"op": "poll", "seq": i, "controller": "h",
                                               "lease_ms": 1000})["ok"] is True
            time.sleep(0.25)
        assert unit.proc.poll() is None
        t0 = time.monotonic()
        assert unit.proc.wait(timeout=10) == 75
        waited = time.monotonic() - t0
    finally:
        unit.stop()
    assert 1.2 < waited < 5, waited
    assert "REBOOT: watchdog: no host polled for 1.5 s" in unit.log()
    assert json.loads((tmp_path / "boot" / "boot.json").read_text())["reboots"][-1]["reason"].startswith("watchdog")


def test_deadlocked_sip_application_reboots_the_unit(tmp_path):
    unit = Unit(tmp_path, TMEDIA_DEADLOCK_MS="1000")
    try:
        unit.wait_ready()
        pid = unit.status()["app"]["pid"]
        os.kill(pid, signal.SIGSTOP)
        assert unit.proc.wait(timeout=10) == 75
    finally:
        unit.stop()
    assert "REBOOT: SIP application deadlocked" in unit.log()


def options_answered(sip_port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.sendto((f"OPTIONS sip:unit@127.0.0.1:{sip_port} SIP/2.0\r\n"
                  f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-tb{port}\r\n"
                  f"From: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:unit@127.0.0.1>\r\n"
                  f"Call-ID: probe-{port}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                  f"Content-Length: 0\r\n\r\n").encode(), ("127.0.0.1", sip_port))
        try:
            return s.recv(65000).startswith(b"SIP/2.0 200 ")
        except socket.timeout:
            return False


def test_a_hot_spare_serves_a_unit_with_the_sip_application_it_started_beforehand(tmp_path):
    """A spare board keeps its SIP applications started and waiting (hot_spare.py); given
    a unit, the stack that answers SIP is one of those processes, not a new one."""
    unit = Unit(tmp_path, TMEDIA_SERVICE="", TMEDIA_HOT_STACKS="2")
    gw = FakeGateway()
    poller = Poller(unit, gw)
    try:
        def waiting():
            try:
                hot = unit.status()["hot_spare"]
            except (socket.timeout, ConnectionRefusedError):
                return None
            return hot["pids"] if hot["waiting"] == 2 else None
        pids = wait_for(waiting, 20, "two SIP applications waiting")
        assert not options_answered(unit.sip_port)          # nothing bound yet
        poller.start()
        r = control(unit.control_port, {"op": "assume", "seq": 2, "controller": "host-test",
                                        "unit": "tmedia-t", "address": "127.0.0.1/32"})
        assert r["ok"] is True, r
        st = wait_for(lambda: (lambda s: s if s["sip_stacks"] and s["sip_stacks"][0]["heartbeat"] else None)(
            unit.status()), 20, "the unit's SIP stack to run")
        assert st["sip_stacks"][0]["pid"] in pids
        assert st["hot_spare"]["waiting"] == 1              # not refilled while serving
        assert wait_for(lambda: options_answered(unit.sip_port), 10, "an answer to OPTIONS")
        assert "SIP stack sip-0 of tmedia-t started hot" in unit.log()
    finally:
        poller.stop_and_release()
        rc = unit.stop()
        gw.close()
    assert rc == 0, unit.err.read_text()
    for pid in pids:                                      # none left running
        assert not Path(f"/proc/{pid}").exists() or \
            Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


def test_survives_garbage_and_stops_cleanly_on_sigterm(tmp_path):
    unit = Unit(tmp_path)
    try:
        unit.wait_ready()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for junk in (b"\x00\xff" * 40, b"INVITE sip:x SIP/2.0\r\nVia: broken\r\n\r\n" + b"x" * 40,
                         b"SIP/2.0 999999 nonsense\r\n\r\n" + b"y" * 40, b"hello"):
                s.sendto(junk, ("127.0.0.1", unit.sip_port))
        # malformed control requests get an error reply, with seq when there is one
        assert control(unit.control_port, b"{not json")["ok"] is False
        assert control(unit.control_port, b"[1,2]")["ok"] is False
        assert control(unit.control_port, {"op": "reboot", "seq": 4}) == \
            {"ok": False, "error": "unknown op 'reboot'", "seq": 4}
        assert control(unit.control_port, {"op": "poll", "seq": 5, "controller": "h", "lease_ms": -1})["ok"] is False
        # a well-formed SIP request after the junk is still answered
        assert options_answered(unit.sip_port)
        assert unit.proc.poll() is None
        assert unit.status()["ok"] is True
    finally:
        rc = unit.stop()
    assert rc == 0, unit.err.read_text()
    assert "stopped" in unit.log()


# A caller that takes either answer: 503 (it must carry Retry-After, else the call
# fails) or 200 (ACK, BYE at once).
UAC_FLOOD_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="tb uac flood">
""" + INVITE_SEND + """  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="503" optional="true" next="shed">
    <action>
      <ereg regexp="[0-9]+" search_in="hdr" header="Retry-After:" check_it="true" assign_to="ra"/>
    </action>
  </recv>
  <recv response="200" rrs="true"/>
""" + ACK_200_SEND + bye_send() + """  <recv response="200" crlf="true" next="end"/>
  <label id="shed"/>
""" + ACK_FAILURE_SEND + """  <label id="end"/>
  <Reference variables="ra"/>
</scenario>
"""


@needs_sipp
def test_a_unit_driven_far_past_its_rate_sheds_with_503_and_keeps_its_calls(tmp_path):
    """Overload is not a crash: a unit taking 5 new calls/s, offered 100/s for 4 s while
    5 calls with media are established, refuses the excess with 503 + Retry-After (every
    503 must carry it), does not reboot or log a traceback, and its established calls
    end normally at both ends."""
    unit = Unit(tmp_path, TMEDIA_MAX_CPS="5", TMEDIA_WATCHDOG_MS="3600000")
    gateway = FakeGateway()
    try:
        unit.wait_ready()
        boots, pid = unit.status()["boots"], unit.status()["app"]["pid"]
        poller = Poller(unit, gateway)
        poller.start()
        try:
            far, far_port = uas(tmp_path, "uas", 10000)
            gateway.routes = [("127.0.0.1", far_port)]
            wait_udp_bound(far_port)
            held = uac(tmp_path, "uac-held", unit, UAC_XML % {"sdp": SDP, "gateway": GATEWAY_NAME,
                                                               "pcap": PCAP, "hold": 8000}, calls=5, rate=2)
            wait_for(lambda: unit.status()["calls_active"] >= 5, 15, "5 established calls")
            shed_before = unit.status()["calls_shed"]
            flood = uac(tmp_path, "uac-flood", unit, UAC_FLOOD_XML % {"sdp": SDP}, calls=400, rate=100)
            flood.wait(60)
            held.wait(60)
            st = unit.status()
        finally:
            poller.stop_and_release()
        assert held.calls() == (5, 0), held.describe()       # established calls went on
        ok, failed = flood.calls()
        assert failed == 0, flood.describe()                 # every answer a 200 or a 503 + Retry-After
        shed = st["calls_shed"] - shed_before
        # 4 s at 5/s plus the bucket's burst may be taken; the rest must be shed
        assert shed >= 400 - 40, f"{shed} of 400 calls shed"
        assert st["boots"] == boots and st["app"]["pid"] == pid, "the unit rebooted"
    finally:
        rc = unit.stop()
        gateway.close()
    logs = unit.log() + unit.err.read_text()
    assert "Traceback" not in logs and "REBOOT" not in logs, logs[-3000:]
    assert rc == 0
