#!/usr/bin/env bash
# Build the normal and the sanitizer variant (warnings are errors) and run
# every test of both. Exit status: 0 only if both pass.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

status=0
for variant in RelWithDebInfo Asan; do
        dir=build-ci-$variant
        echo "=== $variant build ==="
        cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=$variant -DMOAD_WERROR=ON
        cmake --build "$dir" -j"$jobs"
        echo "=== $variant tests ==="
        # detect_leaks: no leaks at exit; halt on the first UBSan report.
        if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
                ctest --test-dir "$dir" --output-on-failure -j"$jobs" --timeout 900; then
                status=1
        fi
done
exit $status
