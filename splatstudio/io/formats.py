"""Registry of Gaussian-splat file formats, dispatching on the file extension.

`load_splats` and `save_splats` pick the reader or writer registered for the
extension of the path (case-insensitive); `convert` chains the two. Other
modules add formats with `register_format`. An unknown extension raises
`FormatError` naming it and listing the known ones.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from splatstudio.io.errors import FormatError
from splatstudio.io.ply import PathLike, read_splat_ply, write_splat_ply
from splatstudio.io.splat import read_splat, write_splat
from splatstudio.model.splatcloud import SplatCloud

Reader = Callable[[PathLike], SplatCloud]
Writer = Callable[..., None]


@dataclass(frozen=True)
class SplatFormat:
    """A registered format: extension (with dot), one-line description, reader and writer."""

    extension: str
    description: str
    read: Reader
    write: Writer


FORMATS: dict[str, SplatFormat] = {}
"""Known formats by lower-case extension, e.g. ``FORMATS[".ply"].description``."""


@dataclass(frozen=True)
class ConversionResult:
    """Outcome of `convert`: splats read from the source and written to the destination."""

    read: int
    written: int


def register_format(extension: str, description: str, read: Reader, write: Writer) -> None:
    """Register (or replace) the reader and writer for `extension`, e.g. ``".spz"``."""
    ext = extension.lower() if extension.startswith(".") else "." + extension.lower()
    FORMATS[ext] = SplatFormat(ext, description, read, write)


def format_for(path: PathLike) -> SplatFormat:
    """The registered format of `path`, by extension; `FormatError` if there is none."""
    name = os.path.basename(os.fspath(path)).lower()
    # the longest registered extension the name ends with (".compressed.ply" before ".ply")
    for ext in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(ext) and len(name) > len(ext):
            return FORMATS[ext]
    ext = os.path.splitext(name)[1]
    known = ", ".join(sorted(FORMATS))
    shown = f"'{ext}'" if ext else "no extension"
    raise FormatError(path, f"unknown splat file extension {shown}; known: {known}")


def load_splats(path: PathLike) -> SplatCloud:
    """Read a splat scene in any registered format."""
    return format_for(path).read(path)


def save_splats(cloud: SplatCloud, path: PathLike, **options: Any) -> None:
    """Write `cloud` in the format named by the extension of `path`; `options` go to the writer."""
    format_for(path).write(path, cloud, **options)


def convert(src: PathLike, dst: PathLike, **options: Any) -> ConversionResult:
    """Convert `src` to `dst` (formats from extensions); both are checked before reading."""
    format_for(src)
    format_for(dst)
    cloud = load_splats(src)
    save_splats(cloud, dst, **options)
    return ConversionResult(read=len(cloud), written=len(cloud))


register_format(
    ".ply",
    "3D Gaussian Splatting PLY (reference trainer layout, full SH)",
    read_splat_ply,
    write_splat_ply,
)
register_format(
    ".splat",
    "antimatter15 .splat (32 bytes per splat, colour only, 8-bit rotation)",
    read_splat,
    write_splat,
)
