"""The Prometheus exposition, exactly, from made-up counters and replies;
Debian's promtool lints it."""

from __future__ import annotations

import re
import subprocess

import pytest

from mping_sender import metrics, metrics_http, reply_stats, sender
from prereq import require_tool
from test_reply_stats import MS, datagram, send, tracker

INFO = (("version", "1.1.0"), ("group", "ff2e::42"), ("port", "4321"), ("interface", "snd0"),
        ("source", "fd00::1"), ("mping_version", "2.0"))
HOSTILE = 'fd00::"2\\\nx'  # no reply source looks like this; the escaping must hold anyway


def counters(sent: int = 10) -> sender.Counters:
    found = sender.Counters()
    found.started, found.sent, found.failed, found.skipped, found.reported = 100_000_000_000, sent, 2, 3, 4
    return found


def stats_with_replies() -> reply_stats.Replies:
    """Ten datagrams 10 ms apart; fd00::2 answers 0-7 after 1 ms (7 twice), a
    hostile address answers 0 after 3 s; two malformed datagrams."""
    stats = tracker(window=4, silence_ms=10_000)
    for s in range(10):
        send(stats, [s])
        if s < 8:
            stats.receive(datagram(s), "fd00::2", s * 10 * MS + MS)
    stats.receive(datagram(7), "fd00::2", 95 * MS)
    stats.receive(datagram(9), HOSTILE, 9 * 10 * MS + 3000 * MS)
    stats.receive(b"junk", "fd00::9", 0)
    stats.receive(b"junk", "fd00::9", 0)
    return stats


def document(stats=None, sent: int = 10) -> str:
    return "".join(metrics.exposition(INFO, counters(sent), stats, wall_offset=1_700_000_000.0))


def samples(text: str) -> dict:
    return dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))


def promtool_check(text: str) -> None:
    promtool = require_tool("promtool")
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout + result.stderr) == (0, ""), text


def test_the_sender_alone():
    text = document()
    assert samples(text) == {
        'mping_sender_info{version="1.1.0",group="ff2e::42",port="4321",interface="snd0",source="fd00::1",'
        'mping_version="2.0"}': "1",
        "mping_sender_start_time_seconds": "1700000100.0",
        "mping_sender_datagrams_sent_total": "10",
        "mping_sender_send_failures_total": "2",
        "mping_sender_slots_skipped_total": "3",
        "mping_sender_errors_after_send_total": "4",
    }
    assert "mping_sender_receivers" not in text, "no reply socket (--no-replies): no reply series"
    promtool_check(text)


def test_receivers_counters_and_the_rtt_histogram():
    stats = stats_with_replies()
    text = document(stats)
    found = samples(text)
    mine = '{receiver="fd00::2"}'
    assert found["mping_sender_receivers"] == "2"
    assert found['mping_sender_replies_dropped_total{reason="malformed"}'] == "2"
    assert found["mping_sender_replies_total" + mine] == "8"
    assert found["mping_sender_replies_duplicate_total" + mine] == "1"
    # 8 and 9 are still in the window of 4: pending, not lost; none lost before
    assert found["mping_sender_replies_lost_total" + mine] == "0"
    assert found["mping_sender_last_reply_timestamp_seconds" + mine] == "1700000000.071"
    assert found['mping_sender_rtt_seconds_bucket{receiver="fd00::2",le="0.0008"}'] == "0"
    assert found['mping_sender_rtt_seconds_bucket{receiver="fd00::2",le="0.0016"}'] == "8"
    assert found['mping_sender_rtt_seconds_bucket{receiver="fd00::2",le="+Inf"}'] == "8"
    assert found["mping_sender_rtt_seconds_count" + mine] == "8"
    assert found["mping_sender_rtt_seconds_sum" + mine] == "0.008"
    hostile = '{receiver="fd00::\\"2\\\\\\nx"}'
    assert found["mping_sender_rtt_seconds_bucket" + hostile[:-1] + ',le="1.6384"}'] == "0"
    assert found["mping_sender_rtt_seconds_bucket" + hostile[:-1] + ',le="3.2768"}'] == "1"
    promtool_check(text)


def test_lost_replies_only_grow_and_become_lost_when_they_leave_the_window():
    stats = stats_with_replies()
    mine = 'mping_sender_replies_lost_total{receiver="fd00::2"}'
    before = int(samples(document(stats))[mine])
    send(stats, range(10, 14))  # 8 and 9 leave the window of 4 unanswered
    assert int(samples(document(stats, sent=14))[mine]) == before + 2


def test_buckets_double_from_50_microseconds_to_26_seconds():
    assert metrics.RTT_BOUNDS[0] == "5e-05" and metrics.RTT_BOUNDS[1] == "0.0001"
    assert metrics.RTT_BOUNDS[-2:] == ("26.2144", "+Inf") and len(metrics.RTT_BOUNDS) == 21


def test_every_family_has_help_and_type_and_the_documented_names():
    text = document(stats_with_replies())
    families = re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M)
    assert [name for name, _ in families] == re.findall(r"^# HELP (\S+) ", text, re.M)
    assert {name for name, _ in families} >= {
        "mping_sender_info", "mping_sender_start_time_seconds", "mping_sender_datagrams_sent_total",
        "mping_sender_send_failures_total", "mping_sender_slots_skipped_total",
        "mping_sender_errors_after_send_total", "mping_sender_receivers", "mping_sender_replies_total",
        "mping_sender_replies_lost_total", "mping_sender_replies_duplicate_total", "mping_sender_replies_late_total",
        "mping_sender_last_reply_timestamp_seconds", "mping_sender_rtt_seconds", "mping_sender_replies_dropped_total"}
    assert all(kind == "counter" for name, kind in families if name.endswith("_total"))


def test_no_receivers_yet_is_still_a_valid_document():
    promtool_check(document(tracker()))


def test_a_full_table_of_receivers_is_valid_and_in_small_pieces():
    stats = tracker(window=1000, silence_ms=10_000, max_receivers=reply_stats.MAX_RECEIVERS)
    send(stats, range(1000))
    for n in range(reply_stats.MAX_RECEIVERS):
        stats.receive(datagram(999), f"fd00::{n + 1:x}", 9990 * MS + n * MS)
    pieces = list(metrics.exposition(INFO, counters(1000), stats, wall_offset=0.0))
    assert max(len(piece) for piece in pieces) < 4096
    promtool_check("".join(pieces))


@pytest.mark.parametrize("request_text, answer", [
    (b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", None),
    (b"GET /metrics?name[]=up HTTP/1.0\n\n", None),
    (b"GET / HTTP/1.1\r\n\r\n", metrics_http.NOT_FOUND),
    (b"GET /metrics/ HTTP/1.1\r\n\r\n", metrics_http.NOT_FOUND),
    (b"POST /metrics HTTP/1.1\r\n\r\n", metrics_http.NOT_ALLOWED),
    (b"HEAD /metrics HTTP/1.1\r\n\r\n", metrics_http.NOT_ALLOWED),
    (b"GET /metrics\r\n\r\n", metrics_http.BAD_REQUEST),
    (b"GET  /metrics HTTP/1.1\r\n\r\n", metrics_http.BAD_REQUEST),
    (b"GET /metrics SPDY/3\r\n\r\n", metrics_http.BAD_REQUEST),
    (b"\x16\x03\x01\x02\x00 /metrics HTTP/1.1\r\n\r\n", metrics_http.BAD_REQUEST),
    (b"\r\n\r\n", metrics_http.BAD_REQUEST),
])
def test_only_get_metrics_is_answered_with_the_document(request_text, answer):
    assert metrics_http.parse_request(request_text) == answer
