"""PLY reading and writing for Gaussian-splat scenes and plain point clouds.

Reading is done *by property name*, never by position, with a small header
parser of our own and ``numpy.fromfile`` for binary bodies, so that sizes are
checked against the file before anything large is allocated and a million
splats load in a fraction of a second.

Accepted on read (3DGS scenes, `read_splat_ply`):

* ``format ascii 1.0``, ``binary_little_endian 1.0``, ``binary_big_endian 1.0``;
* any property order, extra properties, missing ``nx ny nz``;
* colour as ``f_dc_0..2`` or as ``red green blue`` (integer types are scaled
  by their maximum, floats are taken as 0..1) which are converted to SH DC;
* ``f_rest_*`` counts of 0, 9, 24 or 45 (SH degree 0..3), channel-major:
  file column ``j = c * K + k`` holds ``sh_rest[:, k, c]``.

Written (`write_splat_ply`) is exactly the layout of the reference trainer:
binary little endian float32 ``x y z nx ny nz f_dc_0..2 f_rest_0.. opacity
scale_0..2 rot_0..3``. Plain coloured point clouds (``x y z nx ny nz red green
blue``, as the reference trainer's ``input.ply``) use `write_points_ply` and
`read_points_ply`. Every writer goes through a temporary file in the target
folder followed by ``os.replace``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from splatstudio.io.errors import FormatError, reports_out_of_memory
from splatstudio.model.atomic import atomic_open
from splatstudio.model.splatcloud import SplatCloud, all_finite, rgb_to_sh_dc, sh_rest_count

PathLike = str | os.PathLike[str]

MAX_HEADER_BYTES = 1 << 20

PLY_TYPES: dict[str, str] = {
    "char": "i1", "int8": "i1",
    "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4",
    "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4",
    "double": "f8", "float64": "f8",
}  # fmt: skip

_BYTE_ORDER = {"binary_little_endian": "<", "binary_big_endian": ">", "ascii": "="}
_REST_RE = re.compile(r"f_rest_(\d+)$")
_VALID_REST_COUNTS = (0, 9, 24, 45)


# --------------------------------------------------------------------------- atomic output


# --------------------------------------------------------------------------- header


@dataclass(frozen=True)
class PlyProperty:
    """One property line: ``property <type> <name>`` or ``property list <ct> <it> <name>``."""

    name: str
    dtype: str
    is_list: bool = False


@dataclass
class PlyElement:
    """One element line and the properties that follow it."""

    name: str
    count: int
    properties: list[PlyProperty]

    @property
    def is_scalar(self) -> bool:
        return not any(p.is_list for p in self.properties)

    def record_dtype(self, order: str) -> np.dtype:
        return np.dtype([(p.name, order + p.dtype) for p in self.properties])


@dataclass
class PlyHeader:
    """Parsed PLY header; `body_offset` is the byte where the data starts."""

    format: str
    elements: list[PlyElement]
    body_offset: int

    @property
    def byte_order(self) -> str:
        return _BYTE_ORDER[self.format]

    def element(self, path: PathLike, name: str) -> tuple[int, PlyElement]:
        for index, element in enumerate(self.elements):
            if element.name == name:
                return index, element
        raise FormatError(path, f"PLY has no '{name}' element")


def read_ply_header(path: PathLike) -> PlyHeader:
    """Parse and validate the header of a PLY file; raise `FormatError` if it is malformed."""
    with open(path, "rb") as handle:
        head = handle.read(MAX_HEADER_BYTES)
    if not head.startswith(b"ply"):
        raise FormatError(path, "not a PLY file (missing 'ply' magic line)")
    end = head.find(b"\nend_header")
    newline = head.find(b"\n", end + 1) if end >= 0 else -1
    if newline < 0:
        raise FormatError(path, "PLY header has no end_header line (truncated or not a PLY file)")
    try:
        text = head[:end].decode("ascii")
    except UnicodeDecodeError:
        raise FormatError(path, "PLY header is not ASCII text") from None
    if head[end + 1 : newline].strip() != b"end_header":
        raise FormatError(path, "malformed end_header line")
    lines = [line.strip() for line in text.replace("\r", "").split("\n")]
    if lines[0] != "ply":
        raise FormatError(path, "not a PLY file (first line is not 'ply')")
    return _parse_header_lines(path, lines[1:], newline + 1)


def _parse_header_lines(path: PathLike, lines: list[str], body_offset: int) -> PlyHeader:
    fmt: str | None = None
    elements: list[PlyElement] = []
    for number, line in enumerate(lines, start=2):
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        keyword = words[0]
        if keyword == "format":
            fmt = _parse_format(path, words, fmt)
        elif keyword == "element":
            elements.append(_parse_element(path, words, elements))
        elif keyword == "property":
            if not elements:
                raise FormatError(path, f"header line {number}: property before any element")
            _add_property(path, elements[-1], _parse_property(path, words, number))
        else:
            raise FormatError(path, f"header line {number}: unknown keyword '{keyword[:40]}'")
    if fmt is None:
        raise FormatError(path, "PLY header has no format line")
    return PlyHeader(fmt, elements, body_offset)


def _parse_format(path: PathLike, words: list[str], previous: str | None) -> str:
    if previous is not None:
        raise FormatError(path, "PLY header has more than one format line")
    if len(words) != 3 or words[1] not in _BYTE_ORDER or words[2] != "1.0":
        raise FormatError(path, f"unsupported PLY format line '{' '.join(words)[:80]}'")
    return words[1]


def _parse_element(path: PathLike, words: list[str], elements: list[PlyElement]) -> PlyElement:
    if len(words) != 3 or not words[2].isdigit():
        raise FormatError(path, f"malformed element line '{' '.join(words)[:80]}'")
    if any(e.name == words[1] for e in elements):
        raise FormatError(path, f"element '{words[1]}' is declared twice")
    return PlyElement(words[1], int(words[2]), [])


def _parse_property(path: PathLike, words: list[str], number: int) -> PlyProperty:
    if len(words) == 3 and words[1] in PLY_TYPES:
        return PlyProperty(words[2], PLY_TYPES[words[1]])
    if len(words) == 5 and words[1] == "list" and words[2] in PLY_TYPES and words[3] in PLY_TYPES:
        return PlyProperty(words[4], PLY_TYPES[words[3]], is_list=True)
    raise FormatError(path, f"header line {number}: malformed property '{' '.join(words)[:80]}'")


def _add_property(path: PathLike, element: PlyElement, prop: PlyProperty) -> None:
    if any(p.name == prop.name for p in element.properties):
        raise FormatError(path, f"property '{prop.name}' of '{element.name}' is declared twice")
    element.properties.append(prop)


# --------------------------------------------------------------------------- vertex table


class VertexTable:
    """The vertex element of a PLY file, addressable by property name."""

    def __init__(self, path: PathLike, element: PlyElement, data: np.ndarray, start: int = 0) -> None:
        self.path = path
        self.element = element
        self.start = start  # index of this table's first vertex in the file (tables may be chunks)
        self._data = data
        self._types = {p.name: p.dtype for p in element.properties}
        self._index = {p.name: i for i, p in enumerate(element.properties)}

    def __len__(self) -> int:
        return len(self._data)

    def has(self, *names: str) -> bool:
        return all(name in self._types for name in names)

    def names(self) -> list[str]:
        return list(self._types)

    def dtype_of(self, name: str) -> np.dtype:
        return np.dtype(self._types[name])

    def require(self, names: list[str], what: str) -> None:
        missing = [n for n in names if n not in self._types]
        if missing:
            noun = "property" if len(missing) == 1 else "properties"
            raise FormatError(self.path, f"{what}: missing {noun} {', '.join(missing)}")

    def floats(self, names: list[str]) -> np.ndarray:
        """Columns `names` as a contiguous (N, len(names)) float32 array, checked finite."""
        block = np.empty((len(self), len(names)), dtype=np.float32)
        self.fill(block, names)
        return block

    def fill(self, out: np.ndarray, names: list[str]) -> None:
        """Copy columns `names` into the (N, len(names)) view `out`, checking they are finite.

        Doubles beyond the float32 range become infinite and are reported as such.
        """
        if not names:
            return
        with np.errstate(over="ignore"):
            self._copy_columns(out, names)
        if not all_finite(out):
            self._raise_non_finite(names, out)

    def _copy_columns(self, out: np.ndarray, names: list[str]) -> None:
        if self._data.dtype.names is not None:
            for i, name in enumerate(names):
                out[:, i] = self._data[name]
            return
        columns = [self._index[name] for name in names]
        first = columns[0]
        if columns == list(range(first, first + len(columns))):  # the usual layout: a slice
            out[...] = self._data[:, first : first + len(columns)]
        else:
            out[...] = self._data[:, columns]

    def _raise_non_finite(self, names: list[str], block: np.ndarray) -> None:
        rows, cols = np.nonzero(~np.isfinite(block))
        raise FormatError(
            self.path,
            f"property '{names[cols[0]]}' holds a non-finite value (NaN or inf) at vertex "
            f"{self.start + int(rows[0])}; {len(rows)} non-finite value(s) in this block",
        )


def read_vertex_table(path: PathLike) -> VertexTable:
    """Read the ``vertex`` element of any PLY file after validating header and size."""
    header, index, element = _vertex_element(path)
    if header.format == "ascii":
        data = _read_ascii_vertices(path, header, index)
    else:
        data = _read_binary_vertices(path, header, index)
    return VertexTable(path, element, data)


BLOCK_ROWS = 1 << 18
"""Vertices per block when a large binary PLY is read piecewise (about 64 MB at SH degree 3)."""


def iter_vertex_tables(path: PathLike, rows: int | None = None) -> Iterator[VertexTable]:
    """The ``vertex`` element in blocks of at most `rows` vertices (binary files; an ASCII file is one
    block), so a large file is never held in memory twice: read a block, copy its columns, drop it."""
    header, index, element = _vertex_element(path)
    if header.format == "ascii":
        yield VertexTable(path, element, _read_ascii_vertices(path, header, index))
        return
    offset, dtype, width = _binary_layout(path, header, index)
    rows = rows or BLOCK_ROWS
    per_row = dtype.itemsize * width
    for start in range(0, max(element.count, 1), rows):
        count = min(rows, element.count - start)
        data = np.fromfile(path, dtype=dtype, count=count * width, offset=offset + start * per_row)
        yield VertexTable(path, element, data if dtype.names is not None else data.reshape(count, width), start)


def _vertex_element(path: PathLike) -> tuple[PlyHeader, int, PlyElement]:
    header = read_ply_header(path)
    index, element = header.element(path, "vertex")
    if not element.is_scalar:
        raise FormatError(path, "vertex element has list properties, which are not supported")
    if not element.properties:
        raise FormatError(path, "vertex element has no properties")
    return header, index, element


def _binary_layout(path: PathLike, header: PlyHeader, index: int) -> tuple[int, np.dtype, int]:
    """(byte offset of the vertices, dtype of one value or of one record, values per record), after
    checking the file is long enough for what the header claims."""
    order = header.byte_order
    offset = header.body_offset
    for before in header.elements[:index]:
        if not before.is_scalar:
            raise FormatError(path, f"cannot locate vertices: element '{before.name}' before them has list properties")
        offset += before.count * before.record_dtype(order).itemsize
    element = header.elements[index]
    record = element.record_dtype(order)
    size = os.path.getsize(path)
    needed = offset + element.count * record.itemsize
    if needed > size:
        raise FormatError(
            path,
            f"header claims {element.count} vertices but the file holds {size} bytes "
            f"({needed} needed at {record.itemsize} bytes per vertex); the file is truncated or corrupt",
        )
    types = {p.dtype for p in element.properties}
    if len(types) == 1:
        return offset, np.dtype(order + types.pop()), len(element.properties)
    return offset, record, 1


def _read_binary_vertices(path: PathLike, header: PlyHeader, index: int) -> np.ndarray:
    offset, dtype, width = _binary_layout(path, header, index)
    count = header.elements[index].count
    data = np.fromfile(path, dtype=dtype, count=count * width, offset=offset)
    return data if dtype.names is not None else data.reshape(count, width)


def _read_ascii_vertices(path: PathLike, header: PlyHeader, index: int) -> np.ndarray:
    element = header.elements[index]
    width = len(element.properties)
    size = os.path.getsize(path)
    # every value needs at least one digit and, but for the last, one separator
    if element.count * width * 2 - 1 > size - header.body_offset:
        raise FormatError(path, f"header claims {element.count} vertices but the file holds {size} bytes")
    with open(path, "rb") as handle:
        handle.seek(header.body_offset)
        body = handle.read()
    try:
        lines = body.decode("ascii").splitlines()
    except UnicodeDecodeError:
        raise FormatError(path, "ASCII PLY body holds non-ASCII bytes") from None
    lines = [line for line in lines if line.strip()]
    skip = sum(e.count for e in header.elements[:index])
    rows = lines[skip : skip + element.count]
    if len(rows) < element.count:
        raise FormatError(path, f"header claims {element.count} vertices but the file holds {len(rows)} vertex lines")
    tokens = " ".join(rows).split()
    if len(tokens) != element.count * width:
        raise FormatError(path, f"ASCII vertex lines hold {len(tokens)} values, expected {element.count} x {width}")
    try:
        values = np.array(tokens, dtype=np.float64)
    except ValueError:
        raise FormatError(path, "ASCII vertex data holds a value that is not a number") from None
    return values.reshape(element.count, width)


# --------------------------------------------------------------------------- 3DGS scenes

POSITION = ["x", "y", "z"]
NORMALS = ["nx", "ny", "nz"]
SH_DC = ["f_dc_0", "f_dc_1", "f_dc_2"]
RGB = ["red", "green", "blue"]
SCALES = ["scale_0", "scale_1", "scale_2"]
ROTATIONS = ["rot_0", "rot_1", "rot_2", "rot_3"]


def splat_ply_property_names(sh_degree: int) -> list[str]:
    """Property names, in order, of the reference 3DGS PLY layout for `sh_degree`."""
    rest = [f"f_rest_{j}" for j in range(3 * sh_rest_count(sh_degree))]
    return [*POSITION, *NORMALS, *SH_DC, *rest, "opacity", *SCALES, *ROTATIONS]


@reports_out_of_memory
def read_splat_ply(path: PathLike) -> SplatCloud:
    """Read a 3DGS scene PLY into a `SplatCloud`; raise `FormatError` on any problem.

    The vertices are read in blocks straight into the cloud's arrays: peak memory is one cloud plus
    one block, whatever the file's size."""
    cloud: SplatCloud | None = None
    for table in iter_vertex_tables(path):
        if cloud is None:
            table.require([*POSITION, "opacity", *SCALES, *ROTATIONS], "not a Gaussian-splat PLY")
            rest_names = _rest_names(table)
            k = len(rest_names) // 3
            n = table.element.count
            has_normals = table.has(*NORMALS)
            cloud = SplatCloud(
                positions=np.empty((n, 3), np.float32), scales=np.empty((n, 3), np.float32),
                rotations=np.empty((n, 4), np.float32), opacities=np.empty(n, np.float32),
                sh_dc=np.empty((n, 3), np.float32), sh_rest=np.empty((n, k, 3), np.float32),
                normals=np.empty((n, 3), np.float32) if has_normals else None)
        rows = slice(table.start, table.start + len(table))
        table.fill(cloud.positions[rows], POSITION)
        table.fill(cloud.scales[rows], SCALES)
        table.fill(cloud.rotations[rows], ROTATIONS)
        table.fill(cloud.opacities[rows, None], ["opacity"])
        cloud.sh_dc[rows] = _read_sh_dc(table)
        for channel in range(3):  # file columns are channel-major: j = channel * k + coefficient
            table.fill(cloud.sh_rest[rows, :, channel], rest_names[channel * k : (channel + 1) * k])
        if cloud.normals is not None:
            table.fill(cloud.normals[rows], NORMALS)
    assert cloud is not None  # iter_vertex_tables yields at least one (possibly empty) block
    return cloud


def _rest_names(table: VertexTable) -> list[str]:
    indices = sorted(int(m.group(1)) for name in table.names() if (m := _REST_RE.match(name)))
    if len(indices) not in _VALID_REST_COUNTS:
        raise FormatError(table.path, f"{len(indices)} f_rest_* properties; expected 0, 9, 24 or 45 (SH degree 0..3)")
    if indices != list(range(len(indices))):
        raise FormatError(table.path, f"f_rest_* properties are not numbered 0..{len(indices) - 1}")
    return [f"f_rest_{j}" for j in indices]


def _read_sh_dc(table: VertexTable) -> np.ndarray:
    if table.has(*SH_DC):
        return table.floats(SH_DC)
    table.require(RGB, "not a Gaussian-splat PLY: no f_dc_0..2 and")
    return rgb_to_sh_dc(_unit_colours(table))


def _unit_colours(table: VertexTable) -> np.ndarray:
    """``red green blue`` as floats in [0, 1]: integers scaled by their type maximum."""
    colours = table.floats(RGB)
    kind = table.dtype_of("red")
    if kind.kind in "iu":
        colours /= np.float32(np.iinfo(kind).max)
    return colours


def write_splat_ply(path: PathLike, cloud: SplatCloud, sh_degree: int | None = None) -> None:
    """Write `cloud` in the reference 3DGS layout, optionally reducing its SH degree."""
    cloud.validate()
    if sh_degree is not None and sh_degree != cloud.sh_degree:
        if sh_degree > cloud.sh_degree:
            raise ValueError(f"cannot raise SH degree from {cloud.sh_degree} to {sh_degree}")
        cloud = cloud.with_sh_degree(sh_degree)
    n, k = len(cloud), cloud.sh_rest.shape[1]
    names = splat_ply_property_names(cloud.sh_degree)
    table = np.empty((n, len(names)), dtype="<f4")
    table[:, 0:3] = cloud.positions
    table[:, 3:6] = 0.0 if cloud.normals is None else cloud.normals
    table[:, 6:9] = cloud.sh_dc
    table[:, 9 : 9 + 3 * k] = cloud.sh_rest.transpose(0, 2, 1).reshape(n, 3 * k)
    table[:, 9 + 3 * k] = cloud.opacities
    table[:, 10 + 3 * k : 13 + 3 * k] = cloud.scales
    table[:, 13 + 3 * k :] = cloud.rotations
    header = _binary_header(n, [("float", name) for name in names])
    with atomic_open(path) as handle:
        handle.write(header)
        table.tofile(handle)


def _binary_header(count: int, properties: list[tuple[str, str]]) -> bytes:
    lines = ["ply", "format binary_little_endian 1.0", f"element vertex {count}"]
    lines += [f"property {kind} {name}" for kind, name in properties]
    lines.append("end_header")
    return ("\n".join(lines) + "\n").encode("ascii")


# --------------------------------------------------------------------------- point clouds


class PointsData(NamedTuple):
    """A plain point cloud: float32 positions, optional uint8 colours and float32 normals."""

    xyz: np.ndarray
    rgb: np.ndarray | None
    normals: np.ndarray | None


_POINT_FIELDS = [("float", name) for name in POSITION + NORMALS] + [("uchar", name) for name in RGB]


def write_points_ply(path: PathLike, xyz: np.ndarray, rgb_uint8: np.ndarray, normals: np.ndarray | None = None) -> None:
    """Write a coloured point cloud as ``x y z nx ny nz red green blue`` (binary LE)."""
    xyz = np.asarray(xyz, dtype=np.float32).reshape(-1, 3)
    n = len(xyz)
    rgb = np.asarray(rgb_uint8)
    if rgb.shape != (n, 3):
        raise ValueError(f"rgb_uint8 has shape {rgb.shape}, expected ({n}, 3)")
    record = np.dtype([(name, "<f4" if kind == "float" else "u1") for kind, name in _POINT_FIELDS])
    data = np.zeros(n, dtype=record)
    for axis, name in enumerate(POSITION):
        data[name] = xyz[:, axis]
    if normals is not None:
        normals = np.asarray(normals, dtype=np.float32).reshape(n, 3)
        for axis, name in enumerate(NORMALS):
            data[name] = normals[:, axis]
    for channel, name in enumerate(RGB):
        data[name] = np.clip(rgb[:, channel], 0, 255).astype(np.uint8)
    with atomic_open(path) as handle:
        handle.write(_binary_header(n, _POINT_FIELDS))
        data.tofile(handle)


@reports_out_of_memory
def read_points_ply(path: PathLike) -> PointsData:
    """Read a point cloud PLY by name: ``x y z`` required, colours and normals optional."""
    table = read_vertex_table(path)
    table.require(POSITION, "not a point-cloud PLY")
    rgb = None
    if table.has(*RGB):
        rgb = np.clip(np.round(_unit_colours(table) * 255.0), 0, 255).astype(np.uint8)
    normals = table.floats(NORMALS) if table.has(*NORMALS) else None
    return PointsData(table.floats(POSITION), rgb, normals)
