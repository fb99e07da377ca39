"""Render the app icon's PNG sizes (and the Windows .ico) from the SVG in resources/icons/.

    python installers/render_icons.py

Uses ``rsvg-convert`` when it is on PATH (Debian: librsvg2-bin), else Qt's QSvgRenderer (PySide6). The
PNGs are kept in the repository in the freedesktop ``hicolor`` layout, so installers copy them as they are.
On macOS PyInstaller turns the 512 px PNG into an .icns itself.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP_ID = "io.splatstudio.SplatStudio"
ICONS = ROOT / "resources" / "icons"
SVG = ICONS / f"{APP_ID}.svg"
SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)


def png_path(size: int) -> Path:
    return ICONS / "hicolor" / f"{size}x{size}" / "apps" / f"{APP_ID}.png"


def render_rsvg(size: int, out: Path) -> None:
    subprocess.run(["rsvg-convert", "-w", str(size), "-h", str(size), "-o", str(out), str(SVG)], check=True)


def render_qt(size: int, out: Path) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication(["render_icons", "-platform", "offscreen"])  # noqa: F841
    renderer = QSvgRenderer(str(SVG))
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    if not image.save(str(out)):
        raise OSError(f"cannot write {out}")


def main() -> int:
    render = render_rsvg if shutil.which("rsvg-convert") else render_qt
    print(f"rendering {SVG.name} with {'rsvg-convert' if render is render_rsvg else 'QSvgRenderer'}")
    for size in SIZES:
        out = png_path(size)
        out.parent.mkdir(parents=True, exist_ok=True)
        render(size, out)
        print(f"  {out.relative_to(ROOT)}")
    from PIL import Image

    with Image.open(png_path(256)) as big:
        big.load()
        ico_sizes = [(s, s) for s in (16, 24, 32, 48, 64, 128, 256)]
        big.save(ICONS / "splatstudio.ico", sizes=ico_sizes)
    print(f"  {(ICONS / 'splatstudio.ico').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
