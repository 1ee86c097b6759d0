"""Thin driver over SIPp 3.6.1 (Debian sip-tester) and the parser of its traces.

pysipp 0.1.0 cannot be used (it fails to import with pluggy >= 1, which pytest
needs), so this module runs `sipp` itself, either here (`LocalExecutor`) or
inside a container (`DockerExecutor`), and reads the outcome of every call from
the trace files, never from SIPp's exit code (0 as soon as one call succeeded).

Trace formats, as written by SIPp 3.6.1 on this machine:

- `-trace_shortmsg`: one line per SIP message sent or received (retransmissions
  included), tab separated: date, time, epoch seconds, direction (S or R),
  Call-ID, "CSeq:<n> <method>", first line of the message::

    2026-11-25  09:07:39.041477  1795597659.041477  S  1-5862@127.0.0.1  CSeq:1 INVITE  INVITE sip:...

- `-trace_logs`: the text of each scenario `<log>` action, one per line. Our
  scenarios write "<call_id> gateway=<X-Tb-Gateway>" (UAC) and
  "<call_id> orig=<X-Tb-Call>" (UAS); an empty value means no such header.
- `-trace_err`: a header line, then entries that start with
  "<date>\\t<time>\\t<epoch>: " and may span several lines (a dumped message);
  an entry may begin right after the previous one's closing quote. Aborts name
  the call, e.g. "Call-Id: X, receive timeout on message ...: aborting call" or
  "Aborting call on unexpected message for Call-Id 'X': ...".
- `-trace_stat`: ';'-separated counters, (P)eriodic and (C)umulative columns.
  Kept for the report; not used to judge calls.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios" / "sipp"
UAC_XML = SCENARIO_DIR / "uac.xml"
UAS_XML = SCENARIO_DIR / "uas.xml"
UAC_FAILOVER_XML = SCENARIO_DIR / "uac_failover.xml"


def failover_args(alt_ip: str, alt_port: int = 5060) -> tuple[str, ...]:
    """SippLoad extra_args for uac_failover.xml: the second address, and -nr. SIPp 3.6.1
    does not leave a message whose retransmission is pending, so the jump to the second
    address after the first's timeout never happens with retransmissions on."""
    return ("-nr", "-key", "alt", alt_ip, "-key", "alt_port", str(alt_port))

OUTCOMES = ("completed", "failed", "unanswered", "dropped")

# File names inside an agent's work directory (one directory per agent).
SHORTMSG, LOGS, STAT, ERRORS = "short.log", "logs.log", "stat.csv", "errors.log"
OUT, PIDFILE, SCENARIO = "sipp.out", "sipp.pid", "scenario.xml"
_OUR_FILES = (SHORTMSG, LOGS, STAT, ERRORS, OUT, PIDFILE, SCENARIO)


class SippError(RuntimeError):
    """SIPp could not be run (bad arguments, port in use, ...)."""


class TraceError(ValueError):
    """A trace file does not have the format SIPp 3.6.1 writes."""


# --------------------------------------------------------------------------
# Call records


@dataclass
class CallRecord:
    """One call as seen by one SIPp agent (side "uac" or "uas").

    Times are epoch seconds of the message in *this agent's* trace: on the UAC
    side they are when the INVITE/BYE left and the responses arrived; on the UAS
    side, when the INVITE/BYE arrived and the responses left. So on the UAS
    side `bye_sent_t` is when the caller's BYE was received.

    outcome (from the caller's point of view, mirrored on the UAS side):

    - "completed":  the INVITE was answered 2xx, the caller's BYE was sent and
      answered 200.
    - "failed":     the INVITE got a final error response (>= 300): rejected.
    - "unanswered": the INVITE got no final response at all (lost, or aborted
      by SIPp's -recv_timeout).
    - "dropped":    answered, but not ended by a 200 to the caller's BYE: the BYE
      got an error (e.g. 481) or no answer, the network sent a BYE, or SIPp
      aborted the call before its BYE.

    `ended` says the call reached an end in the traces (completed, rejected,
    the caller's BYE answered whatever the code, hung up by the network, or
    aborted by SIPp on a timeout / unexpected message). A call that is not ended was still open when SIPp stopped: it
    hung. `far_bye` (UAC side, set by `join_far_end`) says a far-end leg with
    X-Tb-Call == call_id received the BYE and answered 200; None means no
    far-end data was joined.
    """

    call_id: str
    side: str = "uac"
    invite_t: float | None = None
    final_t: float | None = None      # final response to the INVITE
    answer_t: float | None = None     # 2xx to the INVITE
    final_code: int | None = None
    final_reason: str | None = None   # reason phrase of that response ("" when it has none)
    bye_sent_t: float | None = None   # the caller's BYE
    bye_ok_t: float | None = None     # 200 to the caller's BYE
    bye_code: int | None = None       # final response to the caller's BYE
    peer_bye_t: float | None = None   # BYE from the other side (network hang-up)
    gateway: str | None = None        # X-Tb-Gateway of the 200 (UAC)
    orig: str | None = None           # X-Tb-Call received (UAS)
    abort: str | None = None          # SIPp's abort reason from -trace_err
    end_t: float | None = None        # last trace event of the call
    ended: bool = False
    outcome: str = "unanswered"
    far_bye: bool | None = None
    far_legs: int | None = None       # far-end legs joined to this call
    retries: int = 0                  # INVITEs re-sent to another address (uac_failover.xml)
    called: str | None = None         # the Request-URI's user of the first INVITE

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CallRecord":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown CallRecord fields: {sorted(unknown)}")
        rec = cls(**d)
        if rec.outcome not in OUTCOMES:
            raise ValueError(f"call {rec.call_id}: bad outcome {rec.outcome!r}")
        return rec


# --------------------------------------------------------------------------
# Trace parsing


@dataclass(frozen=True)
class TraceLine:
    lineno: int
    t: float
    direction: str      # "S" sent, "R" received
    call_id: str
    cseq: int
    method: str         # CSeq method
    first_line: str

    @property
    def code(self) -> int | None:
        """Status code for a response, None for a request."""
        if self.first_line.startswith("SIP/2.0 "):
            return int(self.first_line.split()[1])
        return None

    @property
    def reason(self) -> str | None:
        """Reason phrase of a response ("" when the status line has none), None for a
        request: it tells refusals with the same code apart (a disabled SIP stack's 503
        from a switchover's)."""
        if self.first_line.startswith("SIP/2.0 "):
            parts = self.first_line.split(" ", 2)
            return parts[2].strip() if len(parts) > 2 else ""
        return None


_CSEQ = re.compile(r"CSeq:\s*(\d+)\s+(\S+)$")
_STATUS = re.compile(r"SIP/2\.0 \d{3}( |$)")


def _read_lines(path: Path, partial_ok: bool) -> list[str]:
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    tail = lines.pop()  # "" when the file ends with a newline
    if tail and not partial_ok:
        lines.append(tail)  # a complete file's last line may lack "\n"
    # With partial_ok (agent still running) an unterminated last line may be
    # half written: leave it for the next read.
    return lines


def parse_shortmsg(path: Path, partial_ok: bool = False) -> list[TraceLine]:
    """Parse a -trace_shortmsg file; a malformed line raises TraceError."""
    out = []
    for n, line in enumerate(_read_lines(path, partial_ok), 1):
        if not line.strip():
            continue
        f = line.split("\t")
        try:
            if len(f) != 7:
                raise ValueError(f"{len(f)} fields, expected 7")
            if f[3] not in ("S", "R"):
                raise ValueError(f"direction {f[3]!r}")
            m = _CSEQ.match(f[5])
            if not m:
                raise ValueError(f"CSeq field {f[5]!r}")
            first = f[6]
            if first.startswith("SIP/") and not _STATUS.match(first):
                raise ValueError(f"status line {first!r}")
            out.append(TraceLine(n, float(f[2]), f[3], f[4], int(m[1]), m[2], first))
        except ValueError as e:
            raise TraceError(f"{path}:{n}: bad short-message line ({e}): {line!r}") from None
    return out


_LOG = re.compile(r"(\S+) (\w+)=(.*)$")


def parse_logs(path: Path, key: str, partial_ok: bool = False) -> dict[str, str | None]:
    """Map call_id -> value from "<call_id> <key>=<value>" -trace_logs lines."""
    out: dict[str, str | None] = {}
    for n, line in enumerate(_read_lines(path, partial_ok), 1):
        if not line.strip():
            continue
        m = _LOG.match(line)
        if not m:
            raise TraceError(f"{path}:{n}: bad log line: {line!r}")
        if m[2] == key:
            out.setdefault(m[1], m[3].strip() or None)
    return out


_ERR_ENTRY = re.compile(r"(\d{4}-\d\d-\d\d)\t(\d\d:\d\d:\d\d\.\d+)\t(\d+\.\d+): ")
# Every abort message of SIPp 3.6.1's call.cpp names the call in one of these ways.
_ERR_CALL = (
    re.compile(r"Call-I[dD]: ([^,\s]+),"),
    re.compile(r"Call-I[dD] '([^']+)'"),
    re.compile(r"for call: (\S+)"),
)


def parse_aborts(path: Path) -> dict[str, tuple[float, str]]:
    """Map call_id -> (epoch, reason) of the first abort in a -trace_err file.

    Only protocol-level aborts count (timeouts, unexpected messages). "Aborted
    call with Call-ID" is SIPp cleaning up open calls when it is stopped, and
    "Dead call" reports retransmissions to a finished call: neither ends a call.
    """
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    starts = list(_ERR_ENTRY.finditer(text))
    out: dict[str, tuple[float, str]] = {}
    for i, m in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        body = text[m.end():end]
        head = body.split("\n", 1)[0]
        if "borting call" not in head:  # "Aborting call ..." / "...: aborting call"
            continue
        for pat in _ERR_CALL:
            c = pat.search(head)
            if c:
                reason = head.split(", received")[0].strip()
                out.setdefault(c[1], (float(m[3]), reason))
                break
        else:
            lineno = text.count("\n", 0, m.start()) + 1
            raise TraceError(f"{path}:{lineno}: abort names no Call-ID: {head!r}")
    return out


def ruri_user(request_line: str) -> str | None:
    """The user part of a request line's URI ("INVITE sip:7710003@10.0.3.21:5060 SIP/2.0"
    -> "7710003"), None without one."""
    parts = request_line.split()
    uri = parts[1] if len(parts) > 1 else ""
    _, _, rest = uri.partition(":")
    user, at, _ = rest.partition("@")
    return user.split(";")[0] if at and user else None


def build_calls(lines: list[TraceLine], side: str,
                logs: dict[str, str | None] | None = None,
                aborts: dict[str, tuple[float, str]] | None = None,
                strays: list[TraceLine] | None = None) -> list[CallRecord]:
    """Fold trace lines into one CallRecord per Call-ID (order of first INVITE).

    A caller's Call-ID that it only ever received is not one of its calls: SIPp traces
    every datagram reaching its port, also the late answers or BYEs of another caller's
    call on that port before it. Those lines go into `strays` (when given)."""
    if side not in ("uac", "uas"):
        raise ValueError(f"side must be 'uac' or 'uas', not {side!r}")
    logs, aborts = logs or {}, aborts or {}
    caller = "S" if side == "uac" else "R"   # direction of the caller's requests
    recs: dict[str, CallRecord] = {}
    invite_cseq: dict[str, int] = {}
    bye_cseq: dict[str, int] = {}
    for ln in lines:
        r = recs.get(ln.call_id)
        if r is None:
            r = recs[ln.call_id] = CallRecord(ln.call_id, side)
        r.end_t = ln.t
        code = ln.code
        if code is None:  # a request
            if ln.first_line.startswith("INVITE ") and ln.call_id not in invite_cseq:
                invite_cseq[ln.call_id] = ln.cseq
                r.invite_t = ln.t
                r.called = ruri_user(ln.first_line)
            elif ln.first_line.startswith("INVITE ") and r.final_code is None \
                    and ln.cseq > invite_cseq[ln.call_id]:
                # the same call offered again, elsewhere (uac_failover.xml): its answer
                # is the call's; the setup time still runs from the first INVITE
                invite_cseq[ln.call_id] = ln.cseq
                r.retries += 1
            elif ln.first_line.startswith("BYE "):
                if ln.direction == caller and ln.call_id not in bye_cseq:
                    bye_cseq[ln.call_id] = ln.cseq
                    r.bye_sent_t = ln.t
                elif ln.direction != caller and r.peer_bye_t is None:
                    r.peer_bye_t = ln.t
            continue
        # Responses travel against the request they answer.
        if ln.method == "INVITE" and ln.cseq == invite_cseq.get(ln.call_id) \
                and ln.direction != caller and code >= 200 and r.final_code is None:
            r.final_code, r.final_t, r.final_reason = code, ln.t, ln.reason
            if code < 300:
                r.answer_t = ln.t
        elif ln.method == "BYE" and ln.cseq == bye_cseq.get(ln.call_id) \
                and ln.direction != caller and code >= 200 and r.bye_code is None:
            r.bye_code = code
            if code == 200:
                r.bye_ok_t = ln.t
    for cid, r in list(recs.items()):
        if r.invite_t is None:
            if side == "uas":
                # a far end sees late requests of calls another far end took (the one
                # before it on the same address: a BYE or ACK after that one stopped)
                del recs[cid]
                continue
            mine = [ln for ln in lines if ln.call_id == cid and ln.direction == caller]
            if not mine:
                del recs[cid]
                if strays is not None:
                    strays.extend(ln for ln in lines if ln.call_id == cid)
                continue
            raise TraceError(f"call {r.call_id}: messages but no INVITE in the trace")
        if r.call_id in aborts:
            t, r.abort = aborts[r.call_id]
            r.end_t = max(r.end_t or t, t)
        r.gateway = logs.get(r.call_id) if side == "uac" else None
        r.orig = logs.get(r.call_id) if side == "uas" else None
        if r.answer_t is None:
            r.outcome = "failed" if r.final_code is not None else "unanswered"
        else:
            r.outcome = "completed" if r.bye_ok_t is not None else "dropped"
        # A final answer to the BYE (even 481) closes the dialog too.
        r.ended = (r.outcome in ("completed", "failed") or r.abort is not None
                   or r.peer_bye_t is not None or r.bye_code is not None)
    return list(recs.values())


def read_agent_dir(d: Path, side: str, partial_ok: bool = False,
                   strays: list[TraceLine] | None = None) -> list[CallRecord]:
    """Parse the traces an agent wrote into directory `d` (see the file names above);
    `strays` as in build_calls."""
    d = Path(d)
    short = d / SHORTMSG
    if not short.exists():
        raise SippError(f"no {short}: SIPp did not run here{_tail(d / OUT)}")
    lines = parse_shortmsg(short, partial_ok)
    key = "gateway" if side == "uac" else "orig"
    logs = parse_logs(d / LOGS, key, partial_ok) if (d / LOGS).exists() else {}
    aborts = parse_aborts(d / ERRORS) if (d / ERRORS).exists() else {}
    return build_calls(lines, side, logs, aborts, strays)


def join_far_end(uac: list[CallRecord], uas: list[CallRecord]) -> list[CallRecord]:
    """Set far_bye/far_legs on UAC records from far-end legs (UAS orig == call_id).

    A UAC call may have several far-end legs (alternate routes tried); the far
    end saw the BYE when any of them got the BYE and answered it 200.
    """
    legs: dict[str, list[CallRecord]] = {}
    for leg in uas:
        if leg.orig:
            legs.setdefault(leg.orig, []).append(leg)
    for c in uac:
        mine = legs.get(c.call_id, [])
        c.far_legs = len(mine)
        c.far_bye = any(leg.bye_ok_t is not None for leg in mine)
    return uac


def _tail(path: Path, n: int = 2000) -> str:
    try:
        return "\nSIPp output:\n" + Path(path).read_text(errors="replace")[:n]
    except OSError:
        return ""


# --------------------------------------------------------------------------
# Executors: where sipp runs


class Proc:
    """A running sipp, as returned by an Executor."""

    def poll(self) -> int | None: ...
    def signal(self, sig: int) -> None: ...
    def control(self, port: int, text: str) -> None:
        """Send a command to SIPp's UDP control socket (-ci 127.0.0.1 -cp port)."""
    def udp_bound(self, port: int) -> bool:
        """True when this sipp holds a UDP socket bound to `port`."""


class Executor:
    """Runs sipp with a work directory seen as `host_dir` here and `exec_dir` by sipp."""

    host_dir: Path
    exec_dir: PurePosixPath

    def start(self, argv: list[str], cwd: str) -> Proc:
        """Start argv in exec_dir/cwd; stdout+stderr to sipp.out, pid to sipp.pid."""
        raise NotImplementedError

    def put(self, rel: str) -> None:
        """Make host_dir/rel (a file or a directory's files) seen by sipp at exec_dir/rel:
        nothing to do where the two are one directory (local, or bind-mounted)."""

    def fetch(self, rel: str) -> None:
        """Make exec_dir/rel (what sipp or a capture wrote) readable at host_dir/rel."""


def _bound(port: int, net_udp: str, fd_links: str) -> bool:
    """Join /proc/net/udp{,6} rows to the socket inodes among a process's fds."""
    inodes = set(re.findall(r"socket:\[(\d+)\]", fd_links))
    for row in net_udp.splitlines():
        f = row.split()
        if len(f) > 9 and ":" in f[1] and f[0].endswith(":"):
            if int(f[1].rsplit(":", 1)[1], 16) == port and f[9] in inodes:
                return True
    return False


class _LocalProc(Proc):
    def __init__(self, popen: subprocess.Popen):
        self.popen = popen

    def poll(self):
        return self.popen.poll()

    def signal(self, sig):
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def control(self, port, text):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(text.encode(), ("127.0.0.1", port))

    def udp_bound(self, port):
        pid = self.popen.pid
        try:
            links = "\n".join(os.readlink(f"/proc/{pid}/fd/{fd}")
                              for fd in os.listdir(f"/proc/{pid}/fd"))
            net = "".join(Path(f"/proc/{pid}/net/{t}").read_text() for t in ("udp", "udp6"))
        except OSError:  # exited meanwhile
            return False
        return _bound(port, net, links)


class LocalExecutor(Executor):
    """Run sipp on this machine (tests, or a harness living in the sipp netns)."""

    def __init__(self, work_dir: Path | str):
        self.host_dir = Path(work_dir).resolve()
        self.exec_dir = PurePosixPath(self.host_dir)

    def start(self, argv, cwd):
        d = self.host_dir / cwd
        with open(d / OUT, "wb") as out:
            p = subprocess.Popen(argv, cwd=d, stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=subprocess.STDOUT)
        (d / PIDFILE).write_text(f"{p.pid}\n")
        return _LocalProc(p)


# sh records the pid sipp will have (exec keeps it) so we can signal it later,
# and redirects the output into the shared work directory.
_WRAP = 'echo $$ > ' + PIDFILE + '; exec "$@" > ' + OUT + ' 2>&1'


class _ExecProc(Proc):
    """A sipp in a node the harness runs commands in (`exec_run`): a container, or a
    machine over SSH; signals and control commands are commands there."""

    def __init__(self, node, cwd: str):
        self.node, self.cwd = node, cwd

    def _run(self, *cmd: str) -> tuple[int, str]:
        code, out = self.node.exec_run(list(cmd), workdir=self.cwd)
        return code, out.decode(errors="replace")

    def signal(self, sig):
        if self.poll() is None:
            self._run("sh", "-c", f'kill -s {signal.Signals(sig).name[3:]} "$(cat {PIDFILE})"')

    def control(self, port, text):
        # bash's /dev/udp: no extra tool needed in the image.
        self._run("bash", "-c", 'printf %s "$1" > /dev/udp/127.0.0.1/"$2"', "bash",
                  text, str(port))

    def udp_bound(self, port):
        code, out = self._run("sh", "-c", f'p=$(cat {PIDFILE}); ls -l /proc/$p/fd; '
                              'echo ==; cat /proc/$p/net/udp /proc/$p/net/udp6')
        if code != 0 or "==" not in out:
            return False
        links, net = out.split("==", 1)
        return _bound(port, net, links)


class _DockerProc(_ExecProc):
    def __init__(self, ex: "DockerExecutor", exec_id: str, cwd: str):
        super().__init__(ex.container, cwd)
        self.ex, self.exec_id = ex, exec_id

    def poll(self):
        info = self.ex.client.api.exec_inspect(self.exec_id)
        return None if info["Running"] or info["ExitCode"] is None else info["ExitCode"]


class _SshProc(_ExecProc):
    def __init__(self, node, chan, cwd: str):
        super().__init__(node, cwd)
        self.chan = chan

    def poll(self):
        # the channel's exit status is sh's, which exec made sipp's
        return self.chan.recv_exit_status() if self.chan.exit_status_ready() else None


class SshExecutor(Executor):
    """Run sipp on an agent machine reached over SSH (harness/remote.py's SshNode): the
    scenario is copied there by SFTP, and the traces and captures back as they grow.
    `remote_dir` is a directory of the machine's own, never shared with the harness."""

    def __init__(self, node, host_dir: Path | str, remote_dir: str):
        self.node = node
        self.host_dir = Path(host_dir).resolve()
        self.exec_dir = PurePosixPath(remote_dir)

    def start(self, argv, cwd):
        wd = str(self.exec_dir / cwd)
        chan = self.node.spawn(["sh", "-c", _WRAP, "sh", *argv], workdir=wd)
        return _SshProc(self.node, chan, wd)

    def put(self, rel):
        """A directory replaces the machine's (an agent's directory: an earlier run's
        traces there must not be read back as this run's)."""
        local = self.host_dir / rel
        if local.is_dir():
            res = self.node.exec_run(["rm", "-rf", str(self.exec_dir / rel)])
            if res.exit_code != 0:
                raise SippError(f"{self.node.name}: clearing {self.exec_dir / rel}: {res.output!r}")
        for f in (sorted(p for p in local.iterdir() if p.is_file()) if local.is_dir() else [local]):
            self.node.put(f, str(self.exec_dir / f.relative_to(self.host_dir)))

    def fetch(self, rel):
        self.node.fetch(str(self.exec_dir / rel), self.host_dir / rel)


def agent_executor(node, host_dir: Path | str, container_dir: str = "/work") -> Executor:
    """Where SIPp runs on an agent node: in its container, whose `container_dir` is
    `host_dir` bind-mounted, or on the machine itself when the inventory reaches it over
    SSH (in its inventory `ssh.work_dir`)."""
    if hasattr(node, "spawn"):
        return SshExecutor(node, host_dir, str(node.node.ssh.work_dir))
    return DockerExecutor(node, host_dir, container_dir)


class DockerExecutor(Executor):
    """Run sipp inside a container through the Docker SDK (`docker` package).

    `host_dir` is bind-mounted into the container at `container_dir`, so the
    traces sipp writes there are read here directly.
    """

    def __init__(self, container, host_dir: Path | str, container_dir: str, client=None):
        import docker  # only needed for this executor

        self.client = client or docker.from_env()
        self.container = (self.client.containers.get(container)
                          if isinstance(container, str) else container)
        self.host_dir = Path(host_dir).resolve()
        self.exec_dir = PurePosixPath(container_dir)

    def start(self, argv, cwd):
        wd = str(self.exec_dir / cwd)
        ex = self.client.api.exec_create(self.container.id, ["sh", "-c", _WRAP, "sh", *argv],
                                         workdir=wd, stdin=False, tty=False)
        self.client.api.exec_start(ex["Id"], detach=True)
        return _DockerProc(self, ex["Id"], wd)


# --------------------------------------------------------------------------
# Agents


def _poll_until(cond, deadline: float, step: float = 0.05) -> bool:
    """Poll cond() until true or time.monotonic() passes deadline."""
    while True:
        if cond():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)


class _Agent:
    side = ""

    def __init__(self, executor: Executor, name: str, scenario: Path, control_port: int):
        if not re.fullmatch(r"[\w.-]+", name):
            raise ValueError(f"agent name {name!r}: letters, digits, . _ - only")
        self.executor, self.name, self.scenario = executor, name, Path(scenario)
        self.control_port = control_port
        self.dir = executor.host_dir / name
        self.proc: Proc | None = None
        self.returncode: int | None = None
        self.strays: list[TraceLine] = []   # messages of another caller's calls (build_calls)

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _common(self) -> list[str]:
        return ["-sf", SCENARIO, "-nostdin",
                "-trace_shortmsg", "-shortmessage_file", SHORTMSG,
                "-trace_logs", "-log_file", LOGS,
                "-trace_err", "-error_file", ERRORS,
                "-trace_stat", "-stf", STAT, "-fd", "1",
                "-ci", "127.0.0.1", "-cp", str(self.control_port)]

    def start(self, ready_timeout: float = 10.0):
        """Start sipp; return once it has bound its SIP port (raise SippError if not)."""
        if self.proc is not None:
            raise RuntimeError(f"{self.name}: already started")
        self.dir.mkdir(parents=True, exist_ok=True)
        for f in _OUR_FILES:  # a stale errors.log would be read as this run's
            (self.dir / f).unlink(missing_ok=True)
        shutil.copyfile(self.scenario, self.dir / SCENARIO)
        self.executor.put(self.name)
        self.proc = self.executor.start(self._argv(), self.name)
        deadline = time.monotonic() + ready_timeout
        if not _poll_until(lambda: self.proc.poll() is not None
                           or self.proc.udp_bound(self.port), deadline):
            self.stop(grace_s=0)
            self.executor.fetch(self.name)
            raise SippError(f"{self.name}: sipp did not bind UDP {self.port} "
                            f"within {ready_timeout}s{_tail(self.dir / OUT)}")
        if self.proc.poll() is not None:
            self.returncode = self.proc.poll()
            self.executor.fetch(self.name)
            # a short run (a call refused at once) can end before its port was seen
            # bound: exit 0/1 with its trace written means it ran its calls
            if self.returncode in (0, 1) and (self.dir / SHORTMSG).exists():
                return self
            raise SippError(f"{self.name}: sipp exited at start ({self.returncode})"
                            f"{_tail(self.dir / OUT)}")
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self._poll() is None

    def _poll(self):
        if self.returncode is None and self.proc is not None:
            self.returncode = self.proc.poll()
        return self.returncode

    def stop(self, grace_s: float = 5.0) -> None:
        """Soft quit ("q": no new calls, open calls may end), then SIGTERM, then SIGKILL."""
        if not self.running:
            return
        self.proc.control(self.control_port, "q")
        if _poll_until(lambda: self._poll() is not None, time.monotonic() + grace_s):
            return
        self.proc.signal(signal.SIGTERM)  # SIPp flushes its traces on SIGTERM
        if _poll_until(lambda: self._poll() is not None, time.monotonic() + 5):
            return
        self.proc.signal(signal.SIGKILL)
        if not _poll_until(lambda: self._poll() is not None, time.monotonic() + 5):
            raise SippError(f"{self.name}: sipp survived SIGKILL")

    def calls(self) -> list[CallRecord]:
        """Per-call records from this agent's traces (readable while running)."""
        if self.proc is None:
            raise RuntimeError(f"{self.name}: not started")
        running = self.running         # before the fetch: a trace read after its end is whole
        self.executor.fetch(self.name)
        if running and not (self.dir / SHORTMSG).exists():
            return []     # SIPp opens its message trace with the first message it traces
        strays: list[TraceLine] = []
        calls = read_agent_dir(self.dir, self.side, partial_ok=running, strays=strays)
        self.strays = strays
        return calls

    def shortmsg(self) -> list[TraceLine]:
        """This agent's message trace as it stands (readable while running; a last line
        cut off is left out)."""
        self.executor.fetch(self.name)
        return parse_shortmsg(self.dir / SHORTMSG, partial_ok=True)

    def __enter__(self):
        return self.start() if self.proc is None else self

    def __exit__(self, *exc):
        self.stop(grace_s=0 if exc[0] else 5.0)


class SippUas(_Agent):
    """SIPp far end (scenarios/sipp/uas.xml) with RTP echo; runs until stop()."""

    side = "uas"

    def __init__(self, executor: Executor, local_ip: str, *, port: int = 5060,
                 media_ip: str | None = None, media_port: int = 6000,
                 name: str = "uas", control_port: int = 8888,
                 recv_timeout_s: float | None = None, scenario: Path = UAS_XML,
                 extra_args: tuple[str, ...] = ()):
        super().__init__(executor, name, scenario, control_port)
        self.local_ip, self.port = local_ip, port
        self.media_ip, self.media_port = media_ip or local_ip, media_port
        self.recv_timeout_s, self.extra_args = recv_timeout_s, tuple(extra_args)

    def _argv(self):
        argv = ["sipp", *self._common(), "-i", self.local_ip, "-p", str(self.port),
                "-mi", self.media_ip, "-mp", str(self.media_port), "-rtp_echo"]
        if self.recv_timeout_s:  # off by default: a leg waiting for its BYE must not time out
            argv += ["-recv_timeout", str(int(self.recv_timeout_s * 1000))]
        return argv + list(self.extra_args)


class SippLoad(_Agent):
    """SIPp caller (scenarios/sipp/uac.xml): `rate` calls/s, each held `hold_s`.

    Give either `duration_s` (calls = rate * duration) or `calls`. A call whose
    next response never comes is aborted by -recv_timeout after
    `recv_timeout_s`, so every call ends within hold_s + a few recv timeouts;
    `-timeout` (with -timeout_error) stops SIPp itself past that bound.
    """

    side = "uac"

    def __init__(self, executor: Executor, target: str, local_ip: str, *,
                 rate: float, hold_s: float, duration_s: float | None = None,
                 calls: int | None = None, port: int = 5060,
                 media_ip: str | None = None, media_port: int = 6000,
                 name: str = "uac", control_port: int = 8889,
                 recv_timeout_s: float = 10.0, service: str = "1000",
                 scenario: Path = UAC_XML, extra_args: tuple[str, ...] = ()):
        super().__init__(executor, name, scenario, control_port)
        if (duration_s is None) == (calls is None):
            raise ValueError("give exactly one of duration_s and calls")
        if rate <= 0 or hold_s < 0 or recv_timeout_s <= 0:
            raise ValueError("rate and recv_timeout_s must be > 0, hold_s >= 0")
        self.ncalls = calls if calls is not None else max(1, round(rate * duration_s))
        if self.ncalls < 1:
            raise ValueError("calls must be >= 1")
        self.target, self.local_ip, self.port = target, local_ip, port
        self.media_ip, self.media_port = media_ip or local_ip, media_port
        self.rate, self.hold_s, self.recv_timeout_s = rate, hold_s, recv_timeout_s
        self.service, self.extra_args = service, tuple(extra_args)
        # Call-IDs must stay unique across loads and containers (pids repeat).
        self.cid_tag = f"{name}-{secrets.token_hex(3)}"
        # Last call starts at ncalls/rate; setup, BYE each bounded by recv timeouts.
        self.bound_s = math.ceil(self.ncalls / rate + hold_s + 4 * recv_timeout_s + 10)
        self.deadline: float | None = None

    def _argv(self):
        limit = math.ceil(self.rate * (self.hold_s + 4 * self.recv_timeout_s)) + 10
        return ["sipp", self.target, *self._common(),
                "-i", self.local_ip, "-p", str(self.port),
                "-mi", self.media_ip, "-mp", str(self.media_port),
                "-s", self.service, "-cid_str", f"%u-%p-{self.cid_tag}@%s",
                "-r", f"{self.rate:g}", "-rp", "1000", "-m", str(self.ncalls),
                "-l", str(limit),  # never throttled by calls stuck in a fault
                "-d", str(int(self.hold_s * 1000)),
                "-recv_timeout", str(int(self.recv_timeout_s * 1000)),
                "-timeout", f"{self.bound_s}s", "-timeout_error",
                *self.extra_args]

    def start(self, ready_timeout: float = 10.0):
        super().start(ready_timeout)
        self.deadline = time.monotonic() + self.bound_s + 5
        return self

    def wait(self, deadline: float | None = None) -> bool:
        """Wait for SIPp to finish all its calls, until `deadline` (time.monotonic()).

        Default deadline: the load's own bound plus 5 s. Returns True when SIPp
        ended by itself; False when it had to be stopped at the deadline (the
        calls still open then have ended=False: they hung).
        """
        if self.proc is None:
            raise RuntimeError(f"{self.name}: not started")
        deadline = self.deadline if deadline is None else deadline
        if _poll_until(lambda: self._poll() is not None, deadline, step=0.1):
            return True
        self.stop(grace_s=0)
        return False

    def quit(self) -> None:
        """Stop placing new calls now; SIPp ends once its open calls have ended (wait()).
        A load whose length is a condition, not a count: `created()` says how many it placed."""
        if self.running:
            self.proc.control(self.control_port, "q")

    def created(self) -> int | None:
        """The calls SIPp says it created (OutgoingCall(C) of its last statistics line,
        which it writes again as it exits); None before the first line."""
        self.executor.fetch(f"{self.name}/{STAT}")
        try:
            head, *rows = (self.dir / STAT).read_text().strip().splitlines()
        except (FileNotFoundError, ValueError):
            return None
        if not rows:
            return None
        col = head.split(";").index("OutgoingCall(C)")
        return int(rows[-1].split(";")[col])

    def calls(self, far_end: "SippUas | list[CallRecord] | None" = None) -> list[CallRecord]:
        """UAC records; with `far_end` (a SippUas or its records) far_bye is joined in."""
        recs = super().calls()
        if far_end is not None:
            join_far_end(recs, far_end.calls() if isinstance(far_end, SippUas) else far_end)
        return recs
