"""The command line: defaults, --opt=value, and every error as one line."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import re
import subprocess
import sys

import pytest

from mping_sender import __version__, config, log
from mping_sender.errors import UsageError

from helpers import ROOT, program, program_env, run_program, string_log



def run_cli(*args: str) -> subprocess.CompletedProcess:
    return run_program(*args)


def test_defaults():
    cfg = config.parse(["--interface-name", "eth0"])
    assert cfg == config.Config(
        interface=b"eth0", bind_address=None, bind_port=4321, group=ipaddress.ip_address("ff2e::42"),
        port=4321, ttl=64, interval=1.0, count=0, mping_version="2.0", payload_size=0,
        log_level="info", allow_unicast=False, sandbox="best-effort", replies=True, receiver_timeout=5,
        stats_json=None, expect_replies=False)


def test_equals_form_and_space_form_agree():
    spaced = config.parse(["--interface-name", "veth1", "--address", "239.1.2.3", "--port", "5000",
                           "--ttl", "3", "--interval", "0.25", "--count", "9", "--bind-address", "10.0.0.1",
                           "--bind-port", "6000", "--mping-version", "2.1", "--payload-size", "100",
                           "--log-level", "debug"])
    equals = config.parse(["--interface-name=veth1", "--address=239.1.2.3", "--port=5000", "--ttl=3",
                           "--interval=0.25", "--count=9", "--bind-address=10.0.0.1", "--bind-port=6000",
                           "--mping-version=2.1", "--payload-size=100", "--log-level=debug"])
    assert spaced == equals
    assert (equals.port, equals.ttl, equals.interval, equals.count, equals.payload_size) == (5000, 3, 0.25, 9, 100)


def test_reply_options():
    cfg = config.parse(["--interface-name=x", "--count=3", "--expect-replies", "--receiver-timeout=12",
                        "--stats-json=/tmp/s.json"])
    assert (cfg.replies, cfg.expect_replies, cfg.receiver_timeout, cfg.stats_json) == (True, True, 12, "/tmp/s.json")
    assert not config.parse(["--interface-name=x", "--no-replies"]).replies


def test_unicast_needs_allow_unicast():
    cfg = config.parse(["--interface-name=x", "--address=10.1.2.3", "--allow-unicast"])
    assert cfg.group == ipaddress.ip_address("10.1.2.3") and cfg.allow_unicast


def test_help_lists_every_option_with_default():
    result = run_cli("--help")
    assert result.returncode == 0 and result.stderr == ""
    flat = " ".join(result.stdout.split())
    for option, default in [("--log-level", "info"), ("--bind-port", "4321"), ("--address", "ff2e::42"),
                            ("--port", "4321"), ("--ttl", "64"), ("--interval", "1"), ("--count", "0"),
                            ("--mping-version", "2.0"), ("--payload-size", "0"), ("--receiver-timeout", "5")]:
        assert re.search(rf" {option} \S+ [^()]*\(default: {re.escape(default)}\)", flat), option
    for option in ("--interface-name", "--bind-address", "--version", "--allow-unicast", "--no-replies",
                   "--stats-json", "--expect-replies"):
        assert option in result.stdout


def test_version():
    result = run_cli("--version")
    assert (result.returncode, result.stdout.strip()) == (0, f"mping-sender {__version__}")


BAD_INPUT = [
    (["--interface-name=x", "--bogus"], "unknown option '--bogus'"),
    (["--interface-name=x", "stray"], "unexpected argument 'stray'"),
    ([], "--interface-name is required"),
    (["--interface-name=much-too-long-name"], "--interface-name"),
    (["--interface-name=x", "--address=ff2e::zz"], "--address: 'ff2e::zz' is not an IPv4 or IPv6 address"),
    (["--interface-name=x", "--address=2001:db8::1"], "--address: 2001:db8::1 is not a multicast group"),
    (["--interface-name=x", "--address=10.1.2.3"], "--allow-unicast"),
    (["--interface-name=x", "--bind-address=10.0.0.1"], "--bind-address: 10.0.0.1 is IPv4 but the group ff2e::42 is IPv6"),
    (["--interface-name=x", "--bind-address=nonsense"], "--bind-address: 'nonsense'"),
    (["--interface-name=x", "--port=70000"], "--port: 70000 is out of range 1..65535"),
    (["--interface-name=x", "--port=abc"], "--port: 'abc' is not a whole number"),
    (["--interface-name=x", "--port=0"], "--port: 0 is out of range"),
    (["--interface-name=x", "--bind-port=-1"], "--bind-port: -1 is out of range 0..65535"),
    (["--interface-name=x", "--ttl=256"], "--ttl: 256 is out of range 0..255"),
    (["--interface-name=x", "--ttl=ten"], "--ttl: 'ten' is not a whole number"),
    (["--interface-name=x", "--interval=0"], "--interval: '0' is not a positive number"),
    (["--interface-name=x", "--interval=-1"], "--interval: '-1' is not a positive number"),
    (["--interface-name=x", "--interval=soon"], "--interval: 'soon' is not a number"),
    (["--interface-name=x", "--interval=nan"], "--interval: 'nan' is not a number of seconds"),
    (["--interface-name=x", "--interval=0.0001"], "--interval: 0.0001 is out of range"),
    (["--interface-name=x", "--count=-3"], "--count: -3 is out of range"),
    (["--interface-name=x", "--mping-version=3.0"], "--mping-version: '3.0' is not one of 2.0, 2.1"),
    (["--interface-name=x", "--payload-size=1761"], "--payload-size: 1761 is out of range 0..1760"),
    (["--interface-name=x", "--log-level=loud"], "--log-level: 'loud' is not one of"),
    (["--interface-name=x", "--port"], "--port: expected one argument"),
    (["--interface-name=x", "--receiver-timeout=0"], "--receiver-timeout: 0 is out of range 1..1000"),
    (["--interface-name=x", "--receiver-timeout=1001"], "--receiver-timeout: 1001 is out of range 1..1000"),
    (["--interface-name=x", "--receiver-timeout=soon"], "--receiver-timeout: 'soon' is not a whole number"),
    (["--interface-name=x", "--expect-replies"], "--expect-replies needs --count N (N > 0)"),
    (["--interface-name=x", "--expect-replies", "--count=0"], "--expect-replies needs --count N (N > 0)"),
    (["--interface-name=x", "--no-replies", "--count=3", "--expect-replies"],
     "--expect-replies needs the replies that --no-replies turns off"),
    (["--interface-name=x", "--no-replies", "--stats-json=-"], "--stats-json needs the replies that --no-replies"),
    (["--interface-name=x", "--stats-json="], "--stats-json: the path is empty"),
    (["--interface-name=x", "--stats-json"], "--stats-json: expected one argument"),
    (["--interface-name=x", "--metrics-listen=9810"], "--metrics-listen: '9810' is not ADDR:PORT"),
    (["--interface-name=x", "--metrics-listen=::1:9810"], "--metrics-listen: '::1:9810': an IPv6 address goes in brackets"),
    (["--interface-name=x", "--metrics-listen=[10.0.0.1]:9810"], "only an IPv6 address goes in brackets"),
    (["--interface-name=x", "--metrics-listen=[::1]:0"], "--metrics-listen: 0 is out of range 1..65535"),
    (["--interface-name=x", "--metrics-listen=[::1]:http"], "--metrics-listen: 'http' is not a whole number"),
    (["--interface-name=x", "--metrics-listen=localhost:9810"], "--metrics-listen: 'localhost' is not an IPv4 or"),
    (["--interface-name=x", "--metrics-listen=[ff02::1]:9810"], "--metrics-listen: ff02::1 is a multicast address"),
    (["--interface-name=x", "--metrics-listen=[fe80::1%x]:9810"], "--metrics-listen: '[fe80::1%x]:9810': no scope id"),
    # the parser's edges
    (["--interface-name=x", "--port", "-x"], "--port: expected one argument"),
    (["--interface-name=x", "--port", "--count=1"], "--port: expected one argument"),
    (["--interface-name=x", "--port", "--"], "--port: expected one argument"),
    (["--interface-name=x", "--bind-port", "-1"], "--bind-port: -1 is out of range 0..65535"),
    (["--interface-name=x", "--ttl", "-.5"], "--ttl: '-.5' is not a whole number"),
    (["--interface-name=x", "--interval", "-1.5"], "--interval: '-1.5' is not a positive number"),
    (["--interface-name=x", "--interval", "-1e3"], "--interval: expected one argument"),
    (["--interface-name=x", "--allow-unicast=yes"], "--allow-unicast: takes no value (given 'yes')"),
    (["--interface-name=x", "--no-replies="], "--no-replies: takes no value (given '')"),
    (["--interface-name=x", "--help=1"], "--help: takes no value (given '1')"),
    (["--interface-name=x", "--interface=y"], "unknown option '--interface=y'"),  # no abbreviations
    (["--interface-name=x", "-i", "y"], "unknown option '-i'"),
    (["--interface-name=x", "--", "--count=1"], "unexpected argument '--count=1'"),
    (["--interface-name=x", "--bogus", "--", "stray"], "unknown option '--bogus'"),  # the first one
    (["--interface-name=x", "-"], "unexpected argument '-'"),
    (["--ttl=1", "--", "--interface-name=x"], "unexpected argument '--interface-name=x'"),
    # settings that cannot work: refused, naming the option
    (["--interface-name=x", "--address=ff01::1"], "--address: ff01::1 has multicast scope 1 (interface-local)"),
    (["--interface-name=x", "--address=ff00::1"], "--address: ff00::1 has multicast scope 0 (reserved)"),
    (["--interface-name=x", "--address=ff10::1"], "--address: ff10::1 has multicast scope 0"),
    (["--interface-name=x", "--bind-address=::1"], "--bind-address: ::1 is a loopback address"),
    (["--interface-name=x", "--bind-address=::ffff:10.99.0.1"], "--bind-address: ::ffff:10.99.0.1 is an IPv4-mapped"),
    (["--interface-name=x", "--bind-address=::"], "--bind-address: :: is the unspecified address"),
    (["--interface-name=x", "--address=239.1.2.3", "--bind-address=127.0.0.1"], "--bind-address: 127.0.0.1 is a loopback"),
    (["--interface-name=x", "--address=239.1.2.3", "--bind-address=0.0.0.0"], "--bind-address: 0.0.0.0 is the unspecified"),
    (["--interface-name=x", "--address=239.1.2.3", "--bind-address=0.1.2.3"], "--bind-address: 0.1.2.3 is not a usable"),
    (["--interface-name=x", "--address=255.255.255.255", "--allow-unicast"], "--address: 255.255.255.255 is not a usable"),
    (["--interface-name=x", "--address=127.0.0.1", "--allow-unicast"], "--address: 127.0.0.1 is a loopback"),
    (["--interface-name=x", "--address=::ffff:10.1.2.3", "--allow-unicast"], "--address: ::ffff:10.1.2.3 is an IPv4-mapped"),
    (["--interface-name=x", "--address=10.1.2.3", "--allow-unicast", "--ttl=0"], "--ttl: 0 keeps unicast datagrams"),
]


@pytest.mark.parametrize("argv, message", BAD_INPUT, ids=[" ".join(a) or "empty" for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_exit_64(argv, message):
    with pytest.raises(UsageError, match=None) as caught:
        config.parse(argv)
    assert message in str(caught.value)
    result = run_cli(*argv)
    assert result.returncode == 64
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("mping-sender: ") and message in result.stderr


NOT_A_NUMBER = ["1_0", " 5", "5 ", "+5", "\u0665", "\u0661\u0662", "\uff15", "5\u00b2", "0x10", "1e3", "", "-", "."]


@pytest.mark.parametrize("text", NOT_A_NUMBER)
@pytest.mark.parametrize("option, what", [("--port", "is not a whole number"),
                                          ("--interval", "is not a number of seconds")])
def test_numbers_are_ascii_digits_only(option, what, text):
    """Not the rest of Python's syntax (underscores, signs, blanks, other
    scripts' digits, exponents): what a shell script or a unit file does
    not mean as a number."""
    with pytest.raises(UsageError) as caught:
        config.parse(["--interface-name=x", f"{option}={text}"])
    assert str(caught.value) == f"{option}: '{text}' {what}"


def test_decimals_are_still_numbers():
    cfg = config.parse(["--interface-name=x", "--interval=.5", "--port=007", f"--count={2**63 - 1}"])
    assert (cfg.interval, cfg.port, cfg.count) == (0.5, 7, 2**63 - 1)
    assert config.parse(["--interface-name=x", "--interval=2."]).interval == 2.0
    with pytest.raises(UsageError, match=f"--count: {2**63} is out of range"):
        config.parse(["--interface-name=x", f"--count={2**63}"])


@pytest.mark.parametrize("argv, start", [
    (["--interface-name=x", "--count=" + "9" * 5000], "--count: 9999"),
    (["--interface-name=x", "--port=" + "1" * 5000], "--port: 1111"),
    (["--interface-name=x", "--interval=" + "7" * 5000], "--interval: 7777"),
    (["--interface-name=x", "--ttl=" + "z" * 5000], "--ttl: 'zzzz"),
    (["--interface-name=x", "--address=" + "f" * 5000], "--address: 'ffff"),
    (["--interface-name=x", "--log-level=" + "q" * 5000], "--log-level: 'qqqq"),
    (["--interface-name=" + "i" * 5000], "--interface-name: 'iiii"),
    (["--interface-name=x", "--" + "o" * 5000], "unknown option '--oooo"),
    (["--interface-name=x", "s" * 5000], "unexpected argument 'ssss"),
], ids=["count", "port", "interval", "ttl", "address", "choice", "interface", "option", "argument"])
def test_a_huge_value_is_cut_in_the_message(argv, start):
    with pytest.raises(UsageError) as caught:
        config.parse(argv)
    message = str(caught.value)
    assert message.startswith(start) and len(message) < 120 and "\u2026" in message


@pytest.mark.parametrize("text, address, port", [("127.0.0.1:9810", "127.0.0.1", 9810), ("[::]:1", "::", 1),
                                                  ("[fd00::1]:65535", "fd00::1", 65535), ("0.0.0.0:80", "0.0.0.0", 80)])
def test_metrics_listen_is_an_address_and_a_port(text, address, port):
    assert config.parse(["--interface-name=x", f"--metrics-listen={text}"]).metrics_listen == \
        (ipaddress.ip_address(address), port)
    assert config.parse(["--interface-name=x"]).metrics_listen is None, "off by default"


def test_the_last_occurrence_of_an_option_wins():
    cfg = config.parse(["--interface-name=x", "--port", "1", "--port=2", "--count=3", "--count", "0",
                        "--interface-name", "y", "--no-replies", "--no-replies"])
    assert (cfg.interface, cfg.port, cfg.count, cfg.replies) == (b"y", 2, 0, False)


def test_values_that_start_with_a_dash():
    """A negative number is a value (the range check names it), and so is
    ``-`` alone (standard output for --stats-json); ``=`` takes anything."""
    assert config.parse(["--interface-name=x", "--stats-json", "-"]).stats_json == "-"
    cfg = config.parse(["--interface-name=-x", "--stats-json=--"])
    assert (cfg.interface, cfg.stats_json) == (b"-x", "--")
    assert config.parse(["--interface-name=x", "--count", "-0"]).count == 0


def test_double_dash_ends_the_options():
    assert config.parse(["--interface-name=x", "--"]) == config.parse(["--interface-name=x"])


@pytest.mark.parametrize("argv", [["--help"], ["-h"], ["--bogus", "stray", "--help"], ["--help", "--port"],
                                  ["--ttl=999", "-h"]], ids=" ".join)
def test_help_is_shown_wherever_it_is_asked_for(argv):
    """As argparse: at --help the rest no longer matters, nor does an unknown
    option or a stray argument before it; a bad value is only checked later."""
    with pytest.raises(config.ShowAndExit) as shown:
        config.parse(argv)
    assert shown.value.text == config.help_text(config._columns() - 2)


def test_help_on_standard_output_at_the_terminal_s_width():
    narrow, wide = (run_program("-h", env=program_env(COLUMNS=str(columns))) for columns in (50, 130))
    for result, width in ((narrow, 48), (wide, 128)):
        assert (result.returncode, result.stderr) == (0, "")
        lines = result.stdout.splitlines()
        assert lines[0].startswith("usage: mping-sender [-h] [--version]")
        assert max(map(len, lines)) <= width and "options:" in lines and lines[-1].endswith("unavailable.")
    assert " ".join(narrow.stdout.split()) == " ".join(wide.stdout.split())


@pytest.mark.parametrize("width", [11, 30, 42, 48, 60, 78, 118, 300])
def test_help_text_layout(width):
    """Usage, description, every option with its help, (default: X) for each
    default, exit codes; in the width, once it has room for the longest
    usage item beside the program's name."""
    room = len("usage: mping-sender ") + max(len(f"[{name} {metavar}]") for name, (metavar, _, _) in config.OPTIONS.items())
    text = config.help_text(width)
    usage, description, options, epilog = text.split("\n\n")
    assert " ".join(usage.split()) == "usage: mping-sender [-h] " + " ".join(
        f"[{name}{'' if metavar is None else ' ' + metavar}]" for name, (metavar, _, _) in config.OPTIONS.items()
        if name != "--help")
    assert " ".join(description.split()) == config.DESCRIPTION and " ".join(epilog.split()) == config.EPILOG
    assert width < room or max(map(len, text.splitlines())) <= width
    flat = " ".join(options.split())
    assert flat.startswith("options: -h, --help show this help")
    for name, (metavar, default, help_) in config.OPTIONS.items():
        row = f"{name}{'' if metavar is None else ' ' + metavar} {' '.join(help_.split())}"
        assert row + ("" if default is None else f" (default: {default})") in flat, name


def test_help_and_version_with_standard_output_closed():
    """Nothing to write to: exit 0 all the same, and nothing on stderr."""
    for option in ("--help", "--version"):
        result = subprocess.run(["sh", "-c", 'exec "$@" >&-', "sh", *program(option)], env=program_env(),
                                capture_output=True, text=True, timeout=30)
        assert (result.returncode, result.stderr) == (0, "")


def test_start_up_imports_neither_argparse_nor_re():
    """The command line costs no argparse (with re, gettext, locale: about
    milliseconds and most of a MiB at every start); --help may take more."""
    script = ("import sys; sys.path.insert(0, sys.argv[1]); from mping_sender import cli, config\n"
              "try:\n    config.parse(['--interface-name=eth0', '--address', '239.1.2.3', '--count=5', *sys.argv[2:]])\n"
              "except config.ShowAndExit:\n    pass\n"
              "print(' '.join(sorted({'argparse', 're', 'gettext', 'locale', 'textwrap'} & set(sys.modules))))")
    for argv in ([], ["--help"], ["--version"]):
        result = subprocess.run([sys.executable, "-IS", "-c", script, str(ROOT), *argv], capture_output=True,
                                text=True, timeout=30, check=True)
        assert result.stdout.split() == [], (argv, result.stdout)


def test_missing_interface_is_a_host_error_69():
    result = run_cli("--interface-name=nosuchif0")
    assert result.returncode == 69, result.stderr
    assert "interface nosuchif0 does not exist" in result.stderr and "Traceback" not in result.stderr


def run_with_stderr_file(tmp_path, journal_stream_of_file: bool, tz: str = "UTC"):
    log_path = tmp_path / "stderr"
    with open(log_path, "w") as log:
        st = os.fstat(log.fileno())
        stream = f"{st.st_dev}:{st.st_ino}" if journal_stream_of_file else f"{st.st_dev}:{st.st_ino + 1}"
        code = run_program("--interface-name=nosuchif0", stderr=log,
                           env=program_env(JOURNAL_STREAM=stream, TZ=tz)).returncode
    return code, log_path.read_text().splitlines()


def test_journal_gets_syslog_priorities_instead_of_timestamps(tmp_path):
    code, lines = run_with_stderr_file(tmp_path, journal_stream_of_file=True)
    assert code == 69
    assert lines[0].startswith("<6>mping-sender ")  # info
    assert lines[-1] == "<2>interface nosuchif0 does not exist"  # fatal


def test_stderr_that_is_not_the_journal_gets_timestamps(tmp_path):
    """ISO 8601 local time with the zone's offset, so the instant is unambiguous."""
    before = datetime.datetime.now(datetime.timezone.utc)
    code, lines = run_with_stderr_file(tmp_path, journal_stream_of_file=False, tz="IST-5:30")
    assert code == 69
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+05:30) info: mping-sender ", lines[0])
    assert match, lines
    stamp = datetime.datetime.fromisoformat(match.group(1))
    assert before - datetime.timedelta(seconds=1) <= stamp <= datetime.datetime.now(datetime.timezone.utc)
    assert re.match(r"\S+ fatal: interface nosuchif0 does not exist$", lines[-1]), lines



@pytest.mark.parametrize("tz", ["UTC0", "IST-5:30", "NST3:30NDT,M3.2.0,M11.1.0"])
def test_timestamps_are_what_datetime_would_write(tz, monkeypatch):
    """log.iso_time does without datetime (start-up cost), to the same text:
    offsets east and west, daylight saving, and the rounding to microseconds."""
    import time

    from mping_sender.log import iso_time
    monkeypatch.setenv("TZ", tz)
    time.tzset()
    try:
        for created in (0.0, 1.9999996, 1764070000.4995, 1751328000.25, -1.5, 2394938177.8899994):
            expected = datetime.datetime.fromtimestamp(created).astimezone().isoformat(timespec="milliseconds")
            assert iso_time(created) == expected
    finally:
        monkeypatch.undo()
        time.tzset()


# The logger itself (mping_sender.log.Logger, the standard logging's calls in a few lines).

PRIORITIES = {"trace": 7, "debug": 7, "info": 6, "warning": 4, "error": 3, "fatal": 2}


@pytest.mark.parametrize("name, priority", PRIORITIES.items())
def test_journal_lines_carry_each_level_s_syslog_priority(name, priority):
    logger, stream = string_log(log.TRACE)
    logger.log(log.LEVELS[name], "%s at %d%%", name, 100)
    assert stream.getvalue() == f"<{priority}>{name} at 100%\n"


@pytest.mark.parametrize("method, name", [("debug", "debug"), ("info", "info"), ("warning", "warning"),
                                          ("error", "error"), ("critical", "fatal")])
def test_each_level_s_method_logs_at_its_level(method, name):
    logger, stream = string_log(log.TRACE)
    getattr(logger, method)("%s", method)
    assert stream.getvalue() == f"<{PRIORITIES[name]}>{method}\n"


@pytest.mark.parametrize("name", log.LEVELS)
def test_terminal_lines_carry_time_and_the_level_name_of_the_command_line(name):
    logger, stream = string_log(log.TRACE, journal=False)
    logger.log(log.LEVELS[name], "message")
    assert re.fullmatch(rf"\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}[+-]\d\d:\d\d {name}: message\n", stream.getvalue())


def test_lines_below_the_level_are_left_out():
    logger, stream = string_log(log.INFO)
    logger.log(log.TRACE, "t")
    logger.debug("d")
    logger.info("i")
    logger.log(log.WARNING, "w")
    assert stream.getvalue() == "<6>i\n<4>w\n"
    assert not logger.isEnabledFor(log.DEBUG) and logger.isEnabledFor(log.INFO)
    logger, stream = string_log(log.TRACE)
    assert logger.isEnabledFor(log.TRACE)
    logger.log(log.TRACE, "t")
    assert stream.getvalue() == "<7>t\n"


class Noisy:
    """An argument that counts how often it is turned into text."""

    def __init__(self) -> None:
        self.formatted = 0

    def __str__(self) -> str:
        self.formatted += 1
        return "noisy"


def test_arguments_are_formatted_only_for_a_line_written():
    """The per-datagram trace line costs nothing at the default level; and
    without arguments a message is not %-formatted at all."""
    logger, stream = string_log(log.INFO)
    noisy = Noisy()
    logger.log(log.TRACE, "sent %s", noisy)
    logger.debug("sent %s", noisy)
    assert noisy.formatted == 0 and stream.getvalue() == ""
    logger.info("sent %s", noisy)
    logger.info("100% sure: %s")
    assert noisy.formatted == 1 and stream.getvalue() == "<6>sent noisy\n<6>100% sure: %s\n"


class Broken:
    def __str__(self) -> str:
        raise RuntimeError("no text")


def test_a_bad_format_still_gives_a_line():
    logger, stream = string_log()
    logger.warning("%d datagrams", "many")
    logger.error("%s and %s", "one")
    logger.info("object %s", Broken())
    logger.info("next")
    assert stream.getvalue().splitlines() == [
        "<4>%d datagrams (unformatted: TypeError with 1 argument(s))",
        "<3>%s and %s (unformatted: TypeError with 1 argument(s))",
        "<6>object %s (unformatted: RuntimeError with 1 argument(s))",
        "<6>next"]


def test_each_line_is_written_at_once():
    """A reader sees each line as soon as it is logged."""
    read_end, write_end = os.pipe()
    with open(read_end, "rb") as reader, open(write_end, "wb") as writer:
        os.set_blocking(read_end, False)
        logger = log.Logger(log.Descriptor(writer.fileno()), log.INFO, journal=True)
        logger.info("first")
        assert reader.read() == b"<6>first\n"
        logger.warning("second %d", 2)
        assert reader.read() == b"<4>second 2\n"


def _closed_descriptor(tmp_path):
    fd = os.open(tmp_path / "closed", os.O_WRONLY | os.O_CREAT)
    os.close(fd)
    return fd


def _pipe_without_reader(tmp_path):
    read_end, write_end = os.pipe()
    os.close(read_end)
    return write_end


@pytest.mark.parametrize("make_fd", [_closed_descriptor, _pipe_without_reader,
                                     lambda tmp_path: os.open("/dev/full", os.O_WRONLY)],
                         ids=["closed", "EPIPE", "ENOSPC"])
def test_a_failing_stream_drops_the_line_and_raises_nothing(make_fd, tmp_path, capfd):
    """stderr closed, its reader gone, the disk full: the line cannot be
    written, nor reported; the sender must go on, without a traceback."""
    fd = make_fd(tmp_path)
    logger = log.Logger(log.Descriptor(fd), log.INFO)
    for n in range(3):
        logger.error("line %d", n)
    logger.flush()
    logger.drain(0.1)
    with contextlib.suppress(OSError):
        os.close(fd)
    assert capfd.readouterr() == ("", "")


@pytest.mark.parametrize("journal", [{}, {"JOURNAL_STREAM": "1:2"}], ids=["terminal", "JOURNAL_STREAM"])
@pytest.mark.parametrize("argv, code", [(["--interface-name=nosuchif0"], 69), (["--ttl=999"], 64)], ids=["host", "usage"])
def test_stderr_closed_at_start_still_gives_the_exit_code(journal, argv, code):
    """Python sets sys.stderr to None: the lines are lost (not moved to
    standard output, which may carry --stats-json -), the exit code is not."""
    result = subprocess.run(["sh", "-c", 'exec "$@" 2>&-', "sh", *program(*argv)],
                            env=program_env(**journal), capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stdout) == (code, "")


def test_setup_writes_journal_lines_when_journal_stream_names_the_stream(tmp_path, monkeypatch):
    with open(tmp_path / "stderr", "w") as stream:
        st = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        logger = log.setup("debug", stream)
        logger.debug("d")
        logger.log(log.TRACE, "t")
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino + 1}")
        log.setup("warning", stream).warning("w")
    lines = (tmp_path / "stderr").read_text().splitlines()
    assert lines[0] == "<7>d" and len(lines) == 2 and lines[1].endswith(" warning: w")


def test_no_resource_warning_when_start_up_fails():
    """The transmit socket opened before the interface check is closed on the error path too."""
    result = run_program("--interface-name=nosuchif0", python_options=["-X", "dev", "-W", "error"])
    assert result.returncode == 69
    assert result.stderr.splitlines()[-1].endswith("fatal: interface nosuchif0 does not exist"), result.stderr
    assert "Warning" not in result.stderr, result.stderr


def test_readme_tells_users_of_the_original_what_is_stricter():
    """The README's "Coming from mping-sender 1.0 (C++)" table against the program."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Coming from mping-sender 1.0 (C++)\n", 1)[1].split("\n## ", 1)[0]
    unknown = run_cli("--interface-name=eth0", "--x")
    assert unknown.returncode == 64 and unknown.stderr.strip().endswith("unknown option '--x'")
    assert "exit 64 with `unknown option '--x'`" in section
    unicast = run_cli("--interface-name=eth0", "--address=192.0.2.1")
    assert unicast.returncode == 64 and "--allow-unicast" in unicast.stderr
    assert "exit 64 unless `--allow-unicast`" in section
    for code in ("64 bad command line", "69 host cannot serve it", "70 sandbox or internal"):
        assert code in section


def test_a_scope_id_naming_the_interface_is_accepted_and_any_other_refused():
    cfg = config.parse(["--interface-name", "advx", "--address", "ff2e::42%advx",
                        "--bind-address", "fe80::7%advx"])
    assert (cfg.group, cfg.bind_address) == (ipaddress.ip_address("ff2e::42"), ipaddress.ip_address("fe80::7"))
    for option, text in (("--address", "ff2e::42%eth0"), ("--address", "ff02::42%2"),
                         ("--bind-address", "fe80::7%eth0")):
        result = run_cli("--interface-name", "advx", option, text)
        assert result.returncode == 64, result.stderr
        assert f"{option}: the scope id " in result.stderr and "is not the interface (--interface-name advx)" \
            in result.stderr, result.stderr
    with pytest.raises(UsageError, match="is not an IPv4 or IPv6 address"):
        config.parse(["--interface-name", "advx", "--address", "239.1.2.3%advx"])


def test_a_group_with_the_interface_s_scope_id_is_sent_to(netpair):
    sender = netpair.sender("--address", f"ff2e::42%{netpair.SENDER_IF}", "--count", "1", "--no-replies")
    _, err = sender.communicate(timeout=20)
    assert sender.returncode == 0 and "summary: 1 sent, 0 failed" in err, err
