"""The man page renders without warnings and documents every option of
--help with its default, the exit codes and the signals."""

from __future__ import annotations

import os
import re
import subprocess
from typing import Dict

from helpers import ROOT, run_program
from prereq import require_tool

MANPAGE = ROOT / "man" / "mping-sender.8"


def help_text() -> str:
    result = run_program("--help", check=True)
    return " ".join(result.stdout.split())


def rendered() -> str:
    require_tool("man")
    env = dict(os.environ, LC_ALL="C.UTF-8", MANROFFSEQ="", MANWIDTH="80")
    return subprocess.run(["man", "-l", str(MANPAGE)], capture_output=True, text=True, env=env, timeout=60,
                          check=True).stdout


def man_options() -> Dict[str, str]:
    """Each .TP item of OPTIONS: its option names -> its text, macros removed."""
    source = MANPAGE.read_text()
    section = source.split(".SH OPTIONS", 1)[1].split("\n.SH ", 1)[0]
    items: Dict[str, str] = {}
    for item in section.split(".TP\n")[1:]:
        lines = [re.sub(r"^\.[A-Z]{1,2} ", "", line).replace("\\-", "-").replace('"', "")
                 for line in item.splitlines()]
        text = " ".join(lines[1:])
        for option in re.findall(r"--[a-z][a-z-]*", lines[0]):
            items[option] = text
    return items


def test_groff_has_no_warnings():
    require_tool("groff")
    result = subprocess.run(["groff", "-man", "-ww", "-z", str(MANPAGE)], capture_output=True, text=True,
                            timeout=60)
    assert (result.returncode, result.stderr) == (0, "")


def test_man_renders_without_warnings():
    require_tool("man")
    env = dict(os.environ, LC_ALL="C.UTF-8", MANROFFSEQ="", MANWIDTH="80")
    result = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", str(MANPAGE)],
                            capture_output=True, text=True, env=env, timeout=60)
    assert (result.returncode, result.stderr) == (0, "")
    rendered = subprocess.run(["man", "-l", str(MANPAGE)], capture_output=True, text=True, env=env, timeout=60)
    assert "mping-sender - hardened multicast test source" in rendered.stdout


def test_every_option_of_help_is_documented_with_its_default():
    flat = help_text()
    documented = man_options()
    options = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", flat.split("options:", 1)[1]))
    missing = options - set(documented)
    assert not missing, f"options in --help but not in the man page: {sorted(missing)}"
    defaults = re.findall(r"(--[a-z][a-z-]*)(?: [A-Z]+)? [^()]*?\(default: ([^ ()]+)\)", flat)
    assert len(defaults) >= 9
    for option, default in defaults:
        assert f"Default: {default}" in documented[option], (option, default, documented[option])


def test_exit_codes_signals_files_and_sandbox_are_documented():
    source = MANPAGE.read_text()
    for section in ("EXIT STATUS", "SIGNALS", "SANDBOX", "FILES", "EXAMPLES", "SEE ALSO", "ENVIRONMENT"):
        assert f"\n.SH {section}\n" in source, section
    exit_status = source.split(".SH EXIT STATUS", 1)[1].split("\n.SH ", 1)[0]
    assert re.findall(r"^\.B (\d+)$", exit_status, re.M) == ["0", "1", "64", "69", "70"]
    for word in ("SIGINT", "SIGTERM", "SIGUSR1", "/etc/default/mping\\-sender", "mping\\-sender@.service",
                 "no_new_privs", "Landlock", "seccomp", "require", "best\\-effort", "ff3e::8000:42",
                 "239.1.2.3", "ip netns"):
        assert word in source, word


def test_option_arguments_are_named_as_in_help():
    """--sandbox MODE in --help, README and the page alike."""
    flat = help_text()
    page = " ".join(rendered().split())
    for option, argument in re.findall(r"(--[a-z][a-z-]*) ([A-Z]+)\b", flat.split("options:", 1)[1]):
        assert f"{option} {argument}" in page, (option, argument)


def test_no_stray_punctuation_and_exit_69_names_the_stats_file():
    text = rendered()
    assert not re.search(r"\S \.(\s|$)", text.replace(".\u2009.\u2009.", "")), \
        [line for line in text.splitlines() if re.search(r"\S \.(\s|$)", line)]
    exit_69 = " ".join(text.split("\n       69 ", 1)[1].split("\n       70 ", 1)[0].split())
    assert "--stats-json" in exit_69, exit_69
