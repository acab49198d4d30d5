#!/bin/sh
# bench/peer.sh [--quick] [--rounds R] [--no-write] [--keep] — moad and the
# Portkey gateway side by side in one run (bench/peer.py says what and how).
# Installs the gateway into bench/peer/node_modules with `npm ci` from the
# committed package-lock.json when it is not there yet (never globally,
# install scripts off). Builds nothing: uses the build tree in $BUILD
# (default build-bench), which must hold daemon/moad, tests/mock-upstream and
# bench/moabench. Loopback only; bounded (about 5 minutes, --quick about 1).
# Not part of CI or of the test suite.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
BUILD=${BUILD:-build-bench}
case $BUILD in
/*) ;;
*) BUILD="$top/$BUILD" ;;
esac
for tool in node npm python3; do
	command -v "$tool" >/dev/null || { echo "peer.sh: $tool is needed" >&2; exit 1; }
done
if [ ! -f "$here/peer/node_modules/@portkey-ai/gateway/build/start-server.js" ]; then
	(cd "$here/peer" && npm ci --ignore-scripts --no-audit --no-fund)
fi
exec python3 "$here/peer.py" --build "$BUILD" "$@"
