#!/usr/bin/env bash
# Installs what peft-plan needs on a Debian machine that has the Swift toolchain.
#   bash scripts/setup.sh          what building and running needs (apt packages only)
#   bash scripts/setup.sh --test   also the Python side the tests compare against, in the
#                                  project's virtual environment .venv/ (never the system
#                                  python, which PEP 668 closes to pip on Debian 12):
#                                  PyTorch, Transformers and PEFT at the versions the
#                                  reference counts were checked with, and the engines whose
#                                  configs peft-plan emits (DeepSpeed, Accelerate, TRL,
#                                  bitsandbytes), which load them in EmitTests.
# The tests and `peft-plan calibrate --backend torch` use .venv/bin/python unless
# PEFT_PLAN_PYTHON names another interpreter. Set PEFT_PLAN_VENV to put the environment
# elsewhere (the tests then need PEFT_PLAN_PYTHON=$PEFT_PLAN_VENV/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.15.0
TRANSFORMERS_VERSION=5.25.0
PEFT_VERSION=0.21.2
DEEPSPEED_VERSION=0.19.8
ACCELERATE_VERSION=1.15.0
TRL_VERSION=1.16.0
BITSANDBYTES_VERSION=0.50.2

testing=false
case "${1:-}" in
    "") ;;
    --test) testing=true ;;
    *) echo "setup.sh: unknown option '$1' (accepted: --test)" >&2; exit 2 ;;
esac

need_apt=()
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
# The training engine links OpenBLAS, found through pkg-config.
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
pkg-config --exists openblas 2>/dev/null || need_apt+=(libopenblas-dev)
# Reports are drawn with Cairo (found through pkg-config) in DejaVu Sans.
pkg-config --exists cairo 2>/dev/null || need_apt+=(libcairo2-dev)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_apt+=(fonts-dejavu-core)
if $testing; then
    # Debian splits venv's pip bootstrap (ensurepip) into python3-venv.
    python3 -c "import ensurepip, venv" >/dev/null 2>&1 || need_apt+=(python3-venv)
    # The report tests read PDFs back with poppler (page count, text).
    command -v pdfinfo >/dev/null 2>&1 || need_apt+=(poppler-utils)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: apt-get install ${need_apt[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
$testing || exit 0

venv=${PEFT_PLAN_VENV:-.venv}
# A virtual environment without pip (made by uv, say) gets pip rather than being replaced.
if [ -f "$venv/pyvenv.cfg" ] && [ -x "$venv/bin/python" ] && ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    "$venv/bin/python" -m ensurepip --upgrade >/dev/null 2>&1 || true
fi
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    # Only a virtual environment (pyvenv.cfg) is ever removed and made anew, never another folder.
    if [ -e "$venv" ] && [ ! -f "$venv/pyvenv.cfg" ]; then
        echo "setup: $venv exists and is not a virtual environment; move it away or set PEFT_PLAN_VENV" >&2
        exit 1
    fi
    echo "setup: creating the virtual environment $venv with $(command -v python3) ($(python3 --version 2>&1))" >&2
    rm -rf "$venv"
    if ! python3 -m venv "$venv"; then
        rm -rf "$venv"
        echo "setup: $(command -v python3) cannot make a virtual environment; on Debian: apt-get install python3-venv" >&2
        exit 1
    fi
fi
py=$venv/bin/python
pip=("$py" -m pip install --quiet --disable-pip-version-check)

have_torch=$("$py" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null || true)
if [ "$have_torch" != "$TORCH_VERSION" ]; then
    # The reference figures (FLOP counts of PyTorch's CPU kernels among them) were checked with
    # this torch. A local CPU build of it for this Python is preferred where the machine ships
    # one; PyPI's Linux wheel otherwise, which brings CUDA libraries the tests never use.
    tag=$("$py" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
    cpu_wheel=$(ls /opt/wheels/torch-"$TORCH_VERSION"+cpu-"$tag"-*.whl 2>/dev/null | sort -V | tail -n 1 || true)
    echo "setup: installing torch $TORCH_VERSION ${cpu_wheel:+from $cpu_wheel }into $venv (a few minutes the first time)" >&2
    if [ -n "$cpu_wheel" ]; then "${pip[@]}" "$cpu_wheel"; else "${pip[@]}" "torch==$TORCH_VERSION"; fi
fi
echo "setup: installing transformers $TRANSFORMERS_VERSION and peft $PEFT_VERSION into $venv" >&2
"${pip[@]}" "transformers==${TRANSFORMERS_VERSION}" "peft==${PEFT_VERSION}"
"$py" -c "import torch, transformers, peft; print('python reference:', '$py', 'torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"
# DeepSpeed builds no C++/CUDA ops at install (DS_BUILD_OPS=0): the tests only read configs.
echo "setup: installing deepspeed, accelerate, trl and bitsandbytes into $venv" >&2
DS_BUILD_OPS=0 "${pip[@]}" "deepspeed==${DEEPSPEED_VERSION}" \
    "accelerate==${ACCELERATE_VERSION}" "trl==${TRL_VERSION}" "bitsandbytes==${BITSANDBYTES_VERSION}"
"$py" -c "import deepspeed, accelerate, trl, bitsandbytes; print('emitted-config engines: deepspeed', deepspeed.__version__, 'accelerate', accelerate.__version__, 'trl', trl.__version__, 'bitsandbytes', bitsandbytes.__version__)"
