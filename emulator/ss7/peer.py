"""ss7-peer: the PSTN exchange at the far end of the system's SS7 links, built like SIPp.

It is one signalling point (its own point code) with ISUP and TCAP over an MTP3 linkset
of M2PA links (emulator/ss7/). It answers the system's IAMs (ACM, then ANM after the
answer delay; the caller releases) and places its own at a rate, each released after the
hold time once answered. Every call that ends is one JSON line of the trace file; the
summary (stdout, and --summary FILE) counts calls placed, answered, failed, and the
release causes. TCAP: it opens dialogues (Begin; Continue after a delay; End after
another) and reports each one's fate. Exit status: 0 when every placed call was answered
and every dialogue ended normally, 1 otherwise, 2 for a usage error or links that never
came into service.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections import Counter
from typing import Optional

from . import MAX_CIC, MAX_PC, mtp3
from .isup import Isup, NORMAL_CLEARING
from .mtp3 import Linkset, Port
from .tcap import ENDED, Tcap

CALL_REJECTED = 21
EXAMPLE = """example: 5 calls/s for 10 s, held 3 s, over two links to the system at 1001:
  python -m emulator.ss7.peer --opc 2002 --dpc 1001 \\
      --link connect:10.0.3.21:3565 --link connect:10.0.3.22:3565 \\
      --cics 1-60 --mode both --rate 5 --duration 10 --hold 3 \\
      --called 4930100,4930101 --trace calls.jsonl --tcap-dialogues 2"""


# -- argument types: a bad value is argparse's clear error, never a traceback ------------

def point_code(s: str) -> int:
    try:
        v = int(s, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a point code (0..16383)") from None
    if not 0 <= v <= MAX_PC:
        raise argparse.ArgumentTypeError(f"point code {v} out of range 0..{MAX_PC} (14 bits)")
    return v


def link(s: str) -> tuple[str, tuple[str, int]]:
    mode, _, rest = s.partition(":")
    host, _, port = rest.rpartition(":")
    if mode not in ("listen", "connect") or not host or not port.isdigit() \
            or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{s!r}: expected listen:HOST:PORT or connect:HOST:PORT")
    return mode, (host, int(port))


def cic_ranges(s: str) -> list[int]:
    cics: list[int] = []
    try:
        for part in s.split(","):
            lo, _, hi = part.partition("-")
            cics.extend(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r}: expected CIC ranges like 1-30,61-90") from None
    if not cics or len(set(cics)) != len(cics) or not all(0 <= c <= MAX_CIC for c in cics):
        raise argparse.ArgumentTypeError(f"{s!r}: CICs must be distinct, 0..4095 (12 bits)")
    return cics


def positive(kind):
    def parse(s: str):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{s!r} is not a number") from None
        if v < 0:
            raise argparse.ArgumentTypeError(f"{s!r} must not be negative")
        return v
    return parse


def numbers(s: str) -> list[str]:
    nums = [n.strip() for n in s.split(",")]
    if not all(n.isdigit() and len(n) <= 30 for n in nums):
        raise argparse.ArgumentTypeError(f"{s!r}: expected digits, comma-separated")
    return nums


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m emulator.ss7.peer", description=__doc__.split("\n\n")[0] + "\n\n"
        + __doc__.split("\n\n", 1)[1], epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("signalling")
    g.add_argument("--opc", type=point_code, required=True, help="own point code (14-bit ITU)")
    g.add_argument("--dpc", type=point_code, required=True, help="the system's point code")
    g.add_argument("--link", type=link, action="append", required=True,
                   metavar="listen|connect:HOST:PORT",
                   help="one M2PA link (TCP) per option; SLC 0, 1, ... in their order")
    g.add_argument("--cics", type=cic_ranges, default=cic_ranges("1-30"),
                   help="the circuits shared with the system, e.g. 1-30,61-90 (default 1-30)")
    g.add_argument("--hunt", choices=("lowest", "random"), default="lowest",
                   help="circuit selection for its calls: the lowest free circuit it controls "
                        "(default), or any free one it controls (spreads the calls over the "
                        "system's trunk groups)")
    g.add_argument("--proving", type=positive(float), default=0.5, metavar="S",
                   help="M2PA proving period in s (default 0.5)")
    g.add_argument("--link-timeout", type=positive(float), default=15.0, metavar="S",
                   help="how long to wait for every link in service (default 15)")
    g.add_argument("--t1", type=positive(float), default=0.5, metavar="S",
                   help="REL repeated every S s without RLC (default 0.5)")
    g.add_argument("--t5", type=positive(float), default=3.0, metavar="S",
                   help="then RSC after S s (default 3)")
    g.add_argument("--t7", type=positive(float), default=10.0, metavar="S",
                   help="release a call with no ACM after S s (default 10)")
    g = p.add_argument_group("calls")
    g.add_argument("--mode", choices=("answer", "call", "both"), default="both",
                   help="answer the system's IAMs, place calls, or both (default)")
    g.add_argument("--rate", type=positive(float), default=1.0, help="calls/s (default 1)")
    g.add_argument("--hold", type=positive(float), default=2.0, metavar="S",
                   help="an answered call is released after S s (default 2)")
    g.add_argument("--called", type=numbers, default=["4930100"],
                   help="called numbers, used in turn (default 4930100)")
    g.add_argument("--calls", type=positive(int), help="stop after placing this many calls")
    g.add_argument("--duration", type=positive(float), metavar="S",
                   help="place calls (or answer) for S s; without it and --calls, until "
                        "SIGINT/SIGTERM")
    g.add_argument("--answer-delay", type=positive(float), default=0.1, metavar="S",
                   help="ANM S s after the ACM of an incoming call (default 0.1)")
    g.add_argument("--drain", type=positive(float), default=10.0, metavar="S",
                   help="at the end, wait S s beyond the hold time for calls to end, then "
                        "release the rest (default 10)")
    g = p.add_argument_group("output")
    g.add_argument("--trace", metavar="FILE",
                   help="one JSON line per call: cic, direction, called, the times of IAM, "
                        "ACM, ANM, REL, RLC, cause, released_by (peer or system), outcome; "
                        "written anew by each run")
    g.add_argument("--summary", metavar="FILE", help="the summary also written here (JSON)")
    g = p.add_argument_group("TCAP")
    g.add_argument("--tcap-dialogues", type=positive(int), default=0, metavar="N",
                   help="dialogues to open at the start (default 0)")
    g.add_argument("--tcap-continue-after", type=positive(float), default=1.0, metavar="S",
                   help="Continue S s after the Begin (default 1)")
    g.add_argument("--tcap-end-after", type=positive(float), default=1.0, metavar="S",
                   help="End S s after the Continue (default 1)")
    g.add_argument("--ssn", type=positive(int), default=146, help="own and the system's SSN")
    return p


class Peer:
    def __init__(self, a: argparse.Namespace, out=sys.stdout, err=sys.stderr):
        self.a, self.out, self.err = a, out, err
        self.stopping = threading.Event()
        self.counts: Counter = Counter()
        self.causes: Counter = Counter()
        self.released_by: Counter = Counter()
        self.dialogues: dict[int, dict] = {}
        self.trace = open(a.trace, "w") if a.trace else None
        self.isup = Isup("ss7-peer", a.opc, a.dpc, {"pstn": a.cics},
                         answer_after_s=a.answer_delay if a.mode != "call" else None,
                         t1_s=a.t1, t5_s=a.t5, t7_s=a.t7,
                         on_event=self._event, on_call_end=self._ended, hunt=a.hunt)
        self.tcap = Tcap("ss7-peer", a.opc, a.dpc, ssn=a.ssn, peer_ssn=a.ssn)
        ports = [Port(i, **{mode: addr}) for i, (mode, addr) in enumerate(a.link)]
        self.ls = Linkset("ss7-peer", a.opc, a.dpc, ports, proving_s=a.proving,
                          on_message=self._deliver, log=self.log)
        self.isup.attach(self.ls.send)
        self.tcap.attach(self.ls.send)

    def log(self, msg: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} ss7-peer {msg}", file=self.err, flush=True)

    def _deliver(self, m: mtp3.Msu, slc: int) -> None:
        self.isup.on_message(m, slc)
        self.tcap.on_message(m, slc)

    # -- calls (callbacks run under the ISUP lock) ----------------------------------------

    def _event(self, event: str, call) -> None:
        if call.direction == "in" and event == "iam":
            self.counts["incoming"] += 1
        if call.direction == "in" and event == "acm" and self.a.mode == "call":
            self.isup.release(call.cic, CALL_REJECTED)
        if call.direction == "out" and event == "anm":
            t = threading.Timer(self.a.hold, self._hang_up, (call,))
            t.daemon = True
            t.start()

    def _hang_up(self, call) -> None:
        with self.isup.lock:
            if self.isup.call(call.cic) is call:    # not a later call on the same circuit
                self.isup.release(call.cic, NORMAL_CLEARING)

    def _ended(self, call) -> None:
        key = "placed" if call.direction == "out" else "incoming"
        self.counts[f"{key} {call.outcome}"] += 1
        if call.cause is not None:
            self.causes[call.cause] += 1
        if call.released_by:
            self.released_by["peer" if call.released_by == "local" else "system"] += 1
        if self.trace:
            rec = {"cic": call.cic, "direction": call.direction, "called": call.called,
                   "iam": call.t_iam, "acm": call.t_acm, "anm": call.t_anm, "rel": call.t_rel,
                   "rlc": call.t_rlc, "cause": call.cause,
                   "released_by": {"local": "peer", "remote": "system"}.get(call.released_by),
                   "outcome": call.outcome, "reattempt_of": call.reattempt_of}
            self.trace.write(json.dumps(rec) + "\n")
            self.trace.flush()

    # -- run ------------------------------------------------------------------------------

    def run(self) -> int:
        try:
            self.ls.start()
        except OSError as e:                           # a listen address in use
            self.log(f"cannot open the links: {e}")
            self.close()
            return 2
        deadline = time.monotonic() + self.a.link_timeout
        while not self.ls.settled():
            if time.monotonic() > deadline:
                self.log(f"links not in service after {self.a.link_timeout} s: "
                         f"{ {s: l['state'] for s, l in self.ls.status()['links'].items()} }")
                self.close()
                return 2
            time.sleep(0.05)
        self.log(f"{len(self.a.link)} links in service, {self.a.mode} mode")
        start = time.monotonic()
        tcap_thread = threading.Thread(target=self._dialogues, daemon=True)
        tcap_thread.start()
        if self.a.mode in ("call", "both"):
            self._generate(start)
        else:
            self._wait_end(start)
        tcap_thread.join()
        self._drain()
        summary = self.summary(time.monotonic() - start)
        text = json.dumps(summary, indent=2)
        print(text, file=self.out, flush=True)
        if self.a.summary:
            with open(self.a.summary, "w") as f:
                f.write(text + "\n")
        self.close()
        ok = (summary["failed"] == 0 and summary["answered"] >= summary["placed"]
              and all(d["result"] == "ended" for d in summary["dialogues"]))
        return 0 if ok else 1

    def _generate(self, start: float) -> None:
        period = 1.0 / self.a.rate if self.a.rate else None
        i = 0
        while not self.stopping.is_set():
            if self.a.calls is not None and i >= self.a.calls:
                break
            due = start + i * period if period else None
            if due is None or (self.a.duration is not None and due - start >= self.a.duration):
                break
            if self.stopping.wait(max(0.0, due - time.monotonic())):   # the pace
                break
            if self.isup.place_call(self.a.called[i % len(self.a.called)]) is None:
                self.counts["no circuit"] += 1
            else:
                self.counts["placed"] += 1
            i += 1

    def _wait_end(self, start: float) -> None:
        self.stopping.wait(None if self.a.duration is None
                           else max(0.0, start + self.a.duration - time.monotonic()))

    def _dialogues(self) -> None:
        """Every dialogue begun at once, continued together, ended together."""
        tids = [self.tcap.begin() for _ in range(self.a.tcap_dialogues)]
        for n, tid in enumerate(tids):
            self.dialogues[tid] = {"n": n, "tid": tid, "result": None}
        for name, after, act in (("Continue", self.a.tcap_continue_after, self.tcap.cont),
                                 ("End", self.a.tcap_end_after, self.tcap.end)):
            if not tids:
                break
            time.sleep(after)                          # the dialogues' own pace
            for tid in tids:
                state = self.tcap.state(tid)
                if state == "active":
                    act(tid)
                elif self.dialogues[tid]["result"] is None:
                    self.dialogues[tid]["result"] = f"{state} before {name}"
        for tid, rec in self.dialogues.items():
            d = self.tcap.dialogue(tid)
            rec.update(peer_tid=d.peer_tid, results_received=d.results_received,
                       closed_by=d.closed_by)
            if rec["result"] is None:
                # Begin's and Continue's invokes both answered: the far end kept the dialogue
                rec["result"] = ("ended" if d.state == ENDED and d.results_received >= 2
                                 else f"{d.state}, {d.results_received} results")

    def _drain(self) -> None:
        """Calls still up get their hold time and `drain` more, then are released."""
        end = time.monotonic() + self.a.hold + self.a.answer_delay + self.a.drain
        while not self.isup.idle() and time.monotonic() < end:
            time.sleep(0.05)
        with self.isup.lock:
            busy = [c for c in self.isup.circuits if self.isup.release(c)]
        if busy:
            self.log(f"released {len(busy)} calls still up at the end")
            end = time.monotonic() + max(2.0, 4 * self.a.t1)
            while not self.isup.idle() and time.monotonic() < end:
                time.sleep(0.05)

    def summary(self, seconds: float) -> dict:
        c = self.counts
        # a call that lost a glare was placed again by the ISUP layer: its end counts
        failed = c["no circuit"] + sum(v for k, v in c.items() if k.startswith("placed ")
                                       and k not in ("placed answered", "placed glare"))
        return {"seconds": round(seconds, 3), "placed": c["placed"],
                "answered": c["placed answered"], "failed": failed,
                "glare": c["placed glare"], "no_circuit": c["no circuit"],
                "incoming": c["incoming"], "incoming_answered": c["incoming answered"],
                "causes": {str(k): v for k, v in sorted(self.causes.items())},
                "released_by": dict(self.released_by),
                "circuits": self.isup.status()["states"],
                "isup_errors": dict(self.isup.errors),
                "dialogues": list(self.dialogues.values())}

    def close(self) -> None:
        self.ls.stop()
        self.isup.stop()
        self.tcap.stop()
        if self.trace:
            self.trace.close()


def main(argv: Optional[list[str]] = None) -> int:
    a = parser().parse_args(argv)
    if a.mode != "answer" and a.calls is None and a.duration is None:
        parser().error("--mode call/both needs --calls or --duration")
    if a.mode != "answer" and a.rate == 0:
        parser().error("--rate must be above 0 to place calls")
    try:
        peer = Peer(a)
    except OSError as e:                                 # a trace file that cannot be written
        parser().error(str(e))
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: peer.stopping.set())
    return peer.run()


if __name__ == "__main__":
    sys.exit(main())
