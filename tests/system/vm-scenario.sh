#!/bin/sh
# Runs inside the AppArmor VM (tests/system/test_apparmor_vm.py), as a
# oneshot unit after boot: install the package (its postinst loads the
# profile in enforce mode), run the service through start, SIGUSR1,
# replies, a scrape of its metrics endpoint and stop, then print one result
# line on the console and power off.
set -u
PKG=/root/mping
say() { echo "mping-vm: $*" > /dev/console; }
fail() { say "FAILED: $*"; echo "MPING-VM-RESULT {\"error\": \"$*\"}" > /dev/console; systemctl poweroff --no-block; exit 1; }

say "installing"
dpkg -i "$PKG/current.deb" > /root/dpkg.log 2>&1 || fail "dpkg -i: $(tail -n 3 /root/dpkg.log | tr '\n"' ' _')"
mode=$(aa-status --json 2>/dev/null | python3 -c 'import json, sys; print(json.load(sys.stdin)["profiles"].get("mping-sender", "not loaded"))')

# A reflector in a namespace of its own, on the other end of a veth.
sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0
ip netns add peer
ip link add vm0 type veth peer name peer0 netns peer
ip addr add fd00:a::1/64 dev vm0 nodad
ip -n peer addr add fd00:a::2/64 dev peer0 nodad
ip link set vm0 up
ip -n peer link set lo up
ip -n peer link set peer0 up
ip netns exec peer env PYTHONPATH=/usr/lib/mping-sender python3 "$PKG/reflector.py" --interface peer0 \
    --group ff2e::42 --source fd00:a::2 --port 4321 --timeout 120 > /root/reflector.log 2>&1 &

cat > /etc/default/mping-sender <<EOF
INTERFACE_NAME=vm0
METRICS_LISTEN=[fd00:a::1]:9810
ARGS=--interval 0.2 --sandbox require
EOF
say "starting"
systemctl start mping-sender.service || fail "start: $(systemctl status --no-pager mping-sender | tail -n 5 | tr '\n"' ' _')"
pid=$(systemctl show -p MainPID --value mping-sender.service)
confinement=$(cat "/proc/$pid/attr/current" 2>/dev/null)
sleep 3
# The metrics endpoint, scraped from the peer (TCP under the profile): its status and the reflector's series.
metrics=$(ip netns exec peer python3 -c 'import urllib.request
with urllib.request.urlopen("http://[fd00:a::1]:9810/metrics", timeout=10) as r:
    print(r.status, r.read().count(b"mping_sender_replies_total{"))' 2>&1 | tail -n 1 | tr '"' _)
systemctl kill -s USR1 mping-sender.service
sleep 1
systemctl stop mping-sender.service
journalctl --no-pager -o cat -u mping-sender.service > /root/journal.txt
totals=$(grep -m1 " receivers, " /root/journal.txt | tr '"' _)
sandbox=$(grep -m1 "^sandbox: " /root/journal.txt | tr '"' _)
summary=$(grep "^summary: " /root/journal.txt | tail -n 1 | tr '"' _)
denied=$(dmesg | grep -c 'apparmor="DENIED"')
dmesg | grep 'apparmor="DENIED"' | head -n 5 | tr '"' _ | while read -r line; do say "denial: $line"; done
cat > /root/result.json <<EOF
{"profile_mode": "$mode", "confinement": "$confinement", "denied": $denied, "totals": "$totals", "metrics": "$metrics",
 "sandbox": "$sandbox", "summary": "$summary", "kernel": "$(uname -r)"}
EOF
echo "MPING-VM-RESULT $(tr '\n' ' ' < /root/result.json)" > /dev/console
systemctl poweroff --no-block
