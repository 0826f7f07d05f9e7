"""Reply matching and statistics, exactly, with made-up clocks."""

from __future__ import annotations

import ipaddress
import json
import random

import pytest

from mping_sender import reply_stats, wire
from mping_sender.reply_stats import Kind

IDENT = 0x1234ABCD
MS = 1_000_000
SOURCE = (ipaddress.ip_address("fd00::1"), 4321)
GROUP = (ipaddress.ip_address("ff2e::42"), 4321)


def datagram(sequence: int, kind: str = "r", ident: int = IDENT, payload: int = 0) -> bytes:
    return wire.encode(wire.Datagram("2.0", kind, 64, SOURCE, GROUP, sequence, ident, 0, 0, payload))


def tracker(window: int = 8, silence_ms: int = 500, **kwargs) -> reply_stats.Replies:
    return reply_stats.Replies(IDENT, "ff2e::42", 4321, window=window, silence_ns=silence_ms * MS, **kwargs)


def send(stats: reply_stats.Replies, sequences, every_ms: int = 10) -> None:
    """Send ``sequences``; sequence s leaves at s * every_ms (mod 2^32 does not matter here)."""
    for s in sequences:
        stats.sent(s, (s % 1000) * every_ms * MS)


def test_rtt_comes_from_our_send_time_not_the_echoed_timestamp():
    stats = tracker()
    send(stats, range(3))
    echoed = bytearray(datagram(1))
    wire.write_counters(echoed, 1, IDENT, 999999, 123)  # a reflector's byte-order bug
    outcome = stats.receive(bytes(echoed), "fd00::2", 10 * MS + 250_000)
    assert (outcome.kind, outcome.sequence, outcome.rtt_ns, outcome.new_receiver) == (Kind.REPLY, 1, 250_000, True)


def test_duplicates_out_of_order_and_loss_per_receiver():
    stats = tracker(window=100)
    send(stats, range(10))
    now = 200 * MS
    for seq in (0, 1, 3, 2, 2, 5, 6, 7, 8, 9, 9):
        stats.receive(datagram(seq), "fd00::2", now)
    for seq in (4, 5, 6):
        stats.receive(datagram(seq), "fd00::3", now)
    report = stats.report(final=True)
    a, b = report["receivers"]
    assert (a["address"], a["first_sequence"], a["expected"], a["received"], a["lost"], a["duplicates"],
            a["out_of_order"], a["late"]) == ("fd00::2", 0, 10, 9, 1, 2, 1, 0)
    assert a["loss_percent"] == 10.0
    # Loss counts only from a receiver's first reply on.
    assert (b["first_sequence"], b["expected"], b["received"], b["lost"]) == (4, 6, 3, 3)
    assert report["totals"] == {"replies": 12, "duplicates": 2, "late": 0, "own": 0, "foreign": 0,
                                "malformed": 0, "overflow": 0, "evicted": 0, "kernel_dropped": 0,
                                "receivers": 2}


def test_rtt_min_avg_max_mdev_like_ping():
    stats = tracker()
    send(stats, range(3), every_ms=0)
    for seq, rtt_ms in ((0, 1), (1, 2), (2, 6)):
        stats.receive(datagram(seq), "a", rtt_ms * MS)
    rtt = stats.report(final=True)["receivers"][0]["rtt_ms"]
    # ping: mdev = sqrt(mean(x^2) - mean(x)^2) = sqrt(41/3 - 9)
    assert rtt == {"min": 1.0, "avg": 3.0, "max": 6.0, "mdev": round((41 / 3 - 9) ** 0.5, 3)}


def test_a_reply_older_than_the_window_is_late_and_stays_lost():
    stats = tracker(window=4)
    send(stats, range(10))
    stats.receive(datagram(9), "a", 100 * MS)
    late = stats.receive(datagram(5), "a", 100 * MS)
    kept = stats.receive(datagram(6), "a", 100 * MS)
    assert (late.kind, late.rtt_ns, kept.kind) == (Kind.LATE, None, Kind.REPLY)
    r = stats.report(final=True)["receivers"][0]
    assert (r["first_sequence"], r["expected"], r["received"], r["late"], r["lost"]) == (6, 4, 2, 1, 2)


def test_pending_mid_run_becomes_lost_at_the_end():
    stats = tracker(window=4)
    send(stats, range(10))
    stats.receive(datagram(6), "a", 100 * MS)
    stats.receive(datagram(7), "a", 100 * MS)
    running, final = stats.report(final=False)["receivers"][0], stats.report(final=True)["receivers"][0]
    assert (running["expected"], running["received"], running["pending"], running["lost"]) == (4, 2, 2, 0)
    assert (final["pending"], final["lost"], final["loss_percent"]) == (0, 2, 50.0)


def test_sequence_numbers_wrap():
    stats = tracker(window=8)
    start = wire.SEQUENCE_MODULUS - 3
    send(stats, [(start + i) % wire.SEQUENCE_MODULUS for i in range(6)])
    for i in range(6):
        assert stats.receive(datagram((start + i) % wire.SEQUENCE_MODULUS), "a", 10**12).kind is Kind.REPLY
    assert stats.receive(datagram(2), "a", 10**12).kind is Kind.DUPLICATE
    assert stats.receive(datagram(3), "a", 10**12).kind is Kind.MALFORMED  # not sent yet
    assert stats.complete()


@pytest.mark.parametrize("raw, kind", [
    (datagram(0, kind="s"), Kind.OWN),
    (datagram(0, ident=IDENT + 1), Kind.FOREIGN),
    (datagram(0, kind="s", ident=7), Kind.FOREIGN),
    (datagram(0)[:287], Kind.MALFORMED),
    (datagram(0) + bytes(wire.MAX_PAYLOAD_SIZE + 1), Kind.MALFORMED),
    (b"3.0\0" + datagram(0)[4:], Kind.MALFORMED),
    (b"", Kind.MALFORMED),
    (datagram(77), Kind.MALFORMED),
])
def test_what_is_not_a_reply_is_counted_and_dropped(raw, kind):
    stats = tracker()
    send(stats, range(3))
    assert stats.receive(raw, "a", 10**9).kind is kind
    assert stats.receivers == {}


def test_memory_is_bounded_under_a_hostile_flood():
    stats = tracker(window=16, max_receivers=10)
    send(stats, range(40))
    rng = random.Random(6)
    valid = datagram(35)
    for n in range(20000):
        raw = bytearray(valid)
        for _ in range(rng.randrange(4)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        stats.receive(bytes(raw) if n % 3 else rng.randbytes(rng.randrange(600)), f"10.0.{n % 50}.1", 10**9)
    assert len(stats.receivers) == 10
    assert all(len(r.answered) == 16 for r in stats.receivers.values())
    t = stats.totals
    assert t.evicted > 0 and t.malformed > 0  # newcomers replace receivers that never answered consistently
    assert t.replies + t.duplicates + t.late + t.own + t.foreign + t.malformed + t.overflow == 20000


def test_silence_is_reported_once_and_the_return_noticed():
    stats = tracker(silence_ms=500)
    send(stats, range(3))
    stats.receive(datagram(0), "a", 0)
    assert stats.fell_silent(400 * MS) == []
    assert [r.address for r in stats.fell_silent(600 * MS)] == ["a"]
    assert stats.fell_silent(900 * MS) == []
    assert stats.report(final=True)["receivers"][0]["silent"]
    back = stats.receive(datagram(2), "a", 2000 * MS)
    assert back.silent_for_ns == 2000 * MS and not stats.receivers["a"].silent


def test_settled_waits_for_every_answering_receiver_but_not_for_silent_ones():
    stats = tracker()
    send(stats, range(3))
    assert not stats.settled()  # nobody has answered yet
    stats.receive(datagram(1), "a", 0)
    stats.receive(datagram(1), "b", 0)
    stats.receive(datagram(2), "a", 10**12)
    assert not stats.settled()
    assert [r.address for r in stats.fell_silent(10**12 + 1)] == ["b"]
    assert stats.settled()  # b went silent
    assert not stats.complete()


def test_summary_text_and_json_say_the_same():
    stats = tracker(window=100)
    send(stats, range(20))
    for seq in range(20):
        if seq != 4:
            stats.receive(datagram(seq), "fd00::2", (seq % 1000) * 10 * MS + 2 * MS)
    stats.receive(datagram(7), "fd00::2", 500 * MS)
    stats.receive(datagram(1, kind="s"), "fd00::1", 0)
    report = stats.report(final=True)
    assert json.loads(json.dumps(report)) == report
    assert reply_stats.summary_lines(report) == [
        "--- fd00::2 mping statistics ---",
        "20 datagrams transmitted since its first reply (seq=0), 19 received, +1 duplicates, 0 out of order, "
        "0 late, 5% loss",
        "rtt min/avg/max/mdev = 2.000/2.000/2.000/0.000 ms",
        "--- [ff2e::42]:4321 mping totals ---",
        "20 datagrams transmitted, 1 receivers, 19 replies, +1 duplicates, 0 late; ignored 1 own, 0 foreign; "
        "dropped 0 malformed, 0 over the receiver limit, 0 by the kernel (receive buffer full); "
        "0 receivers evicted",
    ]


def test_a_forged_burst_cannot_keep_a_real_reflector_out():
    stats = tracker(window=8, silence_ms=500, max_receivers=256)
    send(stats, range(4))
    for n in range(400):  # one forged reply each from 400 addresses, in a burst
        stats.receive(datagram(3), f"10.200.{n // 250}.{n % 250}", 40 * MS)
    assert len(stats.receivers) == 256 and stats.totals.evicted == 144 and stats.totals.overflow == 0
    send(stats, range(4, 12))
    for s in range(4, 12):  # the real reflector answers every datagram from now on
        outcome = stats.receive(datagram(s), "fd00::2", (s * 10 + 1) * MS)
        assert outcome.kind is Kind.REPLY
    assert outcome.evicted is None and stats.established(stats.receivers["fd00::2"])
    for n in range(1000):  # a new flood of addresses cannot push it out
        stats.receive(datagram(11), f"10.201.{n // 250}.{n % 250}", 112 * MS)
    assert stats.receivers["fd00::2"].received == 8


def test_consistent_forgers_are_evicted_once_they_fall_silent():
    stats = tracker(window=8, silence_ms=500, max_receivers=4)
    send(stats, range(4))
    for n in range(4):  # forgers answering every datagram: established
        for s in range(4):
            stats.receive(datagram(s), f"10.200.0.{n}", 40 * MS)
    assert all(stats.established(r) for r in stats.receivers.values())
    refused = stats.receive(datagram(3), "fd00::2", 100 * MS)
    assert refused.kind is Kind.OVERFLOW and "fd00::2" not in stats.receivers
    # The forgers stop; once they have been silent for the silence limit, the reflector gets in.
    tracked = stats.receive(datagram(3), "fd00::2", 541 * MS + stats.silence_ns)
    assert tracked.kind is Kind.REPLY and tracked.new_receiver and tracked.evicted.address == "10.200.0.0"
    assert stats.totals.overflow == 1 and stats.totals.evicted == 1


# --- replies the kernel drops here are not lost on the path -----------------------------------------

def test_the_kernels_drops_are_what_the_counter_shows_beyond_our_own_datagrams():
    stats = tracker(window=4)
    send(stats, range(3))
    # The counter counts our own looped-back datagrams too (the socket filter drops them).
    assert stats.observe_drops(3, 0) == 0 and stats.totals.kernel_dropped == 0
    assert stats.observe_drops(2, 0) == 0, "an older reading (a datagram queued earlier) is ignored"
    assert stats.observe_drops(8, 5 * MS) == 5 and stats.totals.kernel_dropped == 5
    send(stats, range(3, 5))
    assert stats.observe_drops(9, 6 * MS) == 0, "read before our last datagram reached the socket: not fewer drops"
    assert stats.observe_drops(10, 7 * MS) == 0 and stats.totals.kernel_dropped == 5
    assert stats.observe_drops(11, 8 * MS) == 1 and stats.totals.kernel_dropped == 6


def test_the_drop_counter_wraps_at_32_bits():
    stats = tracker(own_looped=False)
    stats.observe_drops(2**31 - 1, 0)
    stats.observe_drops(2**32 - 2, 0)
    assert stats.observe_drops(3, 0) == 5 and stats.totals.kernel_dropped == 2**32 + 3


def test_a_reply_that_may_have_been_dropped_here_is_unknown_not_lost():
    stats = tracker(window=6)
    send(stats, range(6))
    for seq in (0, 1, 2):
        stats.receive(datagram(seq), "a", 100 * MS)
    # Replies to 3 and 4 never come: the kernel dropped 2 replies while 0..5 were in the window.
    assert stats.observe_drops(6 + 2, 110 * MS) == 2
    stats.receive(datagram(5), "a", 120 * MS)
    send(stats, range(6, 10))  # 0..3 leave the window (3 unknown), 4 stays (unknown at the end)
    for seq in (6, 7):
        stats.receive(datagram(seq), "a", 200 * MS)
    r = stats.report(final=True)["receivers"][0]
    # 8 and 9 were never tainted: lost.
    assert (r["expected"], r["received"], r["unknown"], r["lost"]) == (10, 6, 2, 2), r
    assert r["loss_percent"] == 25.0  # of the 8 whose fate is known
    lines = reply_stats.summary_lines(stats.report(final=True))
    assert "6 received, +0 duplicates, 0 out of order, 0 late, 2 unknown (replies dropped here?), 25% loss" in lines[1]
    assert "2 by the kernel (receive buffer full)" in lines[-1]
    assert stats.report(final=True)["totals"]["kernel_dropped"] == 2


def test_tainted_sequences_still_in_the_window_are_unknown_at_the_end():
    stats = tracker(window=8)
    send(stats, range(4))
    stats.receive(datagram(0), "a", 50 * MS)
    stats.observe_drops(4 + 1, 60 * MS)
    send(stats, range(4, 6))
    final = stats.report(final=True)["receivers"][0]
    assert (final["unknown"], final["lost"]) == (3, 2), final  # 1..3 tainted, 4 and 5 not
    running = stats.report(final=False)["receivers"][0]
    assert (running["pending"], running["unknown"], running["lost"]) == (5, 0, 0), running


def test_while_the_kernel_drops_nobody_falls_silent_or_stops_answering_consistently():
    stats = tracker(window=8, silence_ms=50, max_receivers=4)
    for seq in range(10):  # the real reflector answers everything
        send(stats, [seq])
        stats.receive(datagram(seq), "fd00::2", seq * 10 * MS + MS)
    reflector = stats.receivers["fd00::2"]
    dropped = 0
    for s in range(10, 200):  # a flood: the kernel drops most replies, the reflector's included
        send(stats, [s])
        now = s * 10 * MS + MS
        dropped += 50
        stats.observe_drops(s + 1 + dropped, now)
        if s % 10 == 0:
            stats.receive(datagram(s), "fd00::2", now)
        for n in range(40):  # forged newcomers at every period
            stats.receive(datagram(s), f"10.200.{s}.{n}", now)
        assert stats.fell_silent(now) == []
    assert stats.receivers.get("fd00::2") is reflector, "an established receiver outranks every newcomer"
    r = next(r for r in stats.report(final=True)["receivers"] if r["address"] == "fd00::2")
    assert r["first_sequence"] == 0 and r["lost"] == 0 and r["received"] + r["unknown"] == r["expected"], r
    # Once the kernel has stopped dropping for the silence limit, silence counts again.
    assert "fd00::2" in [x.address for x in stats.fell_silent(199 * 10 * MS + MS + 51 * MS)]


def test_the_eviction_of_an_established_receiver_is_reported_with_its_history():
    stats = tracker(window=8, silence_ms=50, max_receivers=1)
    send(stats, range(4))
    for seq in range(4):
        stats.receive(datagram(seq), "fd00::2", 40 * MS)
    outcome = stats.receive(datagram(3), "fd00::3", 200 * MS)  # fd00::2 silent for 160 ms
    assert outcome.new_receiver and outcome.evicted.address == "fd00::2" and outcome.evicted.received == 4


def test_another_senders_datagram_is_foreign_with_its_id():
    stats = tracker()
    send(stats, range(3))
    outcome = stats.receive(datagram(0, kind="s", ident=7), "fd00::1", 0)
    assert (outcome.kind, outcome.reason, outcome.ident) == (Kind.FOREIGN, "s", 7)


def test_replies_read_too_late_taint_the_window_like_drops():
    stats = tracker(window=4, silence_ms=40)
    send(stats, range(3))
    stats.receive(datagram(0), "a", 5 * MS)
    assert not stats.observe_wait(20 * MS, 30 * MS), "half the silence limit: still in time"
    assert stats.observe_wait(21 * MS, 30 * MS)
    send(stats, range(3, 8))  # 1 and 2 leave unanswered, tainted: unknown; 3..7 were never tainted
    r = stats.report(final=True)["receivers"][0]
    assert (r["received"], r["unknown"], r["lost"]) == (1, 2, 5), r
    assert stats.fell_silent(69 * MS) == [] and len(stats.fell_silent(71 * MS)) == 1  # silent from 30 ms on


def test_the_round_trip_time_ends_when_the_reply_arrived_not_when_it_was_read():
    stats = tracker()
    send(stats, range(2))  # 0 at 0 ms, 1 at 10 ms
    assert stats.receive(datagram(0), "a", 50 * MS, waited_ns=45 * MS).rtt_ns == 5 * MS
    assert stats.receivers["a"].last_reply_ns == 5 * MS
    # A wait reaching back before the send: the real-time clock was set meanwhile; the read time stands.
    assert stats.receive(datagram(1), "a", 50 * MS, waited_ns=45 * MS).rtt_ns == 40 * MS
