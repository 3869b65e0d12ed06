#!/usr/bin/env bash
# Fuzzes the config.json reader, the hardware-profile reader, the calibration-profile reader
# and the command-line parser with libFuzzer (+ AddressSanitizer) for a bounded time each.
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET (default 60)] [TARGET ...]
# Targets: config hardware calibration cli progress compare hubcache prices. Seeds: Fuzz/corpus/TARGET (committed); inputs
# the fuzzer finds go to .build/fuzz/TARGET/corpus, crashes to .build/fuzz/TARGET/crashes.
# Exit status 1 when any target crashed, timed out or ran out of memory: copy the input into
# Fuzz/regressions/TARGET/ and FuzzRegressionTests replays it in every test run.
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(config hardware calibration cli progress compare hubcache prices)
echo "building the fuzz target (libFuzzer + AddressSanitizer, release; the first build takes minutes)…" >&2
swift build -c release --sanitize fuzzer --sanitize address -Xswiftc -sanitize=fuzzer,address --product peft-plan-fuzz --scratch-path .build/fuzz-build >&2 || exit 2
bin=.build/fuzz-build/release/peft-plan-fuzz
failed=0
for t in "${targets[@]}"; do
    case $t in config|hardware|calibration|progress|compare|hubcache|prices) dict=Fuzz/json.dict ;; cli) dict=Fuzz/cli.dict ;; *) echo "unknown target $t" >&2; exit 2 ;; esac
    work=.build/fuzz/$t
    mkdir -p "$work/corpus" "$work/crashes"
    echo "== $t: $seconds s ($(nproc) cores; one fuzzing process)" >&2
    PEFT_FUZZ_TARGET=$t "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -max_len=65536 \
        -dict="$dict" -artifact_prefix="$work/crashes/" -print_final_stats=1 "$work/corpus" "Fuzz/corpus/$t" \
        >"$work/log.txt" 2>&1
    status=$?
    runs=$(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$work/log.txt" | grep -o '[0-9]*$')
    crashes=$(find "$work/crashes" -type f | wc -l)
    echo "   $t: exit $status, ${runs:-?} inputs run, $(find "$work/corpus" -type f | wc -l) in the grown corpus, $crashes crash files" >&2
    if [ "$status" -ne 0 ] || [ "$crashes" -ne 0 ]; then
        failed=1
        tail -30 "$work/log.txt" >&2
    fi
done
exit $failed
