#!/usr/bin/env bash
# Runs the training engine's tests under AddressSanitizer and ThreadSanitizer (issue 7).
# Not part of CI (two extra instrumented builds and slower tests): run it after engine work.
#   bash scripts/sanitizers.sh [address|thread ...]   (default: both)
# Each sanitizer builds into its own folder (.build/sanitize-NAME). The engine's tests that
# call PyTorch are left out (Python is not instrumented); everything else of the engine runs.
set -uo pipefail
cd "$(dirname "$0")/.."
kinds=("$@")
[ ${#kinds[@]} -eq 0 ] && kinds=(address thread)
filter='EngineKernelTests|EngineFastKernelTests|EngineGradientTests|EngineTrainerTests|EngineNF4Tests|EngineCalibrationTests'
failed=0
for k in "${kinds[@]}"; do
    log=.build/sanitize-$k.log
    mkdir -p .build
    echo "== $k sanitizer: building and running the engine tests ($(nproc) cores; log in $log)" >&2
    start=$(date +%s)
    # OpenBLAS itself is not instrumented: its threads' accesses are invisible to the
    # sanitizers; the engine's own code (kernels, workers, ledger, trainer) is checked.
    # ledgerAgreesWithMalloc compares the ledger with glibc's mallinfo2, which a sanitizer's
    # own allocator replaces: it is left out here (it runs in every plain test run)
    LSAN_OPTIONS=suppressions=$PWD/scripts/lsan.supp swift test --sanitize "$k" --scratch-path ".build/sanitize-$k" \
        --filter "$filter" --skip ledgerAgreesWithMalloc >"$log" 2>&1
    status=$?
    reports=$(grep -c -E "ERROR: AddressSanitizer|WARNING: ThreadSanitizer|runtime error:" "$log")
    echo "   $k: exit $status, $reports sanitizer reports, $(( $(date +%s) - start )) s; $(grep -E 'Test run with' "$log" | tail -1)" >&2
    if [ "$status" -ne 0 ] || [ "$reports" -ne 0 ]; then failed=1; grep -m5 -A12 -E "ERROR: AddressSanitizer|WARNING: ThreadSanitizer" "$log" >&2; fi
done
exit $failed
