#!/bin/sh
# bench/run.sh [--quick] [bench.py options] — moad's benchmark suite.
# Builds nothing: uses the build tree in $BUILD (default build-bench, relative
# to the repository), which must hold daemon/moad, tests/mock-upstream and
# bench/moabench (cmake --build "$BUILD"). Loopback and Unix sockets only;
# bounded (< 5 min default, < 60 s with --quick). Prints the tables and writes
# bench/results/<date>-<commit>[-quick].md and .json.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
BUILD=${BUILD:-build-bench}
case $BUILD in
/*) ;;
*) BUILD="$top/$BUILD" ;;
esac
export BUILD
exec python3 "$here/bench.py" --build "$BUILD" "$@"
