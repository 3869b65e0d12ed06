#!/usr/bin/env bash
# Regenerates the sample reports in reports/ (issue 6): one command, deterministic output.
#   bash scripts/make_reports.sh
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product peft-plan >/dev/null
bin=.build/release/peft-plan
mkdir -p reports
# An 8B model on 24 GB cards (with the 80 GB ones for comparison): the document, the summary
# figure and the sequence-length chart
"$bin" report --model llama-3.1-8b --gpu 24GB --gpu 80GB --out reports/llama-3.1-8b-on-24gb.pdf
"$bin" report --model llama-3.1-8b --gpu 24GB --gpu 80GB --out reports/llama-3.1-8b-on-24gb.svg
"$bin" report --model llama-3.1-8b --gpu 24GB --gpu 80GB --out reports/llama-3.1-8b-on-24gb-seq.png --chart seq
# A 70B model on eight 80 GB cards with ZeRO-3 and checkpointing: the document and the GPU-count chart
"$bin" report --model 70b --gpu 80GB --gpus 8 --sharding zero3 --grad-checkpointing --out reports/llama-3.1-70b-on-8x80gb.pdf
"$bin" report --model 70b --gpu 80GB --gpus 8 --sharding zero3 --grad-checkpointing --out reports/llama-3.1-70b-on-8x80gb-scaling.png --chart scaling
# GRPO with LoRA on Qwen3-8B (issue 18): the trainer's memory, the prompts per step and the generation time
"$bin" report --model qwen3-8b --gpu 24GB --gpu 80GB --method lora --trainer grpo --num-generations 8 --max-completion 1024 --out reports/qwen3-8b-grpo-lora.pdf
# Calibration: the committed H100 bursts against hf-cuda, and the CPU engine against engine-cpu
"$bin" calibrate --compare reports/calibration/cuda-llama-3.1-8b.json --report reports/calibration-h100-llama-3.1-8b.pdf >/dev/null
"$bin" calibrate --compare reports/calibration/cuda-llama-3.1-8b.json --report reports/calibration-h100-llama-3.1-8b-parity.svg >/dev/null
"$bin" calibrate --backend engine --report reports/calibration-engine-tiny.pdf >/dev/null
# The published claims, checked
"$bin" claims --format markdown > reports/claims.md
