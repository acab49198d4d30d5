#!/bin/sh
# test-units.sh — checks systemd/ as shipped: `systemd-analyze verify` on
# moad.socket + moad.service (ExecStart pointed at the built moad, since
# verify wants an existing binary), the sandbox's exposure score stays at
# most 2.0 (`systemd-analyze security --offline`), and moad-sysusers.conf
# creates user and group moad in a scratch root.
# Usage: test-units.sh SRCDIR MOAD_BINARY     (exit 77: skipped)
set -eu
src=$1
moad=$2
command -v systemd-analyze >/dev/null 2>&1 || { echo "systemd-analyze not installed: skipped"; exit 77; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

sed "s#/usr/sbin/moad#$moad#" "$src/systemd/moad.service" > "$tmp/moad.service"
cp "$src/systemd/moad.socket" "$tmp/moad.socket"
cd "$tmp"

out=$(systemd-analyze verify --man=no ./moad.socket ./moad.service 2>&1) || { echo "$out"; exit 1; }
# verify reports some problems only as messages, with status 0.
if [ -n "$out" ]; then
        echo "systemd-analyze verify complained:"
        echo "$out"
        exit 1
fi
echo "verify: ok"

systemd-analyze security --offline=yes --threshold=20 ./moad.service | tail -n 1
# --threshold makes it fail above 2.0; the command's status is the verdict.
systemd-analyze security --offline=yes --threshold=20 ./moad.service >/dev/null

if command -v systemd-sysusers >/dev/null 2>&1; then
        mkdir -p root/etc
        systemd-sysusers --root="$tmp/root" "$src/systemd/moad-sysusers.conf" >/dev/null 2>&1
        grep -q '^moad:x:[0-9]*:[0-9]*:.*:/var/lib/moad:' root/etc/passwd
        grep -q '^moad:x:[0-9]*:' root/etc/group
        echo "sysusers: ok"
fi
