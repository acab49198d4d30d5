#!/usr/bin/env bash
# Quick start on a fresh Debian 12 machine (as root): install the build
# dependencies, build moad and moactl, start the daemon on the offline
# builtin provider with the shipped agents and sample knowledge, and ask it
# a question through moactl. The daemon keeps running afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

SOCKET=${MOAD_SOCKET:-/run/moad/moad.sock}
STATE=${MOAD_STATE_DIR:-/var/lib/moad}
QUESTION=${1:-"What is the difference between the MIT and the GPL licence, and can I use GPL code in a commercial product?"}

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends \
                build-essential cmake pkg-config ca-certificates python3 \
                libsystemd-dev libmicrohttpd-dev libcurl4-openssl-dev libjansson-dev \
                libyaml-dev libsqlite3-dev libstemmer-dev zlib1g-dev check >/dev/null
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null

if [ -S "$SOCKET" ] && ./build/client/moactl --socket "$SOCKET" health >/dev/null 2>&1; then
        echo "moad already running on $SOCKET; restarting it"
        pkill -f "build/daemon/moad --socket $SOCKET" || true
        sleep 1
fi

mkdir -p "$STATE"
MOAD_PLUGIN_DIR=$PWD/build/plugins nohup ./build/daemon/moad --socket "$SOCKET" --state-dir "$STATE" \
        >/tmp/moad.log 2>&1 &
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
echo "Stop: kill \$(pgrep -f 'build/daemon/moad')"
