"""Niantic's compressed ``.spz`` Gaussian-splat format: read versions 2, 3 and 4, write 3 and 4.

Everything below follows the reference implementation ``nianticlabs/spz``: ``src/cc/load-spz.cc``,
``src/cc/splat-utils.h`` and ``include/spz/splat-types.h`` as of commit ``49df0b19ba6e`` (the stored
version that writes the version-4 container; ``splat-types.h`` read at ``8d13ea8c7184``), checked
against the gzip-only ``load-spz.cc`` of commits ``031fd0431182`` and ``95ab5a98bc40`` and the
``README.md`` (``047aae65d6d2``). All integers are little endian.

The format in two rooms: `container` (the gzip and NGSP containers, the header, the bounds checked
before anything is allocated) and `attributes` (what the six attribute arrays hold, the quantisation
both ways, the coordinate frame). This module is the API: encode / write, decode / read.

Decisions where the reference leaves a choice
---------------------------------------------
* Writing uses 12 fractional bits, as the reference, whenever the scene fits (|coordinate| < 2048);
  otherwise the largest count that fits, down to 0 (|coordinate| < 8388607.5). The header records it
  and every reader honours it. A scene with a coordinate beyond that is refused with a `FormatError`
  counting the splats outside; the reference would wrap such coordinates around silently.
* Values beyond what a byte field holds are clamped to it, as the reference does, even those whose
  scaled value overflows float32 (a log scale of 1e38).
* Zero quaternions are written as the identity (the reference would write NaN), and quaternions so
  small or large that float32 normalisation fails are normalised in float64.
* Alpha bytes 0 and 255 read back as ``logit(1e-8)`` and ``logit(1 - 1e-8)`` (about -18.4 and 18.4,
  which the float32 sigmoid maps to exactly 0 and 1) instead of the reference's infinities.
* SH degree 4 files are read with degree 4 dropped (`SplatCloud` holds degree 0..3); bands 1..3 are
  stored first, so they are unaffected.
* Extensions are skipped, as in a reference build without ``SPZ_BUILD_EXTENSIONS``: in version 4 the
  block before the TOC; in the gzip container up to 1 MiB after the attribute arrays when flag 0x2 is
  set (where ``49df0b19`` writes them; older reference builds such as ``031fd043`` wrote them before
  the arrays, and such files cannot be told apart and are rejected or misread).
* Empty clouds are written and read (N = 0, no streams), although the reference loader refuses them.
* Version 1 (float16 positions, never released) is refused.
"""

from __future__ import annotations

import os

from splatstudio.io.errors import FormatError, reports_out_of_memory
from splatstudio.io.ply import PathLike
from splatstudio.io.spz.attributes import (
    ATTRIBUTES,
    FLIP_P,
    FLIP_Q,
    FLIP_SH,
    MAX_COORDINATE,
    SH1_BITS,
    SH_REST_BITS,
    choose_fractional_bits,
    pack_attributes,
    unpack_attributes,
)
from splatstudio.io.spz.container import (
    FLAG_ANTIALIASED,
    GZIP_MAGIC,
    MAGIC_BYTES,
    MAX_FILE_BYTES,
    MAX_POINTS,
    NGSP_HEADER,
    WRITE_VERSIONS,
    SpzHeader,
    check_header,
    gzip_header,
    not_spz,
    pack_container,
    plausible_points,
    read_gzip,
    read_ngsp,
)
from splatstudio.model.atomic import atomic_open
from splatstudio.model.splatcloud import SplatCloud, sh_rest_count

__all__ = [
    "ATTRIBUTES",
    "FLIP_P",
    "FLIP_Q",
    "FLIP_SH",
    "MAX_COORDINATE",
    "MAX_POINTS",
    "SpzHeader",
    "choose_fractional_bits",
    "decode_spz",
    "decode_spz_header",
    "decode_spz_with_header",
    "encode_spz",
    "pack_attributes",
    "plausible_points",
    "read_spz",
    "read_spz_header",
    "write_spz",
]


def encode_spz(
    cloud: SplatCloud,
    version: int = 4,
    sh_degree: int | None = None,
    *,
    antialiased: bool = False,
    sh1_bits: int = SH1_BITS,
    sh_rest_bits: int = SH_REST_BITS,
    level: int | None = None,
    name: PathLike = "<memory>",
    rub: bool = False,
) -> bytes:
    """Encode `cloud` as a version 3 (gzip) or 4 (NGSP + zstd) ``.spz`` file and return its bytes.

    `sh_degree` drops the SH bands above it (it never adds any); `level` is the zstd (v4, default 12)
    or deflate (v3, default 6) compression level; `rub` stores the scene turned to RUB instead of in
    its own frame (see Coordinates in `attributes`). Invalid clouds raise `ValueError`; a coordinate SPZ
    cannot hold, a `FormatError` naming `name`.
    """
    if version not in WRITE_VERSIONS:
        raise ValueError(f"SPZ version {version} cannot be written; choose one of {WRITE_VERSIONS}")
    cloud.validate()
    if sh_degree is not None:
        if sh_degree not in range(4):
            raise ValueError(f"SH degree must be 0..3, got {sh_degree}")
        if sh_degree < cloud.sh_degree:
            cloud = SplatCloud(
                positions=cloud.positions,
                scales=cloud.scales,
                rotations=cloud.rotations,
                opacities=cloud.opacities,
                sh_dc=cloud.sh_dc,
                sh_rest=cloud.sh_rest[:, : sh_rest_count(sh_degree)],
            )
    bits, arrays = pack_attributes(cloud, version, sh1_bits=sh1_bits, sh_rest_bits=sh_rest_bits, name=name, rub=rub)
    flags = FLAG_ANTIALIASED if antialiased else 0
    return pack_container(version, (len(cloud), cloud.sh_degree, bits, flags), arrays, level)


def write_spz(
    path: PathLike,
    cloud: SplatCloud,
    version: int = 4,
    sh_degree: int | None = None,
    *,
    antialiased: bool = False,
    level: int | None = None,
    rub: bool = False,
) -> None:
    """Write `cloud` as ``.spz`` (version 4 by default, or 3), atomically (temporary file + ``os.replace``).

    `level` is the compression level (the reference's zstd 12 / deflate 6 by default); zstd level 3
    writes about five times faster for files about 3 % larger. Readers do not depend on it. `rub`: see
    Coordinates in `attributes` (off: the scene's own frame, as other tools write).
    """
    data = encode_spz(
        cloud, version=version, sh_degree=sh_degree, antialiased=antialiased, level=level, name=path, rub=rub
    )
    with atomic_open(path) as handle:
        handle.write(data)


def decode_spz_header(data: bytes, name: PathLike = "<memory>") -> SpzHeader:
    """Parse and validate just the header of ``.spz`` bytes (inflating only 16 bytes of a gzip stream)."""
    if data[:4] == MAGIC_BYTES:
        if len(data) < NGSP_HEADER.size:
            raise FormatError(name, f"truncated: {len(data)} bytes, less than the 32-byte NGSP header")
        version, n, degree, bits, flags = NGSP_HEADER.unpack_from(data)[1:6]
        header = SpzHeader(version, n, degree, bits, flags, "ngsp")
    elif data[:2] == GZIP_MAGIC:
        header = gzip_header(name, data)[0]
    else:
        raise not_spz(name, data)
    check_header(name, header, len(data))
    return header


def decode_spz_with_header(
    data: bytes, name: PathLike = "<memory>", rub: bool = False
) -> tuple[SplatCloud, SpzHeader]:
    """Decode ``.spz`` bytes into a `SplatCloud` (PLY storage convention) and its header; `rub`: the file
    holds RUB, to be turned to RDF (see Coordinates in `attributes`)."""
    if data[:4] == MAGIC_BYTES:
        header, arrays = read_ngsp(name, data)
    elif data[:2] == GZIP_MAGIC:
        header, arrays = read_gzip(name, data)
    else:
        raise not_spz(name, data)
    return unpack_attributes(name, header, arrays, rub), header


def decode_spz(data: bytes, name: PathLike = "<memory>", rub: bool = False) -> SplatCloud:
    """Decode ``.spz`` bytes; every problem with them raises `FormatError` mentioning `name`."""
    return decode_spz_with_header(data, name, rub)[0]


def _read_bytes(path: PathLike) -> bytes:
    size = os.path.getsize(path)
    if size > MAX_FILE_BYTES:
        raise FormatError(path, f"{size} bytes is more than the {MAX_FILE_BYTES} an SPZ file of this reader may have")
    with open(path, "rb") as handle:
        return handle.read()


@reports_out_of_memory
def read_spz_header(path: PathLike) -> SpzHeader:
    """Read and validate the header of an ``.spz`` file (version, point count, SH degree, flags)."""
    return decode_spz_header(_read_bytes(path), path)


@reports_out_of_memory
def read_spz(path: PathLike, rub: bool = False) -> SplatCloud:
    """Read an ``.spz`` file of version 2, 3 or 4 into a `SplatCloud`; `rub`: the file holds RUB
    coordinates, such as SplatStudio's own ``.spz`` files written before it stored the PLY frame."""
    return decode_spz(_read_bytes(path), path, rub)
