#!/usr/bin/env bash
# Quick start on a fresh Debian 12 machine (as root): install the build
# dependencies, build moad and moactl, start the daemon on the offline
# builtin provider with the shipped agents and sample knowledge, and ask it
# a question through moactl. The daemon keeps running afterwards; its pid is
# in $PIDFILE, and a second run restarts only the daemon a first run started.
set -euo pipefail
cd "$(dirname "$0")/.."

SOCKET=${MOAD_SOCKET:-/run/moad/moad.sock}
STATE=${MOAD_STATE_DIR:-/var/lib/moad}
PIDFILE=${MOAD_PID_FILE:-$STATE/quickstart.pid}
QUESTION=${1:-"What is the difference between the MIT and the GPL licence, and can I use GPL code in a commercial product?"}

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends \
                build-essential cmake pkg-config ca-certificates python3 \
                libsystemd-dev libmicrohttpd-dev libcurl4-openssl-dev libjansson-dev \
                libyaml-dev libsqlite3-dev libpq-dev libstemmer-dev zlib1g-dev check >/dev/null
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null

# Stop the daemon an earlier run started, and nothing else: the pid from
# our pid file, only while that process is still our moad binary.
if [ -r "$PIDFILE" ]; then
        pid=$(cat "$PIDFILE")
        if [ -n "$pid" ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$PWD/build/daemon/moad" ]; then
                echo "stopping the moad this script started before (pid $pid)"
                kill "$pid"
                for _ in $(seq 100); do
                        kill -0 "$pid" 2>/dev/null || break
                        sleep 0.1
                done
        fi
        rm -f "$PIDFILE"
fi
if [ -S "$SOCKET" ] && ./build/client/moactl --socket "$SOCKET" health >/dev/null 2>&1; then
        echo "another moad already serves $SOCKET; stop it or set MOAD_SOCKET" >&2
        exit 1
fi

mkdir -p "$STATE"
MOAD_PLUGIN_DIR=$PWD/build/plugins nohup ./build/daemon/moad --socket "$SOCKET" --state-dir "$STATE" \
        >/tmp/moad.log 2>&1 &
echo $! >"$PIDFILE"
echo "moad started (pid $!), log in /tmp/moad.log, socket $SOCKET"
for _ in $(seq 100); do
        ./build/client/moactl --socket "$SOCKET" health >/dev/null 2>&1 && break
        sleep 0.1
done

echo
echo "\$ moactl route \"$QUESTION\""
./build/client/moactl --socket "$SOCKET" route "$QUESTION"
echo
echo "\$ moactl ask \"$QUESTION\""
./build/client/moactl --socket "$SOCKET" ask "$QUESTION"
echo
echo "Try: ./build/client/moactl --socket $SOCKET ask --trace \"How does compound interest work?\""
echo "Stop: kill \$(cat $PIDFILE)"
