#!/usr/bin/env bash
# Install the SplatStudio bundle for the current user (no root needed), or remove it.
#   bash installers/install_linux.sh [BUNDLE_DIR]     install (default: dist/SplatStudio, or the folder this
#                                                     script is in when it ships inside the bundle as install.sh)
#   bash installers/install_linux.sh --uninstall      remove everything it installed (projects are kept)
# Installs, under ${XDG_DATA_HOME:-~/.local/share} and ~/.local/bin:
#   splatstudio/                          the bundle
#   ~/.local/bin/splatstudio              a link to its executable
#   applications/io.splatstudio.SplatStudio.desktop          the menu entry (opens the library)
#   applications/io.splatstudio.SplatStudio.Viewer.desktop   "Open with" for .ply and .splat files
#   icons/hicolor/*/apps/io.splatstudio.SplatStudio.{png,svg}
#   mime/packages/io.splatstudio.SplatStudio.xml              the .splat (and .ply) file types
#   metainfo/io.splatstudio.SplatStudio.metainfo.xml          for software centres
# and refreshes the desktop, MIME and icon caches with the tools that are there.
set -euo pipefail
APP_ID=io.splatstudio.SplatStudio
DATA=${XDG_DATA_HOME:-$HOME/.local/share}
BIN=${SPLATSTUDIO_BIN_DIR:-$HOME/.local/bin}
TARGET="$DATA/splatstudio"
here=$(cd "$(dirname "$0")" && pwd)

refresh() {
  if command -v update-desktop-database >/dev/null; then update-desktop-database -q "$DATA/applications" || true; fi
  if command -v update-mime-database >/dev/null; then update-mime-database "$DATA/mime" >/dev/null || true; fi
  if command -v gtk-update-icon-cache >/dev/null && [ -d "$DATA/icons/hicolor" ]; then
    gtk-update-icon-cache -q -t -f "$DATA/icons/hicolor" || true
  fi
  touch "$DATA/icons/hicolor" 2>/dev/null || true
}

uninstall() {
  rm -rf "$TARGET"
  if [ -L "$BIN/splatstudio" ]; then rm -f "$BIN/splatstudio"; fi
  rm -f "$DATA/applications/$APP_ID.desktop" "$DATA/applications/$APP_ID.Viewer.desktop" \
        "$DATA/mime/packages/$APP_ID.xml" "$DATA/metainfo/$APP_ID.metainfo.xml"
  find "$DATA/icons/hicolor" -path "*/apps/$APP_ID.*" -delete 2>/dev/null || true
  mkdir -p "$DATA/applications" "$DATA/mime/packages"
  refresh
  echo "SplatStudio removed (your projects and settings are kept: ~/.local/share/SplatStudio, ~/.config/SplatStudio)"
}

if [ "${1:-}" = "--uninstall" ]; then uninstall; exit 0; fi

if [ -n "${1:-}" ]; then bundle=$1
elif [ -x "$here/splatstudio" ] && [ -d "$here/_internal" ]; then bundle=$here
else bundle="$here/../dist/SplatStudio"; fi
bundle=$(cd "$bundle" 2>/dev/null && pwd) || { echo "no bundle at ${1:-dist/SplatStudio}: build it with bash installers/build_bundle.sh" >&2; exit 2; }
files="$bundle/_internal"
[ -x "$bundle/splatstudio" ] && [ -f "$files/linux/$APP_ID.desktop" ] || { echo "$bundle is not a SplatStudio bundle" >&2; exit 2; }

# The bundle: copied next to the old one, then swapped in (a running copy keeps its files until it exits).
mkdir -p "$DATA" "$BIN"
if [ "$bundle" != "$TARGET" ]; then
  rm -rf "$TARGET.new"
  cp -a "$bundle" "$TARGET.new"
  rm -rf "$TARGET.old"
  if [ -e "$TARGET" ]; then mv "$TARGET" "$TARGET.old"; fi
  mv "$TARGET.new" "$TARGET"
  rm -rf "$TARGET.old"
fi
exe="$TARGET/splatstudio"
ln -sfn "$exe" "$BIN/splatstudio"

# Menu entries: the executable by its full path (~/.local/bin is not on every desktop session's PATH).
mkdir -p "$DATA/applications"
for name in "$APP_ID" "$APP_ID.Viewer"; do
  sed -e "s|^Exec=splatstudio|Exec=$exe|" -e "s|^TryExec=splatstudio|TryExec=$exe|" \
      "$files/linux/$name.desktop" > "$DATA/applications/$name.desktop"
done
for folder in "$files"/resources/icons/hicolor/*/apps; do
  size=$(basename "$(dirname "$folder")")
  mkdir -p "$DATA/icons/hicolor/$size/apps"
  cp "$folder/$APP_ID.png" "$DATA/icons/hicolor/$size/apps/"
done
mkdir -p "$DATA/icons/hicolor/scalable/apps" "$DATA/mime/packages" "$DATA/metainfo"
cp "$files/resources/icons/$APP_ID.svg" "$DATA/icons/hicolor/scalable/apps/"
cp "$files/linux/$APP_ID.mime.xml" "$DATA/mime/packages/$APP_ID.xml"
cp "$files/linux/$APP_ID.metainfo.xml" "$DATA/metainfo/"
refresh
if command -v xdg-mime >/dev/null && [ -z "$(xdg-mime query default application/x-gaussian-splat 2>/dev/null)" ]; then
  xdg-mime default "$APP_ID.Viewer.desktop" application/x-gaussian-splat 2>/dev/null || true
fi

echo "SplatStudio is installed in $TARGET"
echo "  start it from the applications menu, or run: $BIN/splatstudio"
case ":$PATH:" in *":$BIN:"*) ;; *) echo "  ($BIN is not on your PATH: add it to use \`splatstudio\` in a terminal)" ;; esac
if [ -x "$TARGET/install.sh" ]; then echo "  remove it with: $TARGET/install.sh --uninstall"
else echo "  remove it with: bash $0 --uninstall"; fi
