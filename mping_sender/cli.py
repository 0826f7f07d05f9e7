"""Program start: parse, check the host, open the socket, sandbox, run."""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import time

from mping_sender import __version__, config, eventloop, netif, ratelimit, sandbox, sender, source, transmit, wire
from mping_sender.errors import ExitCode, FatalError, HostError, describe, os_error_text
from mping_sender.linkwatch import InterfaceWatch, SourceWatch
from mping_sender.log import WARNING, print_error, setup as setup_logging
from mping_sender.signals import STOP_SIGNALS, SignalPipe
from mping_sender.stats_file import StatsFile

TYPE_CHECKING = False  # typing is for the checker only: see CONTRIBUTING
if TYPE_CHECKING:
    from typing import Callable, Iterator, List, Optional

    from mping_sender.log import Logger

WATCH_PERIOD = 1.0  # seconds between interface checks while sends succeed


def _describe(cfg: config.Config, ifindex: int, bound: wire.Endpoint, ident: int) -> str:
    count = cfg.count if cfg.count else "unlimited"
    return (f"interface {netif.display_name(cfg.interface)} (index {ifindex}), source [{bound[0]}]:{bound[1]}, "
            f"group [{cfg.group}]:{cfg.port}, ttl {cfg.ttl}, interval {cfg.interval:g} s, count {count}, "
            f"mping version {cfg.mping_version}, payload {cfg.payload_size} bytes, id 0x{ident:08x}")


def _drain_error_queue(loop: eventloop.EventLoop, counters: sender.Counters, sock, log: Logger) -> None:
    """Empty the transmit socket's error queue whenever select() flags it:
    each error (an ICMP unreachable for a datagram already counted as sent)
    is counted and logged (bounded), and an undrained error would make the
    next send fail in its place."""
    limit = ratelimit.LogLimit(log, "errors reported after sending")

    def on_readable() -> None:
        for code, offender in transmit.drain_errors(sock):
            counters.reported += 1
            limit.log(WARNING, "the kernel reported an error after sending: %s%s",
                      os_error_text(OSError(code, os.strerror(code))), f", from {offender}" if offender else "")

    loop.add_reader(sock, on_readable)


def _once_a_second(watch: InterfaceWatch, transmitter: transmit.Transmitter, log: Logger) -> Callable[[float], None]:
    """The loop's job once a second, riding on the send ticks (at longer
    intervals, once per datagram, after it): the interface's name and flags, the
    IPv6 source address, the "… N more suppressed" lines of the log
    limits whose period ended, and the log's backlog, when the stream took
    nothing for a while. One job: the tick pays for one."""

    def job(now: float) -> None:
        watch.check()
        transmitter.check_source()
        ratelimit.roll_all(now)
        log.flush()

    return job


def _address_lookup(address: wire.IPAddress, sock, opened: contextlib.ExitStack):
    """Where the source address is looked up during the run (None: IPv6 is off)."""
    if address.version == 4:
        return netif.Ipv4Sources(sock)
    table = netif.open_address_table()
    if table is None:
        return None
    opened.callback(os.close, table)
    return netif.Ipv6Sources(table)


def _metrics_endpoint(cfg: config.Config, bound: wire.Endpoint, send: sender.Sender, stats, loop: eventloop.EventLoop,
                      log: Logger):
    """The --metrics-listen endpoint, listening, in the loop. Its modules
    are imported here, only when the option is given."""
    with _step("cannot load the program's metrics modules"):
        from mping_sender import metrics, metrics_http
    info = (("version", __version__), ("group", str(cfg.group)), ("port", str(cfg.port)),
            ("interface", netif.display_name(cfg.interface)), ("source", str(bound[0])),
            ("mping_version", cfg.mping_version))
    wall_offset = time.time() - time.monotonic()  # once: the times in the document move with the monotonic clock
    address, port = cfg.metrics_listen
    endpoint = metrics_http.Endpoint(metrics_http.listen(address, port),
                                     lambda: metrics.exposition(info, send.counters, stats, wall_offset), log,
                                     metrics.CONTENT_TYPE)
    endpoint.attach(loop)
    log.info("metrics: serving http://%s:%d%s", f"[{address}]" if address.version == 6 else address, port,
             metrics_http.PATH.decode())
    return endpoint


@contextlib.contextmanager
def _step(what: str) -> Iterator[None]:
    """One start-up step: an OSError in it becomes one line naming the step
    (out of file descriptors or memory, most likely), exit 69."""
    try:
        yield
    except OSError as err:
        raise HostError(f"{what}: {os_error_text(err)}") from None


def run(cfg: config.Config, log: Logger) -> ExitCode:
    """Everything after parsing. What it opens is closed on every way out,
    error or not (-X dev reports anything left open as a ResourceWarning)."""
    with contextlib.ExitStack() as opened:
        return _run(cfg, log, opened)


def _run(cfg: config.Config, log: Logger, opened: contextlib.ExitStack) -> ExitCode:
    """Open, sandbox, send: the order matters for the sandbox."""
    # Opened first: "-" must be the real standard output, not a descriptor reused since.
    stats_file = StatsFile.open(cfg.stats_json)
    if stats_file is not None:
        opened.callback(stats_file.close)
    # Caught from the start (held until now: signals.hold): a stop signal
    # during start-up ends the start-up wait at once, or the run at the
    # loop's first wait, with the summary and the statistics.
    with _step("cannot catch signals (wakeup pipe)"):
        signals = SignalPipe(STOP_SIGNALS + eventloop.SUMMARY_SIGNALS)
    uname = os.uname()
    log.info("mping-sender %s (Python %s, %s %s, %s)", __version__, sys.version.split()[0], uname.sysname,
             uname.release, sandbox.versions())
    with _step("cannot read the host's IPv4 broadcast addresses"):
        source.refuse_broadcast(cfg)
    with _step("cannot open the transmit socket"):
        sock = opened.enter_context(transmit.open_socket(cfg.group, 0, cfg.ttl))
    with _step(f"cannot read the addresses of interface {netif.display_name(cfg.interface)}"):
        host = source.wait_for_host(cfg, sock, signals, log)
    if host is None:
        log.info("stop signal during the start-up wait: stopping before the first datagram")
        return ExitCode.OK
    ifindex, bound = host
    if cfg.ttl == 0:
        with _step("cannot join the group to keep TTL 0 datagrams on this host"):
            transmit.keep_on_host(sock, cfg.group, ifindex)
    ident = int.from_bytes(os.urandom(4), "big")
    log.info("%s", _describe(cfg, ifindex, bound, ident))
    prefix = wire.encode_prefix(cfg.mping_version, wire.TYPE_SENDER, cfg.ttl, bound, (cfg.group, cfg.port))
    memberships = None
    if cfg.group.is_multicast and (cfg.replies or cfg.ttl == 0):  # the reply socket, or keep_on_host, joins
        with _step("cannot open the kernel's multicast membership table"):
            table = netif.open_membership_table(cfg.group.version)
        if table is not None:
            opened.callback(os.close, table)
            memberships = (table, cfg.group)
    watch = InterfaceWatch(sock, cfg.interface, ifindex, log, memberships)
    with _step("cannot open the IPv6 address table"):
        sources = _address_lookup(bound[0], sock, opened)
    # An automatic source is followed through renumbering (exit 69, to start
    # again from the new one); a --bind-address is waited for.
    source_watch = None if sources is None else SourceWatch(sources, watch, bound[0], log,
                                                            None if cfg.bind_address else cfg.group)
    transmitter = transmit.Transmitter(sock, source_watch)
    with _step("cannot create the loop's timer (timerfd)"):
        loop = eventloop.EventLoop(signals, log)
    opened.callback(loop.close)
    send = sender.Sender(loop, transmitter, watch, prefix, ident, cfg.payload_size, cfg.interval, cfg.count, log)
    loop.summary_hooks.append(send.log_summary)
    loop.add_timer(WATCH_PERIOD, _once_a_second(watch, transmitter, log), tolerance=cfg.interval)
    _drain_error_queue(loop, send.counters, sock, log)
    # Each feature's module is imported only when the run needs it, and
    # before the sandbox: afterwards nothing can be imported.
    listener = None
    if cfg.replies:
        with _step("cannot load the program's reply socket module"):
            from mping_sender import reply_socket
        listener = reply_socket.ReplyListener.open(cfg.group, cfg.port, ifindex, ident, cfg.interval,
                                                   cfg.receiver_timeout, cfg.payload_size, bound, log)
        opened.callback(listener.close)
        listener.attach(loop, send)
    endpoint = None
    if cfg.metrics_listen is not None:
        endpoint = _metrics_endpoint(cfg, bound, send, None if listener is None else listener.stats, loop, log)
        opened.callback(endpoint.close)
    notifier = None
    if os.environ.get("NOTIFY_SOCKET"):
        with _step("cannot load the program's systemd notify module"):
            from mping_sender import notify
        notifier = notify.from_environment(os.environ, log)
    if notifier is not None:
        opened.callback(notifier.close)
    # Start-up left tens of thousands of objects (ipaddress, the modules);
    # freezing them keeps the collector's full passes in the loop short,
    # instead of a millisecond-long stall every few thousand datagrams.
    gc.freeze()
    # Every socket and file the loop needs is open and configured for good:
    # nothing can be opened, and no socket option set, from here on.
    # The descriptors each pinned call may use (sandbox/syscall_groups.py).
    roles = {"transmit": (sock.fileno(),)}
    for role, holder in (("reply", listener), ("notify", notifier), ("stats", stats_file), ("metrics", endpoint)):
        if holder is not None:
            roles[role] = (holder.fileno(),)
    sandbox.apply(cfg.sandbox, log, roles)
    if notifier is not None:
        notifier.ready(loop, send.counters)
    completed = False
    try:
        finished = send.run()
        if listener is not None and finished and (listener.stats.receivers or cfg.expect_replies):
            loop.linger(listener.linger_seconds, listener.stats.settled)  # the last replies
        completed = True
    finally:  # every stop, a fatal error in the loop included, logs the summary and writes the statistics
        signals.ignore(eventloop.SUMMARY_SIGNALS)
        if notifier is not None:
            notifier.stopping(send.counters)
        if listener is not None and completed:  # after a fatal error, what is unanswered yet stays pending
            listener.finish()
        ratelimit.roll_all(time.monotonic(), final=True)
        loop.log_summary()
        if stats_file is not None and listener is not None:
            stats_file.write(listener.json_document())
    if listener is None:
        return ExitCode.OK
    if cfg.expect_replies and not listener.stats.complete():
        log.error("--expect-replies: no receiver answered all %d datagrams", listener.stats.window.sent)
        return ExitCode.NO_REPLY
    return ExitCode.OK


def main(argv: Optional[List[str]] = None) -> int:
    """Run the program; return its exit code. Errors are one line, never a traceback."""
    try:
        cfg = config.parse(sys.argv[1:] if argv is None else argv)
    except config.ShowAndExit as shown:  # --help, --version
        with contextlib.suppress(AttributeError, OSError):  # standard output closed or gone: as argparse did
            sys.stdout.write(shown.text)
        return ExitCode.OK
    except FatalError as err:
        print_error(f"{config.PROG}: {err}")
        return err.exit_code
    log = setup_logging(cfg.log_level)
    try:
        return run(cfg, log)
    except FatalError as err:
        log.critical("%s", err)
        return err.exit_code
    except OSError as err:
        log.critical("%s", os_error_text(err))
        return ExitCode.UNAVAILABLE
    except KeyboardInterrupt:
        return ExitCode.OK
    except Exception as exc:  # noqa: BLE001 - a bug still gets one line, not a traceback
        log.critical("internal error: %s", describe(exc))
        return ExitCode.SOFTWARE
    finally:  # the last lines (the summary, the error) wait for a stalled log stream, but not for ever
        log.drain()
