"""The metrics endpoint (--metrics-listen) of the real program, in network
namespaces: off by default, linted by promtool, unmoved by hostile clients,
and scraped by a real Prometheus server."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
import urllib.parse

from helpers import started
from netns import ROOT, received
from prereq import require_tool
from test_end_to_end import summary_counts
from test_metrics import promtool_check

SCRAPER = os.path.join(ROOT, "tools", "scraper.py")
FORGE = os.path.join(ROOT, "tools", "forge.py")
PORT = 9810


def scrape(pair, host, path: str = "/metrics", timeout: float = 20) -> str:
    """One GET from the receiver's namespace (another host, as Prometheus would be): status line, then the body."""
    proc = pair.popen(pair.receiver_ns, [sys.executable, SCRAPER, "get", str(host), str(PORT), path])
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


def listeners(pair, ns: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, "ss", "-Hltn"], capture_output=True, text=True,
                          check=True).stdout


def test_off_by_default_nothing_listens_and_nothing_is_imported(netpair):
    proc = netpair.sender("--interval", "0.05", "--no-replies", python_options=["-X", "importtime"])
    log = started(proc)
    assert listeners(netpair, netpair.sender_ns) == ""
    proc.terminate()
    log += proc.communicate(timeout=10)[1]
    assert "mping_sender.cli" in log and "mping_sender.metrics" not in log, "the modules load only with the option"

    proc = netpair.sender("--interval", "0.05", "--no-replies", "--metrics-listen", f"{netpair.sender4}:{PORT}",
                          python_options=["-X", "importtime"])
    log = started(proc)
    assert f"metrics: serving http://{netpair.sender4}:{PORT}/metrics" in log
    assert f"{netpair.sender4}:{PORT}" in listeners(netpair, netpair.sender_ns)
    assert "mping_sender.metrics_http" in log
    proc.terminate()
    assert proc.communicate(timeout=10) and proc.returncode == 0


def test_a_scrape_is_valid_and_shows_the_reflector(netpair):
    require_tool("promtool")
    netpair.reflector("ff2e::42")
    proc = netpair.sender("--interval", "0.02", "--metrics-listen", f"[{netpair.sender6}]:{PORT}")
    started(proc)
    deadline = time.monotonic() + 20
    mine = f'mping_sender_replies_total{{receiver="{netpair.receiver6}"}} '
    while True:
        out = scrape(netpair, netpair.sender6)
        status, _, body = out.partition("\n")
        assert status == "HTTP/1.1 200 OK", out
        replies = re.search(re.escape(mine) + r"(\d+)", body)
        if replies and int(replies.group(1)) >= 5:
            break
        assert time.monotonic() < deadline, body
        time.sleep(0.1)
    promtool_check(body)
    assert f'interface="{netpair.SENDER_IF}"' in body and f'source="{netpair.sender6}"' in body
    proc.terminate()
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "Traceback" not in err, err


def test_a_listening_address_the_host_lacks_is_exit_69(netpair):
    proc = netpair.sender("--metrics-listen", "[fd99::9]:9810", "--count", "1")
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 69, err
    assert "--metrics-listen: cannot listen on [fd99::9]:9810: Cannot assign requested address (EADDRNOTAVAIL)" in err
    assert "Traceback" not in err


def test_hostile_clients_delay_no_datagram_and_later_scrapes_are_answered(netpair):
    """A full table of receivers (forged) makes a large document; then idle
    connections, an oversized request, garbage, a client that never reads
    and a scrape flood, while the sender sends every 10 ms: every datagram
    arrives, on the grid, and the last scrape is answered."""
    require_tool("promtool")
    group = "239.255.42.1"
    forger = netpair.popen(netpair.receiver_ns, [sys.executable, FORGE, "--interface", netpair.RECEIVER_IF,
                                                 "--group", group, "--sources", "300"])
    assert forger.stderr.readline().strip() == "ready"
    receiver = netpair.receiver(group, timeout=3)
    count = 1000  # 10 s: more than the hostile clients take
    proc = netpair.sender("--address", group, "--interval", "0.01", "--count", str(count),
                          "--metrics-listen", f"{netpair.sender4}:{PORT}")
    started(proc)
    _, forged = forger.communicate(timeout=20)
    assert forger.returncode == 0, forged
    client = netpair.popen(netpair.receiver_ns, [sys.executable, SCRAPER, "hostile", str(netpair.sender4), str(PORT)])
    out, err = client.communicate(timeout=60)
    assert client.returncode == 0, err
    seen = json.loads(out)
    assert proc.poll() is None, "the hostile clients outlasted the sender: make --count larger"
    _, log = proc.communicate(timeout=30)
    assert proc.returncode == 0, log
    # The endpoint: idle connections closed after the 2 s request limit (the
    # last one waited in the backlog for a free place first); the rest answered.
    idle = seen["idle_closed_after"]
    assert all(closed is not None and 1.9 <= closed <= 8 for closed in idle), idle
    assert seen["oversized_closed_after"] is not None and seen["oversized_closed_after"] < 3, seen
    assert (seen["garbage"], seen["post"], seen["other_path"]) == (
        "HTTP/1.1 400 Bad Request", "HTTP/1.1 405 Method Not Allowed", "HTTP/1.1 404 Not Found"), seen
    assert seen["answered"] >= 3 and seen["unanswered"] == 0, seen
    assert seen["after"] == "HTTP/1.1 200 OK"
    assert "mping_sender_receivers 256\n" in seen["after_body"]
    promtool_check(seen["after_body"])
    # The datagrams: every one sent and received, in order, on the grid. A
    # busy machine makes some slots late without any scrape (a forged burst
    # at the start, other tests): the bound is the one of the reply flood test.
    assert summary_counts(log) == (count, 0), log
    skipped = int(re.search(r"(\d+) slots skipped", log).group(1))
    assert skipped <= count // 10, log
    run_time = float(re.search(r"run time ([\d.]+) s", log).group(1))
    assert run_time < (count + skipped - 1) * 0.01 + 0.2, run_time  # the grid: slots, sent or skipped, plus the linger
    # (The receiver shares the group with the forged burst at the start, which may overflow its buffer.)
    ours = [d["sequence"] for d in received(receiver, sender_done=True) if d.get("type") == "s"]
    assert ours == sorted(set(ours)) and set(range(100, count)) <= set(ours), ours


PROMETHEUS_CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: mping
    static_configs:
      - targets: ['{target}']
"""


def query(pair, promql: str) -> list:
    """The result of an instant query over Prometheus' HTTP API."""
    out = scrape_prometheus(pair, "/api/v1/query?query=" + urllib.parse.quote(promql))
    answer = json.loads(out.partition("\n")[2])
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def scrape_prometheus(pair, path: str) -> str:
    proc = pair.popen(pair.receiver_ns, [sys.executable, SCRAPER, "get", "127.0.0.1", "9090", path])
    out, err = proc.communicate(timeout=20)
    return out if proc.returncode == 0 else ""


def prometheus_sees(pair, target: str, reflector: str, tmp_path) -> dict:
    """Debian's prometheus in the receiver's namespace (another host on the
    link), scraping ``target`` every second, until it has the reflector's
    replies and a median RTT (PromQL as the README has it; a rate needs two
    scrapes) and ``up`` is 1. Returns what it answered: up, replies, median
    RTT, loss ratio and the info labels."""
    prometheus = require_tool("prometheus")
    config = tmp_path / "prometheus.yml"
    config.write_text(PROMETHEUS_CONFIG.format(target=target))
    server = pair.popen(pair.receiver_ns, [prometheus, f"--config.file={config}",
                                           f"--storage.tsdb.path={tmp_path / 'data'}",
                                           "--web.listen-address=127.0.0.1:9090"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    median_rtt = "histogram_quantile(0.5, sum by (receiver, le) (rate(mping_sender_rtt_seconds_bucket[10s])))"
    deadline = time.monotonic() + 60
    try:
        while True:
            assert server.poll() is None, "prometheus exited"
            if scrape_prometheus(pair, "/-/ready").startswith("HTTP/1.1 200"):
                up = query(pair, 'up{job="mping"}')
                replies = query(pair, f'mping_sender_replies_total{{receiver="{reflector}"}}')
                rtt = {sample["metric"]["receiver"]: float(sample["value"][1]) for sample in query(pair, median_rtt)}
                if up and up[0]["value"][1] == "1" and replies and float(replies[0]["value"][1]) > 0 \
                        and rtt.get(reflector, math.nan) > 0:  # NaN until the window holds two scrapes
                    break
            assert time.monotonic() < deadline, "prometheus never scraped the sender"
            time.sleep(0.5)
        loss = query(pair, "sum by (receiver) (rate(mping_sender_replies_lost_total[10s])) / sum by (receiver) "
                           "(rate(mping_sender_replies_total[10s]) + rate(mping_sender_replies_lost_total[10s]))")
        return {"up": up[0]["value"][1], "replies": float(replies[0]["value"][1]), "rtt": rtt[reflector],
                "loss": {sample["metric"]["receiver"]: float(sample["value"][1]) for sample in loss}[reflector],
                "info": query(pair, "mping_sender_info")[0]["metric"]}
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_real_prometheus_scrapes_the_replies_and_the_rtt(netpair, tmp_path):
    netpair.reflector("ff2e::42")
    proc = netpair.sender("--interval", "0.05", "--metrics-listen", f"[{netpair.sender6}]:{PORT}")
    started(proc)
    seen = prometheus_sees(netpair, f"[{netpair.sender6}]:{PORT}", str(netpair.receiver6), tmp_path)
    assert seen["up"] == "1" and seen["replies"] > 0 and 0 < seen["rtt"] < 0.1 and seen["loss"] == 0, seen
    assert seen["info"]["group"] == "ff2e::42" and seen["info"]["interface"] == netpair.SENDER_IF, seen
    proc.terminate()
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "Traceback" not in err, err
