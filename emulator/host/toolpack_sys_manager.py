"""toolpack_sys_manager: heartbeats with the peer host, polls (leases) the TMedia units,
runs the election rule of `election.py` and, while active, the N+1 rule of
`n_plus_one.py` (which board serves which unit's VoIP interface). Publishes its view in RUN_DIR/role.json
(read by gateway, engine and tboamapp) and RUN_DIR/sysmgr.json (read by tboamapp), and
appends every role transition to the role log (role_log.py), which the harness reads."""
from __future__ import annotations

import errno
import json
import signal
import socket
import time

from . import state
from .election import ACTIVE, Election
from .n_plus_one import BoardView, plan
from .role_log import RoleLog
from .settings import GATEWAY_PORT, SYSMGR_PORT, UNIT_CONTROL_PORT, Settings
from .udp import decode, encode

APP = "toolpack_sys_manager"
TICK = 0.02
# A loop iteration this much later than the last one is logged with its slowest step: the
# heartbeats and the units' polls waited meanwhile (peer timeout, lease and fence are a
# few of these), so a false failover is explained by the log.
SLOW_TICK_S = 0.3


class TickTimer:
    """The time of each step of one loop iteration, and the gap between iterations."""

    def __init__(self, clock=time.monotonic):
        self.clock, self.steps, self.prev_start, self.last = clock, {}, None, None

    def start(self) -> str | None:
        """A new iteration; the report of a slow one before it (None when on time)."""
        now = self.clock()
        gap = None if self.prev_start is None else now - self.prev_start
        report = None
        if gap is not None and gap > SLOW_TICK_S:
            name, took = max(self.steps.items(), key=lambda kv: kv[1], default=("", 0.0))
            if took <= SLOW_TICK_S / 2 or name == "sleeping":
                where = "the process was not scheduled" + (
                    f": its {TICK * 1000:.0f} ms sleep took {took:.2f} s" if name == "sleeping" else "")
            else:
                where = f"{name} took {took:.2f} s"
            report = f"slow tick: {gap:.2f} s since the last ({where})"
        self.prev_start = self.last = now
        self.steps = {}
        return report

    def mark(self, name: str) -> None:
        now = self.clock()
        self.steps[name] = now - self.last
        self.last = now


CRITICAL_APPS = ("toolpack_engine", "gateway")


def ready_from_monitor() -> tuple[bool, tuple]:
    """The host can be active only while its engine and gateway run (rule 3/4). Also
    returns their pids: the monitor restarts a killed one within milliseconds, so a
    changed pid is how a death between two ticks is still seen."""
    apps = state.read("monitor").get("apps", {})
    pids = tuple(apps.get(a, {}).get("pid") for a in CRITICAL_APPS)
    return all(apps.get(a, {}).get("state") == "running" for a in CRITICAL_APPS), pids


class SysManager:
    def __init__(self, s: Settings, role_log: RoleLog | None = None):
        self.s = s
        self.el = Election(s.priority, s.peer_timeout, s.lease, s.handover_holddown)
        self.role_log = role_log if role_log is not None else RoleLog(s.host)
        self.why = "started"          # the reason the role log gives for the next transition
        self.hb = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.hb.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.hb.bind(("0.0.0.0", SYSMGR_PORT))
        self.hb.setblocking(False)
        self.units_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.units_sock.setblocking(False)
        self.seq = 0
        self.pending: dict[int, tuple[str, float]] = {}
        self.units: dict[str, dict] = {u: {"reply": None, "last_ok": None, "refused": None}
                                       for u in s.units}
        self.views = {u: BoardView() for u in s.units}
        self.ordered: dict[str, object] = {}     # board -> the unit we last told it to serve
        self.next_hb = self.next_poll = self.next_publish = 0.0
        self.published_role = None
        self.quitting = False
        self.app_pids = None
        self.hb_seq = int(time.time() * 1000)   # grows across restarts of this manager
        self._resume_or_close(state.read("role"))

    def _resume_or_close(self, prev: dict) -> None:
        """A restart while active (role.json on the tmpfs survives a process restart)
        resumes the role only if the last liveness stamp is younger than one lease: older,
        the units' leases have lapsed (rule 5), so the claim has nothing behind it."""
        died = self.role_log.died_active()
        age = None if died is None else time.time() - died["last_alive"]
        if prev.get("role") == ACTIVE and age is not None and age < self.s.lease:
            self.el.resume_active(int(prev.get("epoch", 0)))
            self.why = f"sys_manager restarted: resumed ({age:.3f} s after its last stamp)"
            state.log(APP, f"restarted while active: resuming epoch {prev.get('epoch')}")
            # the interval continues: no down line, and the resumed line repeats `active`
            self.role_log.write(ACTIVE, self.el.epoch, self.why)
            self.published_role, self.why = ACTIVE, None
            return
        if died is not None:
            why = ("sys_manager died while active" if age is not None and age < self.s.lease
                   else f"sys_manager died while active; restarted {age:.3f} s after its "
                        f"last stamp (> lease): not resumed")
            self.role_log.close_dead(why)
            state.log(APP, why)

    # ---- messages -----------------------------------------------------------------
    def _sendto(self, sock, msg, addr):
        try:
            sock.sendto(encode(msg), addr)
        except OSError as exc:   # a cut path (EPERM from a drop rule, unreachable): try the other
            if exc.errno not in (errno.EPERM, errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EINVAL):
                raise

    def send_heartbeats(self):
        self.hb_seq += 1
        msg = {"op": "hb", "seq": self.hb_seq, "host": self.s.host, "role": self.el.role,
               "epoch": self.el.epoch,
               "ready": ready_from_monitor()[0], "priority": self.s.priority}
        for ip in self.s.peer_ctrl_ips:
            self._sendto(self.hb, msg, (ip, SYSMGR_PORT))

    def handle_hb_socket(self):
        while True:
            try:
                data, addr = self.hb.recvfrom(65000)
            except BlockingIOError:
                return
            try:
                msg = decode(data)
            except ValueError as exc:
                self._sendto(self.hb, {"ok": False, "error": str(exc)}, addr)
                continue
            op = msg["op"]
            if op == "hb" and addr[0] in self.s.peer_ctrl_ips:
                self.el.heard_peer(self.s.peer_ctrl_ips.index(addr[0]), str(msg.get("role")),
                                   bool(msg.get("ready")), int(msg.get("priority", 99)),
                                   int(msg.get("epoch", 0)), int(msg.get("seq") or 0))
            elif op == "takeover" and addr[0] in self.s.peer_ctrl_ips:
                state.log(APP, f"peer asks us to take over (via {addr[0]})")
                self.el.request_takeover(int(msg.get("hb_seq") or 0))
            elif op == "quit" and addr[0] == "127.0.0.1":
                # the service monitor is quitting gracefully: hand over first
                self.quitting = True
                self.apply(self.el.quit(), "service quit")
                self.publish(force=True)
                self._sendto(self.hb, {"ok": True, "seq": msg.get("seq"), "role": self.el.role}, addr)
            else:
                self._sendto(self.hb, {"ok": False, "seq": msg.get("seq"),
                                       "error": f"unknown op {op!r}"}, addr)

    def poll_units(self, now):
        gateways = [[ip, GATEWAY_PORT] for ip in self.s.ctrl_ips]
        for unit, ips in self.s.units.items():
            self.seq += 1
            self.pending[self.seq] = (unit, now)
            msg = {"op": "poll", "seq": self.seq, "controller": self.s.host, "epoch": self.el.epoch,
                   "lease_ms": int(self.s.lease * 1000), "gateways": gateways}
            for ip in ips:   # both control paths: either one keeps the lease alive
                self._sendto(self.units_sock, msg, (ip, UNIT_CONTROL_PORT))
            if self.views[unit].first_poll is None:
                self.views[unit].first_poll = now
        # forget polls no unit will answer any more
        for seq in [q for q, (_, t) in self.pending.items() if now - t > 5.0]:
            del self.pending[seq]

    def handle_unit_replies(self):
        while True:
            try:
                data, _ = self.units_sock.recvfrom(65000)
            except BlockingIOError:
                return
            try:
                reply = json.loads(data)
                unit, sent_at = self.pending[reply["seq"]]
            except (ValueError, KeyError, TypeError):
                continue
            info = self.units[unit]
            info["reply"] = reply
            if reply.get("ok"):
                self.el.poll_accepted(unit, sent_at)
                info["last_ok"] = time.time()
                view = self.views[unit]
                view.last_reply, view.serves = time.monotonic(), reply.get("serves")
                view.bond_up = bool((reply.get("bond") or {"up": True}).get("up"))
            else:
                info["refused"] = reply.get("error")

    def place_services(self, now):
        """While active: send the `assume` requests of the N+1 rule."""
        if not self.s.services:
            return
        defaults = {u: u for u in self.s.services}
        for board, unit in plan(self.views, self.s.services, defaults, now, self.s.unit_dead):
            if self.ordered.get(board, "") != unit:
                states = {b: v.state(now, self.s.unit_dead) for b, v in self.views.items()}
                state.log(APP, f"N+1: {board} to serve {unit or 'nothing (spare)'} "
                               f"(boards {states})")
                self.ordered[board] = unit
            self.seq += 1
            self.pending[self.seq] = (board, now)
            svc = self.s.services.get(unit) or {}
            msg = {"op": "assume", "seq": self.seq, "controller": self.s.host, "unit": unit,
                   "address": svc.get("address"), "vlans": svc.get("vlans", [])}
            for ip in self.s.units[board]:
                self._sendto(self.units_sock, msg, (ip, UNIT_CONTROL_PORT))

    def release_units(self):
        for unit, ips in self.s.units.items():
            for ip in ips:
                self._sendto(self.units_sock, {"op": "release", "seq": 0, "controller": self.s.host},
                             (ip, UNIT_CONTROL_PORT))

    def apply(self, actions, why):
        if "handover" in actions:
            self.why = f"handover: {why}"
            state.log(APP, f"handing over to {self.s.peer}: {why}")
            self.release_units()
            # heartbeats from hb_seq on say standby; older ones still in flight are stale
            self.hb_seq += 1
            for ip in self.s.peer_ctrl_ips:
                self._sendto(self.hb, {"op": "takeover", "host": self.s.host, "hb_seq": self.hb_seq},
                             (ip, SYSMGR_PORT))

    def publish(self, force=False):
        now = time.monotonic()
        if self.el.role != self.published_role:
            state.log(APP, f"role {self.published_role} -> {self.el.role} (epoch {self.el.epoch})")
            self.role_log.write(self.el.role, self.el.epoch, self.why or self._why())
            self.why = None
            state.write("role", {"role": self.el.role, "epoch": self.el.epoch, "since": time.time(),
                                 "host": self.s.host})
            self.published_role = self.el.role
        if force or now >= self.next_publish:
            self.next_publish = now + 0.2
            state.write("sysmgr", {
                "host": self.s.host, "role": self.el.role, "epoch": self.el.epoch,
                "peer": {"name": self.s.peer, "alive": self.el.peer_alive(),
                         "paths_alive": [("ctrl-a", "ctrl-b")[p] for p in self.el.paths_alive()],
                         "role": self.el.peer.role},
                "units": {u: {"held": u in self.el.units_held(), "last_ok": i["last_ok"],
                              "refused": i["refused"], "status": i["reply"],
                              "state": self.views[u].state(now, self.s.unit_dead),
                              "serves": self.views[u].serves}
                          for u, i in self.units.items()},
                "services": {svc: next((b for b, v in self.views.items() if v.serves == svc and
                                        v.state(now, self.s.unit_dead) == "up"), None)
                             for svc in self.s.services},
                "updated": time.time()})

    def _why(self) -> str:
        """Why the election moved (the role log's `why`); handovers set theirs in apply."""
        held, total = len(self.el.units_held()), len(self.s.units)
        role = self.el.role
        if role == ACTIVE:
            return f"holds the lease of {held}/{total} units"
        if role == "candidate":
            if self.el.takeover_requested:
                return "peer asked us to take over"
            return "peer lost" if not self.el.peer_alive() else "neither active: preferred or peer not ready"
        if self.published_role == ACTIVE:
            return f"lost the lease majority (holds {held}/{total} units)"   # rule 2/5
        if self.published_role == "candidate":
            return "peer active" if self.el.peer.role == ACTIVE else "not ready"
        return "started"

    def run(self):
        stop = []
        signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
        timer = TickTimer()
        while not stop:
            slow = timer.start()
            if slow:
                state.log(APP, slow)
            now = time.monotonic()
            self.handle_hb_socket()
            self.handle_unit_replies()
            timer.mark("reading the sockets")
            if now >= self.next_hb:
                self.next_hb = now + self.s.hb_interval
                self.send_heartbeats()
            was = self.el.role
            ready, pids = ready_from_monitor()
            timer.mark("heartbeats and the monitor's state")
            restarted = self.app_pids is not None and pids != self.app_pids
            self.app_pids = pids
            ready = ready and not restarted and not self.quitting
            self.apply(self.el.step(ready, len(self.s.units)), "local engine or gateway down")
            timer.mark("the election")
            if self.el.role in ("candidate", ACTIVE) and (now >= self.next_poll or self.el.role != was):
                self.next_poll = now + self.s.poll_interval
                self.poll_units(now)
                if self.el.role == ACTIVE:
                    self.place_services(now)
            elif self.el.role == "standby" and was != "standby":
                self.views = {u: BoardView() for u in self.s.units}   # learn anew when active
                self.ordered = {}
            timer.mark("polling the units")
            self.publish()
            timer.mark("publishing the state")
            if self.el.role == ACTIVE:
                self.role_log.alive()
            timer.mark("the role log's liveness stamp")
            time.sleep(TICK)
            timer.mark("sleeping")
        # stopped (service quit or host shutdown): never leave the units leased to a dead manager
        self.apply(self.el.quit(), "stopping")
        self.publish(force=True)


def main():
    from ..priority import raise_priority
    raise_priority(lambda m: state.log(APP, m))
    SysManager(Settings.from_env()).run()


if __name__ == "__main__":
    main()
