"""The Prometheus text exposition (format 0.0.4) of what the sender counts
and what it learnt from replies. Pure: the caller hands in the counters,
the reply statistics and the clock offset; nothing here touches a socket.

The document comes out in pieces, a family's header or one receiver's
samples at a time, each cheap to make, so that the endpoint can stop
between any two of them when a datagram is due (metrics_http.py).
"""

from __future__ import annotations

from mping_sender import reply_stats

TYPE_CHECKING = False  # typing is for the checker only: see CONTRIBUTING
if TYPE_CHECKING:
    from typing import Callable, Iterator, Optional, Sequence, Tuple

    from mping_sender.sender import Counters

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# The histogram's upper bounds in seconds, as the text shows them ("+Inf" last).
RTT_BOUNDS = tuple(repr(reply_stats.RTT_BUCKET_BASE_NS * 2 ** k / 1e9) for k in range(reply_stats.RTT_BUCKETS)) \
    + ("+Inf",)

# The sender's own counters: (name, help, attribute of sender.Counters).
SENDER_COUNTERS: Tuple[Tuple[str, str, str], ...] = (
    ("mping_sender_datagrams_sent_total", "Datagrams the kernel took for sending.", "sent"),
    ("mping_sender_send_failures_total", "Datagrams whose send failed (not sent; their sequence number is reused).",
     "failed"),
    ("mping_sender_slots_skipped_total", "Slots of the schedule skipped after falling a slot or more behind.",
     "skipped"),
    ("mping_sender_errors_after_send_total", "Errors the kernel reported after a datagram left (ICMP).",
     "reported"),
)

# Datagrams on the reply socket that count for no receiver: (reason label, attribute of reply_stats.Totals).
DROPPED: Tuple[Tuple[str, str], ...] = (
    ("malformed", "malformed"),
    ("foreign", "foreign"),
    ("receiver_limit", "overflow"),
    ("receive_buffer", "kernel_dropped"),  # by the kernel, the reply socket's buffer full
)

# Per receiver: (name, type, help, its value). Counters start at 0 when a
# receiver appears; an evicted receiver's samples disappear with it.
PER_RECEIVER: Tuple[Tuple[str, str, str, Callable[[reply_stats.Replies, reply_stats.Receiver], int]], ...] = (
    ("mping_sender_replies_total", "counter", "First replies of the receiver to our datagrams.",
     lambda stats, receiver: receiver.received),
    ("mping_sender_replies_lost_total", "counter",
     "Datagrams since the receiver's first reply that it never answered within the receiver timeout "
     "(not those whose reply the kernel may have dropped here).",
     lambda stats, receiver: stats.unanswered(receiver, False)[2]),
    ("mping_sender_replies_duplicate_total", "counter", "Replies the receiver repeated.",
     lambda stats, receiver: receiver.duplicates),
    ("mping_sender_replies_late_total", "counter", "Replies that came after the receiver timeout.",
     lambda stats, receiver: receiver.late),
)


def escape(value: str) -> str:
    """A label value as the text format quotes it: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _header(name: str, kind: str, text: str) -> str:
    return f"# HELP {name} {text}\n# TYPE {name} {kind}\n"


def _seconds(value: float) -> str:
    return repr(float(value))


def exposition(info: Sequence[Tuple[str, str]], counters: Counters, stats: Optional[reply_stats.Replies],
               wall_offset: float) -> Iterator[str]:
    """The document, in pieces. ``info``: the labels of mping_sender_info;
    ``wall_offset``: the wall clock minus the monotonic clock, in seconds
    (the counters' times are monotonic). The receivers are those tracked
    when the first piece is made."""
    labels = ",".join(f'{name}="{escape(value)}"' for name, value in info)
    yield (_header("mping_sender_info", "gauge", "The sender's settings, in the labels.")
           + f"mping_sender_info{{{labels}}} 1\n"
           + _header("mping_sender_start_time_seconds", "gauge", "When the sender started, in seconds since the epoch.")
           + f"mping_sender_start_time_seconds {_seconds(counters.started / 1e9 + wall_offset)}\n"
           + "".join(_header(name, "counter", text) + f"{name} {getattr(counters, attribute)}\n"
                     for name, text, attribute in SENDER_COUNTERS))
    if stats is None:
        return
    receivers = [(escape(receiver.address), receiver) for receiver in stats.receivers.values()]
    totals = stats.totals
    yield (_header("mping_sender_receivers", "gauge", "Receivers tracked now (at most the receiver limit).")
           + f"mping_sender_receivers {len(receivers)}\n"
           + _header("mping_sender_receivers_evicted_total", "counter",
                     "Receivers dropped from a full table to make room for a new one.")
           + f"mping_sender_receivers_evicted_total {totals.evicted}\n"
           + _header("mping_sender_replies_dropped_total", "counter",
                     "Datagrams on the reply socket that count for no receiver, by reason.")
           + "".join(f'mping_sender_replies_dropped_total{{reason="{reason}"}} {getattr(totals, attribute)}\n'
                     for reason, attribute in DROPPED))
    for name, kind, text, value in PER_RECEIVER:
        yield _header(name, kind, text)
        for address, receiver in receivers:
            yield f'{name}{{receiver="{address}"}} {value(stats, receiver)}\n'
    yield _header("mping_sender_last_reply_timestamp_seconds", "gauge",
                  "When the receiver's last reply arrived, in seconds since the epoch.")
    for address, receiver in receivers:
        yield (f'mping_sender_last_reply_timestamp_seconds{{receiver="{address}"}} '
               f"{_seconds(receiver.last_reply_ns / 1e9 + wall_offset)}\n")
    yield _header("mping_sender_rtt_seconds", "histogram", "Round-trip time of the receiver's first replies.")
    for address, receiver in receivers:
        yield _histogram(address, receiver)


def _histogram(address: str, receiver: reply_stats.Receiver) -> str:
    lines = []
    count = 0
    for bound, replies in zip(RTT_BOUNDS, receiver.rtt_buckets):
        count += replies
        lines.append(f'mping_sender_rtt_seconds_bucket{{receiver="{address}",le="{bound}"}} {count}\n')
    lines.append(f'mping_sender_rtt_seconds_sum{{receiver="{address}"}} {_seconds(receiver.rtt_sum / 1e9)}\n')
    lines.append(f'mping_sender_rtt_seconds_count{{receiver="{address}"}} {count}\n')
    return "".join(lines)
