#!/usr/bin/env bash
# Installs what peft-plan needs on a Debian machine that has the Swift toolchain.
#   bash scripts/setup.sh          what building and running needs
#   bash scripts/setup.sh --test   also the Python side the tests compare against:
#                                  PyTorch (CPU), Transformers and PEFT at the versions
#                                  the reference counts were checked with, and the engines
#                                  whose configs peft-plan emits (DeepSpeed, Accelerate, TRL,
#                                  bitsandbytes), which load them in EmitTests
set -euo pipefail

TRANSFORMERS_VERSION=5.23.0
PEFT_VERSION=0.21.2
DEEPSPEED_VERSION=0.19.8
ACCELERATE_VERSION=1.15.0
TRL_VERSION=1.16.0
BITSANDBYTES_VERSION=0.50.2

need_apt=()
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
# The training engine links OpenBLAS, found through pkg-config.
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
pkg-config --exists openblas 2>/dev/null || need_apt+=(libopenblas-dev)
# Reports are drawn with Cairo (found through pkg-config) in DejaVu Sans.
pkg-config --exists cairo 2>/dev/null || need_apt+=(libcairo2-dev)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_apt+=(fonts-dejavu-core)
if [ "${1:-}" = "--test" ] && ! python3 -m pip --version >/dev/null 2>&1; then need_apt+=(python3-pip); fi
# The report tests read PDFs back with poppler (page count, text).
if [ "${1:-}" = "--test" ] && ! command -v pdfinfo >/dev/null 2>&1; then need_apt+=(poppler-utils); fi
if [ ${#need_apt[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

if [ "${1:-}" = "--test" ]; then
    if ! python3 -c "import torch" >/dev/null 2>&1; then
        # Prefer a local CPU build of torch where the machine ships one (no CUDA libraries).
        cpu_wheel=$(ls /opt/wheels/torch-*+cpu-*.whl 2>/dev/null | sort -V | tail -n 1 || true)
        if [ -n "$cpu_wheel" ]; then
            python3 -m pip install --quiet --root-user-action=ignore "$cpu_wheel"
        else
            python3 -m pip install --quiet --root-user-action=ignore torch
        fi
    fi
    python3 -m pip install --quiet --root-user-action=ignore "transformers==${TRANSFORMERS_VERSION}" "peft==${PEFT_VERSION}"
    python3 -c "import torch, transformers, peft; print('python reference: torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"
    # DeepSpeed builds no C++/CUDA ops at install (DS_BUILD_OPS=0): the tests only read configs.
    DS_BUILD_OPS=0 python3 -m pip install --quiet --root-user-action=ignore "deepspeed==${DEEPSPEED_VERSION}" \
        "accelerate==${ACCELERATE_VERSION}" "trl==${TRL_VERSION}" "bitsandbytes==${BITSANDBYTES_VERSION}"
    python3 -c "import deepspeed, accelerate, trl, bitsandbytes; print('emitted-config engines: deepspeed', deepspeed.__version__, 'accelerate', accelerate.__version__, 'trl', trl.__version__, 'bitsandbytes', bitsandbytes.__version__)"
fi
