"""The two containers of an ``.spz`` file (gzip for versions 2-3, NGSP + zstd for version 4): the header,
the bounds a reader checks before it allocates, and the attribute arrays as bytes (what those hold:
`splatstudio.io.spz.attributes`).

Containers
----------

**Versions 2 and 3** are one gzip stream (deflate, default level, as ``compressGzipped``) holding a
16-byte header followed by the attribute arrays back to back:

====== ========= ===============================================================
bytes  type      field
====== ========= ===============================================================
0-3    uint32    magic ``0x5053474e`` (the bytes ``NGSP``)
4-7    uint32    version: 2 or 3 (like the reference reader, this one also takes 4 here)
8-11   uint32    number of points N
12     uint8     SH degree 0..4
13     uint8     fractional bits of the fixed-point positions (12 from the reference writer)
14     uint8     flags: 0x1 antialiased (mip-splatting), 0x2 has extensions
15     uint8     reserved, 0
====== ========= ===============================================================

**Version 4** is not compressed as a whole: a 32-byte plain header (``NgspFileHeader``), an optional
extension block, a table of contents and one zstd frame per non-empty attribute array:

====== ========= ===============================================================
bytes  type      field
====== ========= ===============================================================
0-3    uint32    magic ``0x5053474e`` (``NGSP``)
4-7    uint32    version: 4
8-11   uint32    number of points N
12     uint8     SH degree 0..4
13     uint8     fractional bits
14     uint8     flags (as above)
15     uint8     number of streams S: the non-empty arrays (6, or 5 without SH, 0 when N = 0)
16-19  uint32    TOC byte offset T (32 + size of the extension block)
20-31  12 bytes  reserved, 0
32-T             extension records ``[u32 type][u32 length][payload]`` (flag 0x2)
T-...  S x 16    TOC: per stream uint64 compressed size, uint64 uncompressed size
...              the S zstd streams (level 12 in the reference), back to back, to the end of file
====== ========= ===============================================================

Readers check before they allocate: N at most `MAX_POINTS`; N no larger than the compressed size
allows (version 4: the reference's own bound, size x 1024 / 9; gzip: deflate cannot expand more than
1032-fold); beyond `SMALL_CLOUD` splats, N no larger than the file's size in bytes (`plausible_points`:
a bomb of repeated bytes passes the bounds before, truthfully, and its decoded cloud would take
thousands of times the file's size in memory); the 16-byte gzip header is inflated alone, then
exactly the bytes the header calls for (plus one, to detect extra data) with ``max_length``; every
zstd stream must declare the exact size its attribute needs and is read incrementally into a buffer
of that size. Any inconsistency, a
truncated or corrupt stream, trailing data or a bad field raises `FormatError` naming the file.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np
import zstandard

from splatstudio.io.errors import FormatError
from splatstudio.io.ply import PathLike
from splatstudio.io.spz.attributes import (
    ATTRIBUTES,
    FIRST_SMALLEST_THREE_VERSION,
    MAX_FRACTIONAL_BITS,
    SPZ_MAX_SH_DEGREE,
    SPZ_SH_DIMS,
)
from splatstudio.model.splatcloud import sh_rest_count

MAGIC = 0x5053474E
MAGIC_BYTES = b"NGSP"
GZIP_MAGIC = b"\x1f\x8b"
LEGACY_HEADER = struct.Struct("<IIIBBBB")  # 16 bytes, inside the gzip stream (versions 1-3)
NGSP_HEADER = struct.Struct("<IIIBBBBI12s")  # 32 bytes, plain (version 4)
TOC_ENTRY = struct.Struct("<QQ")  # compressed size, uncompressed size

READ_VERSIONS = (2, 3, 4)
WRITE_VERSIONS = (3, 4)
FIRST_NGSP_VERSION = 4  # MIN_ZSTD_SPZ_HEADER_VERSION

FLAG_ANTIALIASED = 0x1
FLAG_HAS_EXTENSIONS = 0x2

ZSTD_LEVEL = 12  # compressZstd default
GZIP_LEVEL = 6  # Z_DEFAULT_COMPRESSION

MAX_POINTS = 30_000_000
"""Largest point count accepted from a header (about 2.4 GB of attributes at SH degree 3)."""
ZSTD_MAX_RATIO = 1024  # kMaxCompressionRatio of the reference
MIN_BYTES_PER_POINT = 9  # kMinBytesPerPoint: the positions stream alone
DEFLATE_MAX_RATIO = 1032  # deflate cannot expand data more than this
MIN_REAL_BYTES_PER_POINT = 1
"""Compressed bytes a real splat takes at the least. Real scenes take several: positions, rotations and
colours of distinct splats barely compress. Only repeated values (a bomb) get below one byte."""
SMALL_CLOUD = 1 << 18
"""Splats a file may declare whatever its size: synthetic scenes of repeated values legitimately compress
far better than real ones, and a cloud this small decodes in modest memory (figures in NOTES.md)."""
MAX_EXTENSION_BYTES = 1 << 20  # extension records tolerated after the arrays of a gzip stream
MAX_FILE_BYTES = 4 << 30


@dataclass(frozen=True)
class SpzHeader:
    """The header fields of an ``.spz`` file; `container` is ``"gzip"`` (versions 2-3) or ``"ngsp"`` (4)."""

    version: int
    num_points: int
    sh_degree: int
    fractional_bits: int
    flags: int
    container: str

    @property
    def antialiased(self) -> bool:
        """The scene was trained with antialiasing (mip-splatting) and should be rendered so."""
        return bool(self.flags & FLAG_ANTIALIASED)

    @property
    def has_extensions(self) -> bool:
        return bool(self.flags & FLAG_HAS_EXTENSIONS)

    @property
    def sh_dim(self) -> int:
        """SH coefficients per channel, without DC."""
        return SPZ_SH_DIMS[self.sh_degree]

    def attribute_sizes(self) -> list[tuple[str, int]]:
        """Byte size of each attribute array, in file order (including empty ones)."""
        n = self.num_points
        rotation_bytes = 4 if self.version >= FIRST_SMALLEST_THREE_VERSION else 3
        sizes = (9 * n, n, 3 * n, 3 * n, rotation_bytes * n, 3 * self.sh_dim * n)
        return list(zip(ATTRIBUTES, sizes, strict=True))


# --------------------------------------------------------------------------- writing


def pack_container(version: int, header: tuple[int, int, int, int], arrays: list[np.ndarray], level: int | None) -> bytes:
    """The bytes of a version 3 (gzip) or 4 (NGSP + zstd) file holding the six attribute arrays; `header` is
    (points, SH degree, fractional bits, flags) and `level` the zstd (default 12) or deflate (default 6)
    compression level."""
    n, degree, bits, flags = header
    if version >= FIRST_NGSP_VERSION:
        compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL if level is None else level)
        raw = [a for a in arrays if a.size]
        chunks = [compressor.compress(a) for a in raw]
        head = NGSP_HEADER.pack(MAGIC, version, n, degree, bits, flags, len(chunks), NGSP_HEADER.size, bytes(12))
        toc = b"".join(TOC_ENTRY.pack(len(c), a.size) for c, a in zip(chunks, raw, strict=True))
        return b"".join([head, toc, *chunks])
    deflate = zlib.compressobj(GZIP_LEVEL if level is None else level, zlib.DEFLATED, 16 + zlib.MAX_WBITS, 9)
    parts = [deflate.compress(LEGACY_HEADER.pack(MAGIC, version, n, degree, bits, flags, 0))]
    parts += [deflate.compress(a) for a in arrays]
    parts.append(deflate.flush())
    return b"".join(parts)


# --------------------------------------------------------------------------- reading


def check_header(path: PathLike, header: SpzHeader, compressed_size: int) -> None:
    """Validate the fixed fields and bound N by `MAX_POINTS` and by what the file could hold."""
    if header.version == 1:
        raise FormatError(path, "SPZ version 1 (float16 positions, never released) is not supported")
    if header.version not in READ_VERSIONS:
        raise FormatError(path, f"unsupported SPZ version {header.version} (this reader handles 2, 3 and 4)")
    if header.container == "ngsp" and header.version < FIRST_NGSP_VERSION:
        raise FormatError(path, f"version {header.version} in an NGSP (version 4) container")
    if header.sh_degree > SPZ_MAX_SH_DEGREE:
        raise FormatError(path, f"SH degree {header.sh_degree} in the header; SPZ allows 0..{SPZ_MAX_SH_DEGREE}")
    if header.fractional_bits > MAX_FRACTIONAL_BITS:
        raise FormatError(
            path, f"{header.fractional_bits} fractional position bits in the header; at most {MAX_FRACTIONAL_BITS}"
        )
    n = header.num_points
    if n > MAX_POINTS:
        raise FormatError(path, f"header claims {n} splats, more than the {MAX_POINTS} this reader accepts")
    if header.container == "ngsp":
        limit = compressed_size * ZSTD_MAX_RATIO // MIN_BYTES_PER_POINT
        if n > limit:
            raise FormatError(path, f"header claims {n} splats but a {compressed_size}-byte file holds at most {limit}")
    else:
        body = LEGACY_HEADER.size + sum(size for _, size in header.attribute_sizes())
        if body > compressed_size * DEFLATE_MAX_RATIO:
            raise FormatError(
                path,
                f"header claims {n} splats ({body} bytes) but {compressed_size} bytes of gzip cannot hold that much",
            )
    if n > plausible_points(compressed_size):
        raise FormatError(
            path,
            f"header claims {n} splats but the file has only {compressed_size} bytes: real SPZ scenes take several "
            f"bytes per splat, so this is refused as a decompression bomb (loading it would take about "
            f"{_decoded_gb(header):.1f} GB of memory)",
        )


def plausible_points(compressed_size: int) -> int:
    """The most splats an ``.spz`` file of `compressed_size` bytes may declare: any count up to `SMALL_CLOUD`,
    beyond it one per `MIN_REAL_BYTES_PER_POINT` bytes of the file."""
    return max(SMALL_CLOUD, compressed_size // MIN_REAL_BYTES_PER_POINT)


def _decoded_gb(header: SpzHeader) -> float:
    """Size of the decoded `SplatCloud` (float32, SH up to degree 3): what a bomb would make us allocate."""
    floats = 3 + 3 + 4 + 1 + 3 + 3 * sh_rest_count(min(header.sh_degree, 3))
    return header.num_points * floats * 4 / 1e9


def gzip_header(path: PathLike, data: bytes) -> tuple[SpzHeader, zlib._Decompress]:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        head = inflater.decompress(data, LEGACY_HEADER.size)
    except zlib.error as exc:
        raise FormatError(path, f"corrupt gzip stream ({exc})") from None
    if len(head) < LEGACY_HEADER.size:
        what = "holds only" if inflater.eof else "is truncated after"
        raise FormatError(path, f"the gzip stream {what} {len(head)} bytes, less than the 16-byte SPZ header")
    magic, version, n, degree, bits, flags, _reserved = LEGACY_HEADER.unpack(head)
    if magic != MAGIC:
        raise FormatError(path, "the gzip stream does not start with the SPZ magic 'NGSP'")
    return SpzHeader(version, n, degree, bits, flags, "gzip"), inflater


def read_gzip(path: PathLike, data: bytes) -> tuple[SpzHeader, dict[str, np.ndarray]]:
    header, inflater = gzip_header(path, data)
    check_header(path, header, len(data))
    sizes = header.attribute_sizes()
    body = sum(size for _, size in sizes)
    allowed = body + (MAX_EXTENSION_BYTES if header.has_extensions else 0)
    try:
        rest = inflater.decompress(inflater.unconsumed_tail, allowed + 1)
    except zlib.error as exc:
        raise FormatError(path, f"corrupt gzip stream ({exc})") from None
    what = f"{header.num_points} splats of SH degree {header.sh_degree} need {body} bytes after the header"
    if len(rest) > allowed:  # (with the cap reached, unconsumed_tail holds input not yet inflated)
        raise FormatError(path, f"the stream holds more data than the header calls for: {what}")
    if len(rest) < body:
        if not inflater.eof:
            raise FormatError(path, f"truncated gzip stream: it ends after {len(rest)} bytes of data; {what}")
        raise FormatError(path, f"missing data: the stream holds {len(rest)} bytes; {what}")
    if not inflater.eof:
        raise FormatError(path, "truncated gzip stream (no end of stream and checksum)")
    if inflater.unused_data:
        raise FormatError(path, f"{len(inflater.unused_data)} trailing bytes after the gzip stream")
    flat = np.frombuffer(rest, dtype=np.uint8)
    arrays, offset = {}, 0
    for name, size in sizes:
        arrays[name] = flat[offset : offset + size]
        offset += size
    return header, arrays


def _read_zstd_stream(path: PathLike, chunk: memoryview, size: int, name: str) -> np.ndarray:
    """Decompress one zstd stream into exactly `size` bytes, never producing more than `size` + 1."""
    out = np.empty(size, dtype=np.uint8)
    view, filled = memoryview(out), 0
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(chunk, read_across_frames=True)
        while filled < size:
            got = reader.readinto(view[filled:])
            if not got:
                break
            filled += got
        extra = reader.read(1)
    except zstandard.ZstdError as exc:
        raise FormatError(path, f"corrupt zstd stream '{name}' ({exc})") from None
    if filled < size:
        raise FormatError(path, f"zstd stream '{name}' holds {filled} bytes; the header calls for {size}")
    if extra:
        raise FormatError(path, f"zstd stream '{name}' holds more than the {size} bytes the header calls for")
    return out


def read_ngsp(path: PathLike, data: bytes) -> tuple[SpzHeader, dict[str, np.ndarray]]:
    if len(data) < NGSP_HEADER.size:
        raise FormatError(path, f"truncated: {len(data)} bytes, less than the 32-byte NGSP header")
    _magic, version, n, degree, bits, flags, num_streams, toc_offset, _reserved = NGSP_HEADER.unpack_from(data)
    header = SpzHeader(version, n, degree, bits, flags, "ngsp")
    check_header(path, header, len(data))
    sizes = [(name, size) for name, size in header.attribute_sizes() if size]
    if num_streams != len(sizes):
        raise FormatError(
            path, f"header lists {num_streams} streams; {n} splats of SH degree {degree} need {len(sizes)}"
        )
    if toc_offset < NGSP_HEADER.size:
        raise FormatError(path, f"table of contents at byte {toc_offset}, inside the 32-byte header")
    offset = toc_offset + TOC_ENTRY.size * num_streams
    if offset > len(data):
        raise FormatError(path, f"truncated: the table of contents ends at byte {offset} of {len(data)}")
    spans = []
    for index, (name, size) in enumerate(sizes):
        compressed, uncompressed = TOC_ENTRY.unpack_from(data, toc_offset + TOC_ENTRY.size * index)
        if uncompressed != size:
            raise FormatError(path, f"stream '{name}' holds {uncompressed} bytes; {n} splats need {size}")
        if compressed > len(data) - offset:
            raise FormatError(path, f"truncated: stream '{name}' runs past the end of the file")
        spans.append((name, size, offset, compressed))
        offset += compressed
    if offset != len(data):
        raise FormatError(path, f"{len(data) - offset} trailing bytes after the last stream")
    whole = memoryview(data)
    arrays = {name: np.zeros(0, dtype=np.uint8) for name in ATTRIBUTES}
    for name, size, start, compressed in spans:
        arrays[name] = _read_zstd_stream(path, whole[start : start + compressed], size, name)
    return header, arrays


def not_spz(name: PathLike, data: bytes) -> FormatError:
    if not data:
        return FormatError(name, "empty file")
    return FormatError(name, f"not an SPZ file: starts with {bytes(data[:4])!r}, neither gzip nor 'NGSP'")
