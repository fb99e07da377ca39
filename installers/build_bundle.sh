#!/usr/bin/env bash
# Build the one-folder desktop bundle: dist/SplatStudio/ (run from any folder).
#   bash installers/build_bundle.sh [--clean]
# Uses the source install in ./.venv (installers/setup.sh makes it: torch==2.13.0, the CPU build, first),
# adds the pinned PyInstaller (`.[bundle]`) and runs installers/splatstudio.spec. --clean drops
# PyInstaller's cache (build/pyinstaller) for a full re-analysis. Then: bash installers/smoke_test.sh
# Environment: PYTHON, TORCH_SPEC as for setup.sh (a GPU bundle: install a CUDA build of torch into .venv
# first; it is then bundled as it is, several GB larger).
set -euo pipefail
cd "$(dirname "$0")/.."
clean=""
[ "${1:-}" = "--clean" ] && clean="--clean"

bash installers/setup.sh
.venv/bin/python -m pip install --quiet -e ".[trainer,bundle]"
.venv/bin/python -c "import torch, numba, pycolmap, PySide6, PyInstaller; print('building with torch', torch.__version__, \
'numba', numba.__version__, 'pycolmap', pycolmap.__version__, 'PySide6', PySide6.__version__, 'PyInstaller', PyInstaller.__version__)"

start=$(date +%s)
.venv/bin/python -m PyInstaller --noconfirm $clean --log-level WARN \
  --distpath dist --workpath build/pyinstaller installers/splatstudio.spec
took=$(( $(date +%s) - start ))
if [ "$(uname -s)" = Linux ]; then  # the folder installs itself: dist/SplatStudio/install.sh [--uninstall]
  install -m 755 installers/install_linux.sh dist/SplatStudio/install.sh
fi

case "$(uname -s)" in
  Linux) exe=dist/SplatStudio/splatstudio ;;
  Darwin) exe=dist/SplatStudio.app/Contents/MacOS/SplatStudio ;;
  *) exe=dist/SplatStudio/splatstudio-cli.exe ;;
esac
"$exe" --version
echo "built dist/SplatStudio in $((took / 60)) min $((took % 60)) s: $(du -sh dist/SplatStudio | cut -f1)"
echo "next: bash installers/smoke_test.sh   (then bash installers/install_linux.sh to install it for you)"
