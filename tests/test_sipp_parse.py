"""SIPp trace parsing on real SIPp 3.6.1 traces, plus one live local run.

The fixtures under tests/fixtures/sipp/<case>/ were captured by
tests/fixtures/sipp/capture.py (our uac.xml against test far ends).
"""
import shutil
import socket
import time
from pathlib import Path

import pytest

from tools import needs

from harness.sipp import (LocalExecutor, SippLoad, SippUas, TraceError, build_calls,
                          join_far_end, parse_aborts, parse_logs, parse_shortmsg, read_agent_dir)

FIX = Path(__file__).parent / "fixtures" / "sipp"


def case(name):
    uac = read_agent_dir(FIX / name / "uac", "uac")
    uas = read_agent_dir(FIX / name / "uas", "uas") if (FIX / name / "uas").exists() else None
    if uas is not None:
        join_far_end(uac, uas)
    return uac, uas


def test_shortmsg_format():
    lines = parse_shortmsg(FIX / "ok" / "uac" / "short.log")
    first = lines[0]
    assert (first.lineno, first.direction, first.cseq, first.method) == (1, "S", 1, "INVITE")
    assert first.first_line.startswith("INVITE sip:1000@127.0.0.1:")
    assert first.code is None and first.t > 1.7e9
    assert [ln.code for ln in lines[1:3]] == [180, 200]


def test_completed_calls_both_ends():
    uac, uas = case("ok")
    assert len(uac) == 3 and len(uas) == 3
    for c in uac:
        assert (c.outcome, c.ended, c.final_code, c.bye_code) == ("completed", True, 200, 200)
        assert c.gateway == "host-a"            # from the <log> action, leading space trimmed
        assert c.invite_t < c.answer_t < c.bye_sent_t < c.bye_ok_t
        assert (c.far_bye, c.far_legs) == (True, 1)
    for leg in uas:
        assert leg.outcome == "completed" and leg.orig == leg.call_id  # direct: same Call-ID


def test_rejected_503_is_failed_and_ended():
    uac, uas = case("rejected")
    for c in uac:
        assert (c.outcome, c.final_code, c.answer_t, c.ended) == ("failed", 503, None, True)
        assert "unexpected message" in c.abort and c.far_bye is False
    assert {leg.outcome for leg in uas} == {"failed"}


def test_final_reason_is_the_status_lines_reason_phrase(tmp_path):
    uac, _ = case("rejected")
    assert {c.final_reason for c in uac} == {"Service Unavailable"}
    ok, _ = case("ok")
    assert {c.final_reason for c in ok} == {"OK"}
    # a refusal's own words (the unit's disabled SIP stack), and a status line without any
    t0 = 1795598065.0
    rows = [("S", "a@h", "CSeq:1 INVITE", "INVITE sip:9500@10.0.0.1:5060 SIP/2.0"),
            ("R", "a@h", "CSeq:1 INVITE", "SIP/2.0 100 Trying"),
            ("R", "a@h", "CSeq:1 INVITE", "SIP/2.0 503 Service Unavailable (SIP stack disabled)"),
            ("S", "b@h", "CSeq:1 INVITE", "INVITE sip:9501@10.0.0.1:5060 SIP/2.0"),
            ("R", "b@h", "CSeq:1 INVITE", "SIP/2.0 486")]
    short = tmp_path / "short.log"
    short.write_text("".join(f"2026-11-25\t09:14:25.{i:06d}\t{t0 + i / 1e6:.6f}\t{d}\t{cid}\t{cseq}\t{first}\n"
                             for i, (d, cid, cseq, first) in enumerate(rows)))
    a, b = build_calls(parse_shortmsg(short), "uac")
    assert (a.final_code, a.final_reason) == (503, "Service Unavailable (SIP stack disabled)")
    assert (b.final_code, b.final_reason) == (486, "")


def test_no_answer_is_unanswered_and_ended_by_timeout():
    (c,), _ = case("timeout")
    assert (c.outcome, c.final_code, c.ended) == ("unanswered", None, True)
    assert "receive timeout" in c.abort
    assert c.end_t - c.invite_t == pytest.approx(2.0, abs=0.3)   # recv_timeout_s=2
    assert c.far_bye is None                                     # no far end joined


def test_bye_481_is_dropped():
    (c,), (leg,) = case("bye481")
    assert (c.outcome, c.bye_code, c.bye_ok_t, c.ended) == ("dropped", 481, None, True)
    assert c.far_bye is False
    assert (leg.outcome, leg.bye_code) == ("dropped", 481)


def test_bye_unanswered_is_dropped_after_timeout():
    (c,), (leg,) = case("nobye")
    assert (c.outcome, c.bye_code, c.ended) == ("dropped", None, True)
    assert "receive timeout" in c.abort and c.far_bye is False
    assert leg.bye_sent_t is not None and leg.bye_ok_t is None   # BYE arrived, never answered
    # the far end's "Dead call" entries (retransmitted BYEs) are not aborts
    assert parse_aborts(FIX / "nobye" / "uas" / "errors.log") == {}


def test_network_hangup_is_dropped():
    (c,), (leg,) = case("hangup")
    assert (c.outcome, c.ended, c.bye_sent_t) == ("dropped", True, None)
    assert c.peer_bye_t > c.answer_t and "unexpected BYE" in c.abort


def test_stopped_mid_call_is_not_ended():
    uac, uas = case("hung")
    assert [(c.outcome, c.ended) for c in uac] == [("dropped", False)] * 2
    assert [(leg.outcome, leg.ended) for leg in uas] == [("dropped", False)] * 2


def test_malformed_shortmsg_line_is_reported_with_its_number(tmp_path):
    lines = (FIX / "ok" / "uac" / "short.log").read_text().splitlines()
    lines[2] = lines[2].replace("\tCSeq:1 INVITE\t", "\tCSeq:x\t")
    bad = tmp_path / "short.log"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(TraceError, match=r"short\.log:3: bad short-message line"):
        parse_shortmsg(bad)


def test_partial_last_line_only_tolerated_while_running(tmp_path):
    text = (FIX / "ok" / "uac" / "short.log").read_text()
    cut = tmp_path / "short.log"
    cut.write_text(text[: text.index("\t", len(text) - 40)])   # last line cut mid-field
    n = text.count("\n")
    assert len(parse_shortmsg(cut, partial_ok=True)) == n - 1
    with pytest.raises(TraceError, match=rf":{n}:"):
        parse_shortmsg(cut)


def test_malformed_log_line(tmp_path):
    p = tmp_path / "logs.log"
    p.write_text("1-2@h gateway=host-a\nnonsense\n")
    with pytest.raises(TraceError, match=r"logs\.log:2"):
        parse_logs(p, "gateway")


def _free_udp_base(span):
    """A port p with p .. p+span-1 all free for UDP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + span > 65535:
            continue
        socks = []
        try:
            for p in range(base, base + span):
                x = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(x)
                x.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for x in socks:
                x.close()
    raise RuntimeError("no free UDP port range")


@needs("sipp", "Debian sip-tester")
def test_live_uac_uas_local(tmp_path):
    # SIP 0/1, UAS RTP echo 2 (+2 = 4), UAC media 6 (+2), control 9/10
    b = _free_udp_base(11)
    ex = LocalExecutor(tmp_path)
    with SippUas(ex, "127.0.0.1", port=b, media_port=b + 2, control_port=b + 9) as uas:
        with SippLoad(ex, f"127.0.0.1:{b}", "127.0.0.1", port=b + 1, media_port=b + 6,
                      control_port=b + 10, rate=10, hold_s=1.0, calls=5,
                      recv_timeout_s=3.0) as load:
            assert load.wait(), "SIPp did not finish its calls by the deadline"
        uas.stop()
    calls, legs = load.calls(far_end=uas), uas.calls()
    assert len(calls) == 5 and len(legs) == 5
    assert [(c.outcome, c.ended, c.far_bye) for c in calls] == [("completed", True, True)] * 5
    assert {leg.outcome for leg in legs} == {"completed"}
    assert {leg.orig for leg in legs} == {c.call_id for c in calls}


@needs("sipp", "Debian sip-tester")
def test_live_failover_to_the_second_address_when_the_first_is_silent(tmp_path):
    from harness.sipp import UAC_FAILOVER_XML, failover_args
    b = _free_udp_base(12)
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # takes INVITEs, never answers
    silent.bind(("127.0.0.1", b + 11))
    ex = LocalExecutor(tmp_path)
    try:
        with SippUas(ex, "127.0.0.1", port=b, media_port=b + 2, control_port=b + 9) as uas:
            with SippLoad(ex, f"127.0.0.1:{b + 11}", "127.0.0.1", port=b + 1, media_port=b + 6,
                          control_port=b + 10, rate=5, hold_s=0.5, calls=3, recv_timeout_s=4.0,
                          scenario=UAC_FAILOVER_XML,
                          extra_args=failover_args("127.0.0.1", b)) as load:
                assert load.wait(), "SIPp did not finish its calls by the deadline"
            uas.stop()
    finally:
        silent.close()
    calls = load.calls(far_end=uas)
    assert [(c.outcome, c.retries, c.far_bye) for c in calls] == [("completed", 1, True)] * 3
    assert all(c.answer_t - c.invite_t >= 1.0 for c in calls)   # waited 1 s for the first


def _short(tmp_path, rows):
    t0 = 1795598065.0
    short = tmp_path / "short.log"
    short.write_text("".join(f"2026-11-25\t09:14:25.{i:06d}\t{t0 + i / 1e6:.6f}\t{d}\t{cid}\t{cseq}\t{first}\n"
                             for i, (d, cid, cseq, first) in enumerate(rows)))
    return parse_shortmsg(short)


def test_a_far_end_ignores_a_late_request_of_a_call_it_never_had(tmp_path):
    # the previous operation's far end took call "old"; its late BYE reached this one
    rows = [("R", "old@h", "CSeq:2 BYE", "BYE sip:sipp@10.0.0.2:5060 SIP/2.0"),
            ("S", "old@h", "CSeq:2 BYE", "SIP/2.0 481 Call/Transaction Does Not Exist"),
            ("R", "new@h", "CSeq:1 INVITE", "INVITE sip:1000@10.0.0.1:5060 SIP/2.0"),
            ("S", "new@h", "CSeq:1 INVITE", "SIP/2.0 200 OK")]
    assert [c.call_id for c in build_calls(_short(tmp_path, rows), "uas")] == ["new@h"]
    # a caller always sends the INVITE first: a dialog without one is a broken trace
    with pytest.raises(TraceError, match="no INVITE"):
        build_calls(_short(tmp_path, [("S", "x@h", "CSeq:2 BYE", "BYE sip:1000@10.0.0.1 SIP/2.0")]), "uac")


def test_a_caller_sets_aside_what_it_received_for_a_call_it_never_placed(tmp_path):
    """SIPp traces every datagram reaching its port: a late 200 and BYE of the call of
    the caller before it on that port are not this caller's calls (a matrix run failed
    on one as 'no INVITE in the trace'); they are kept apart, and shown."""
    rows = [("R", "old@h", "CSeq:1 INVITE", "SIP/2.0 200 OK"),
            ("S", "new@h", "CSeq:1 INVITE", "INVITE sip:1000@10.0.0.1:5060 SIP/2.0"),
            ("R", "new@h", "CSeq:1 INVITE", "SIP/2.0 200 OK"),
            ("R", "old@h", "CSeq:2 BYE", "BYE sip:sipp@10.0.0.2:5060 SIP/2.0")]
    strays = []
    calls = build_calls(_short(tmp_path, rows), "uac", strays=strays)
    assert [c.call_id for c in calls] == ["new@h"] and calls[0].answer_t is not None
    assert [(ln.call_id, ln.first_line) for ln in strays] == [
        ("old@h", "SIP/2.0 200 OK"), ("old@h", "BYE sip:sipp@10.0.0.2:5060 SIP/2.0")]


@needs("sipp", "Debian sip-tester")
def test_live_far_end_answers_a_retransmitted_invite_and_then_the_bye(tmp_path):
    """A caller whose 200 was late (a silent port) retransmits its INVITE: the far end
    must keep the call and answer the BYE (it used to abort the call on it)."""
    b = _free_udp_base(11)
    ex = LocalExecutor(tmp_path)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", b + 1))
    sock.settimeout(3)
    me, cid = f"127.0.0.1:{b + 1}", "retrans-1@127.0.0.1"
    sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8\r\n"

    def request(method, cseq, to_tag="", body=""):
        return (f"{method} sip:1000@127.0.0.1:{b} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{method}{cseq}\r\n"
                f"From: <sip:c@{me}>;tag=c1\r\nTo: <sip:1000@127.0.0.1>{to_tag}\r\nCall-ID: {cid}\r\n"
                f"CSeq: {cseq} {method}\r\nContact: <sip:c@{me}>\r\nMax-Forwards: 70\r\n"
                + ("Content-Type: application/sdp\r\n" if body else "")
                + f"Content-Length: {len(body)}\r\n\r\n{body}").encode()

    def until(code, method):
        while True:
            msg = sock.recv(65000).decode()
            if msg.startswith(f"SIP/2.0 {code}") and f" {method}\r\n" in msg.split("CSeq:", 1)[1].split("\r\n", 1)[0] + "\r\n":
                return msg

    with SippUas(ex, "127.0.0.1", port=b, media_port=b + 2, control_port=b + 9) as uas:
        invite = request("INVITE", 1, body=sdp)
        sock.sendto(invite, ("127.0.0.1", b))
        ok = until(200, "INVITE")
        sock.sendto(invite, ("127.0.0.1", b))          # sent before that 200 arrived
        tag = ";tag=" + ok.split("\r\nTo:", 1)[1].split("tag=", 1)[1].split("\r\n", 1)[0]
        sock.sendto(request("ACK", 1, tag), ("127.0.0.1", b))
        sock.sendto(request("BYE", 2, tag), ("127.0.0.1", b))
        until(200, "BYE")
        uas.stop()
    sock.close()
    (leg,) = uas.calls()
    assert leg.outcome == "completed" and leg.abort is None


@needs("sipp", "Debian sip-tester")
def test_live_soft_quit_ends_the_load_early_and_sipp_counts_every_call_it_placed(tmp_path):
    from harness.util import wait_for
    b = _free_udp_base(11)
    ex = LocalExecutor(tmp_path)
    with SippUas(ex, "127.0.0.1", port=b, media_port=b + 2, control_port=b + 9) as uas:
        with SippLoad(ex, f"127.0.0.1:{b}", "127.0.0.1", port=b + 1, media_port=b + 6,
                      control_port=b + 10, rate=20, hold_s=0.5, duration_s=60,
                      recv_timeout_s=3.0) as load:
            wait_for(lambda: sum(c.answer_t is not None for c in load.calls()) >= 10, 10,
                     "10 calls answered")
            t = time.monotonic()
            load.quit()
            assert load.wait(deadline=t + 5), "SIPp did not end within 5 s of its soft quit"
        uas.stop()
    calls = load.calls(far_end=uas)
    assert 10 <= len(calls) < load.ncalls
    assert load.created() == len(calls)
    assert {c.outcome for c in calls} == {"completed"}
