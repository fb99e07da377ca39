#!/usr/bin/env bash
# Set up SplatStudio from a source checkout in ./.venv (Linux/macOS).
#   bash installers/setup.sh          # the app, the CPU trainer, pycolmap, HEIC import
#   bash installers/setup.sh --dev    # + test tools, and Ray for the cluster tests (tests/cluster)
# Environment: PYTHON (default python3), TORCH_SPEC (default torch==2.13.0, a CPU build; GPU users
# install a CUDA build of PyTorch first and then `pip install -e .[cuda]` for gsplat).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
extras="trainer,heic"
[ "${1:-}" = "--dev" ] && extras="trainer,heic,test,cluster"

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first and pinned: a looser requirement would pull several GB of CUDA packages.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install --quiet "$TORCH_SPEC"
fi
.venv/bin/python -m pip install --quiet -e ".[${extras}]"
echo "SplatStudio is installed in $(pwd)/.venv — run .venv/bin/splatstudio"
