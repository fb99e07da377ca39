#!/usr/bin/env bash
# Install SplatStudio with its test tools and run the whole test suite (what CI runs).
#   bash installers/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
# A virtual screen with software OpenGL (Xvfb + Mesa llvmpipe) for the GUI and viewer tests.
GL_PACKAGES="xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 libxcb-image0
  libxcb-render-util0 libxcb-shape0 libxcb-randr0 libxcb-xkb1 libgl1 libegl1 libgl1-mesa-dri libglx-mesa0
  libegl-mesa0 libfontconfig1 libdbus-1-3
  desktop-file-utils appstream shared-mime-info"  # tests/unit/test_installers.py validates the desktop files
if ! command -v Xvfb >/dev/null || ! ldconfig -p | grep -q libxcb-cursor.so.0 || ! command -v desktop-file-validate \
    >/dev/null || ! command -v appstreamcli >/dev/null || ! command -v update-mime-database >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $GL_PACKAGES >/dev/null
fi
bash installers/setup.sh --dev
mkdir -p test-artifacts
exec .venv/bin/python -m pytest -p no:cacheprovider --xvfb-backend xvfb "$@"
