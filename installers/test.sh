#!/usr/bin/env bash
# Install SplatStudio with its test tools and run the whole test suite (what CI runs).
#   bash installers/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
bash installers/setup.sh --dev
mkdir -p test-artifacts
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
