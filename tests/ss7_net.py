"""Signalling points for the ISUP, TCAP and ss7-peer tests: a Linkset of two real M2PA
links over 127.0.0.1 TCP with ISUP and TCAP on top (emulator/ss7/)."""
import threading
from contextlib import contextmanager
from functools import partial

import pytest

from harness import util

from emulator.ss7.isup import Isup
from emulator.ss7.mtp3 import Linkset, Port
from emulator.ss7.tcap import Tcap

PC_SYS, PC_PSTN = 1001, 2002      # the system (lower: controls the odd CICs), the far end
PROVING_S = 0.2
GROUPS = {"unit1": range(1, 9), "unit2": range(9, 17)}
# the project's wait, polled fast: the links' events come within milliseconds
wait_for = partial(util.wait_for, interval=0.01)


class Node:
    """One signalling point: its linkset, ISUP and TCAP users, every call that ended."""

    def __init__(self, name, opc, dpc, ports, groups=GROUPS, first_tid=1, **isup_kw):
        self.isup = Isup(name, opc, dpc, groups, **isup_kw)
        self.tcap = Tcap(name, opc, dpc, first_tid=first_tid)
        self.ls = Linkset(name, opc, dpc, ports, proving_s=PROVING_S,
                          on_message=self.deliver, log=lambda _m: None)
        self.isup.attach(self.ls.send)
        self.tcap.attach(self.ls.send)
        self.ls.start()

    def deliver(self, m, slc):
        self.isup.on_message(m, slc)
        self.tcap.on_message(m, slc)

    def ended(self, cic):
        with self.isup.lock:
            return [c for c in self.isup.ended if c.cic == cic]

    def stop(self):
        self.ls.stop()
        self.isup.stop()
        self.tcap.stop()


def listening(name, opc, dpc, **kw):
    return Node(name, opc, dpc, [Port(0, listen=("127.0.0.1", 0)),
                                 Port(1, listen=("127.0.0.1", 0))], **kw)


def connecting(name, opc, dpc, to: Node, **kw):
    return Node(name, opc, dpc, [Port(s, connect=("127.0.0.1", to.ls.listen_port(s)))
                                 for s in (0, 1)], **kw)


def in_service(*nodes):
    wait_for(lambda: all(n.ls.settled() for n in nodes), 10, "linksets in service")


@contextmanager
def linked_pair(pstn_kw=None, system_kw=None):
    """The far end listening, the system connecting to it, both links in service:
    yields (system, pstn) and stops both."""
    pstn = listening("pstn", PC_PSTN, PC_SYS, **(pstn_kw or {}))
    system = connecting("sys", PC_SYS, PC_PSTN, pstn, **(system_kw or {}))
    try:
        in_service(pstn, system)
        yield system, pstn
    finally:
        system.stop()
        pstn.stop()


@pytest.fixture(autouse=True)
def thread_errors():
    """An exception in a link's or a worker's thread fails the test (a bad frame must not
    crash one)."""
    seen, old = [], threading.excepthook
    threading.excepthook = lambda args: seen.append(args)
    yield
    threading.excepthook = old
    assert not seen, [f"{a.thread.name}: {a.exc_type.__name__}: {a.exc_value}" for a in seen]
