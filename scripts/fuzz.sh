#!/usr/bin/env bash
# fuzz.sh — build the libFuzzer variant (clang, ASan+UBSan, -DMOAD_LIBFUZZER=ON)
# in its own build directory and fuzz every target in it for N seconds, with
# the checked-in corpus as seeds (read only) and a temporary copy for the new
# inputs. Exit status 0 only if every target ran its time without a finding;
# a finding prints its reproducer. See docs/reliability.md ("Fuzzing").
#
#   scripts/fuzz.sh                        every target 60 s (CI)
#   scripts/fuzz.sh --long 3600 fuzz-http-head    one target, an hour
#   FUZZ_SECONDS=300 scripts/fuzz.sh -j 1
#
# Environment: FUZZ_SECONDS (seconds per target, default 60), FUZZ_JOBS
# (targets at once, default: the number of CPUs), FUZZ_BUILD_DIR (default
# build-fuzz), FUZZ_OUT (where corpora, crashes and logs go; default a new
# directory under $TMPDIR, removed after a clean run unless --keep).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
        sed -n '2,17s/^# \{0,1\}//p' "$0"
        exit "${1:-0}"
}

seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}
dir=${FUZZ_BUILD_DIR:-build-fuzz}
out=${FUZZ_OUT:-}
keep=${out:+1}
only=()
while [ $# -gt 0 ]; do
        case $1 in
        --long) [ $# -ge 2 ] || usage 2; seconds=$2; shift 2 ;;
        -j | --jobs) [ $# -ge 2 ] || usage 2; jobs=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        -h | --help) usage 0 ;;
        -*) echo "fuzz.sh: unknown option $1" >&2; usage 2 ;;
        *) only+=("$1"); shift ;;
        esac
done
case $seconds in '' | *[!0-9]* | 0) echo "fuzz.sh: seconds must be a positive integer, not '$seconds'" >&2; exit 2 ;; esac
case $jobs in '' | *[!0-9]* | 0) echo "fuzz.sh: jobs must be a positive integer, not '$jobs'" >&2; exit 2 ;; esac

if ! command -v clang >/dev/null 2>&1; then
        echo "fuzz.sh: clang not found (apt-get install clang libclang-rt-14-dev): the fuzz targets cannot run" >&2
        exit 1
fi

echo "=== libFuzzer build ($dir) ==="
CC=clang cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOAD_WERROR=ON -DMOAD_LIBFUZZER=ON >/dev/null
cmake --build "$dir" --target fuzzers -j"$jobs"

if [ -z "$out" ]; then
        out=$(mktemp -d "${TMPDIR:-/tmp}/moad-fuzz.XXXXXX")
fi
mkdir -p "$out"

# Sanitizer reports stop the target; libFuzzer turns them into crash files.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ] && command -v llvm-symbolizer >/dev/null 2>&1; then
        export ASAN_SYMBOLIZER_PATH=$(command -v llvm-symbolizer)
fi

# One target: NAME BINARY CORPUS. Writes $out/NAME/{log,result}.
run_one() {
        local name=$1 bin=$2 seeds=$3 t=$out/$1 dict=()
        mkdir -p "$t/corpus" "$t/crashes"
        [ -f "$seeds.dict" ] && dict=(-dict="$seeds.dict")
        # The first corpus directory receives new inputs; the checked-in
        # one is only read. -timeout: one input over 25 s is a finding.
        if "$bin" "${dict[@]}" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 \
                -print_final_stats=1 -artifact_prefix="$t/crashes/" "$t/corpus" "$seeds" >"$t/log" 2>&1; then
                echo ok >"$t/result"
        else
                echo "failed ($?)" >"$t/result"
        fi
}

targets=()
while read -r name bin seeds; do
        [ -n "$name" ] || continue
        if [ ${#only[@]} -gt 0 ]; then
                case " ${only[*]} " in *" $name "*) ;; *) continue ;; esac
        fi
        targets+=("$name $bin $seeds")
done <"$dir/fuzzers.txt"
for want in "${only[@]}"; do
        grep -q "^$want " "$dir/fuzzers.txt" || { echo "fuzz.sh: no fuzz target '$want'" >&2; exit 2; }
done
[ ${#targets[@]} -gt 0 ] || { echo "fuzz.sh: no fuzz targets in $dir/fuzzers.txt" >&2; exit 1; }

echo "=== fuzzing ${#targets[@]} targets, ${seconds} s each, $jobs at a time; output in $out ==="
running=0
for entry in "${targets[@]}"; do
        read -r name bin seeds <<<"$entry"
        echo "--- $name"
        run_one "$name" "$bin" "$seeds" &
        running=$((running + 1))
        if [ "$running" -ge "$jobs" ]; then
                wait -n || true
                running=$((running - 1))
        fi
done
wait

status=0
printf '\n%-20s %8s %10s %8s %6s %6s %7s  %s\n' target seconds runs exec/s cov new rss/MB result
for entry in "${targets[@]}"; do
        read -r name bin seeds <<<"$entry"
        t=$out/$name
        fstat() { sed -n "s/^stat::$1: *//p" "$t/log" 2>/dev/null | tail -1; }
        cov=$(grep -o 'cov: [0-9]*' "$t/log" | tail -1 | cut -d' ' -f2 || true)
        result=$(cat "$t/result" 2>/dev/null || echo "did not run")
        crashes=$(find "$t/crashes" -type f | sort)
        [ "$result" = ok ] && [ -z "$crashes" ] || status=1
        printf '%-20s %8s %10s %8s %6s %6s %7s  %s\n' "$name" "$seconds" "$(fstat number_of_executed_units)" \
                "$(fstat average_exec_per_sec)" "${cov:-?}" "$(fstat new_units_added)" "$(fstat peak_rss_mb)" \
                "$result"
done

for entry in "${targets[@]}"; do
        read -r name bin seeds <<<"$entry"
        t=$out/$name
        crashes=$(find "$t/crashes" -type f | sort)
        if [ "$(cat "$t/result" 2>/dev/null)" = ok ] && [ -z "$crashes" ]; then
                continue
        fi
        echo
        echo "=== $name: FAILED; the end of $t/log:"
        grep -v -E '^#[0-9]+.*(NEW|REDUCE|pulse)' "$t/log" | tail -40
        for c in $crashes; do
                echo "reproducer: $c"
                echo "  replay:   $bin $c"
                echo "  keep it:  cp $c $seeds/  (a regression corpus entry, with the fix)"
        done
done

if [ $status -eq 0 ] && [ -z "$keep" ]; then
        rm -rf "$out"
else
        echo "fuzz output (new corpus inputs, crashes, logs): $out"
fi
exit $status
