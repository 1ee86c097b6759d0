"""A dead address must not stall a sender nor starve its other path (emulator/udp_paths.py).

Inside a host container (the kernel the emulators run on), datagrams go at the rate of
the gateway's replication under the production load to a dead peer's two addresses (one
on ctrl-a, one on ctrl-b, held by no one: their ARP never resolves, and the kernel queues
the datagrams and charges them to the socket) and to a live receiver. Through PathSockets no sendto may take long and the
live path must get its datagrams; a plain blocking socket shared by both paths is
measured too, for the report: it stalled about 2.8 s in every 3 s here."""
import json

SCRIPT = r"""
import json, socket, sys, threading, time
from emulator.udp_paths import PathSockets
dead, naive = [(ip, 7999) for ip in sys.argv[1].split(",")], sys.argv[2] == "naive"
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); rx.bind(("127.0.0.1", 0))
rx.settimeout(0.2); live = rx.getsockname(); got = [0]
def count():
    while True:
        try: rx.recvfrom(2048); got[0] += 1
        except socket.timeout: return
threading.Thread(target=count, daemon=True).start()
shared = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
paths = PathSockets()
payload, sent, worst = b"x" * 300, 0, 0.0
end = time.monotonic() + 4.0
while time.monotonic() < end:
    for addr in dead + [live]:
        t = time.monotonic()
        if naive:
            try: shared.sendto(payload, addr)
            except OSError: pass
        else:
            paths.send(payload, addr)
        worst = max(worst, time.monotonic() - t)
    sent += 1
    time.sleep(1 / 600)
time.sleep(0.3)
print(json.dumps({"sent": sent, "live_received": got[0], "worst_send_s": round(worst, 3)}))
"""


def _run(testbed, naive: bool) -> dict:
    host = testbed.container("host-a")
    # a dead peer: an unheld address on each control network (both of its paths)
    dead = ",".join(testbed.ip("host-a", n).rsplit(".", 1)[0] + ".250" for n in ("ctrl-a", "ctrl-b"))
    res = host.exec_run(["python", "-c", SCRIPT, dead, "naive" if naive else "paths"],
                        workdir="/opt/testbed")
    out = res.output.decode(errors="replace").strip()
    assert res.exit_code == 0, out
    return json.loads(out.splitlines()[-1])


def test_a_dead_address_neither_stalls_the_sender_nor_starves_the_live_path(testbed):
    paths = _run(testbed, naive=False)
    naive = _run(testbed, naive=True)
    report = f"PathSockets {paths}; one shared blocking socket {naive}"
    assert paths["worst_send_s"] < 0.1, report
    assert paths["live_received"] >= 0.95 * paths["sent"], report
