#!/usr/bin/env bash
# Regenerates the sample reports in reports/ (issue 6): one command, deterministic output.
#   bash scripts/make_reports.sh
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product peft-plan >/dev/null
bin=.build/release/peft-plan
mkdir -p reports
# An 8B model on 24 GB cards (with the 80 GB ones for comparison)
"$bin" report --model llama-3.1-8b --gpu 24GB --gpu 80GB --out reports/llama-3.1-8b-on-24gb.pdf
"$bin" report --model llama-3.1-8b --gpu 24GB --gpu 80GB --out reports/llama-3.1-8b-on-24gb.svg
# A 70B model on 80 GB cards, with checkpointing
"$bin" report --model 70b --gpu 80GB --grad-checkpointing --out reports/llama-3.1-70b-on-80gb.pdf
"$bin" report --model 70b --gpu 80GB --grad-checkpointing --out reports/llama-3.1-70b-on-80gb.png
