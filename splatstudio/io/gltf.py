"""Binary glTF (``.glb``) with the Khronos ``KHR_gaussian_splatting`` extension: write, and read.

The extension (ratified by Khronos; ``extensions/2.0/Khronos/KHR_gaussian_splatting`` in the glTF
repository) stores a scene as a mesh primitive of ``mode`` 0 (POINTS) whose ``extensions`` hold
``KHR_gaussian_splatting`` with ``kernel`` ``"ellipse"`` and ``colorSpace`` ``"srgb_rec709_display"``
(both required), and whose vertex attributes are the splats:

================================================ ====== ==========================================
attribute                                        type   content
================================================ ====== ==========================================
``POSITION``                                     VEC3   centres (float; ``min``/``max`` as glTF asks)
``KHR_gaussian_splatting:ROTATION``              VEC4   unit quaternions, glTF's (x, y, z, w) order
``KHR_gaussian_splatting:SCALE``                 VEC3   standard deviations, *linear* (``exp`` of the
                                                        PLY's log scales), never negative
``KHR_gaussian_splatting:OPACITY``               SCALAR ``sigmoid`` of the PLY's opacity, 0..1
``KHR_gaussian_splatting:SH_DEGREE_0_COEF_0``    VEC3   the SH DC coefficients (RGB), as in the PLY
``KHR_gaussian_splatting:SH_DEGREE_l_COEF_n``    VEC3   degree ``l`` = 1..3, ``n`` = 0..2l (m = -l..l);
                                                        every coefficient of a degree, or none
``COLOR_0``                                      VEC4   optional fallback for viewers without splats:
                                                        the DC colour decoded from sRGB to linear (glTF's
                                                        COLOR_0 is linear) and the opacity, bytes
================================================ ====== ==========================================

The spec's real spherical harmonics (with the Condon-Shortley phase) are the 3DGS reference's basis, so the
coefficients go through as they are. Coordinates: glTF is y up, x left, z forward; the 3DGS PLY frame is
x right, y down, z forward. As PlayCanvas's ``splat-transform`` (3.10, its ``write-glb.ts`` converts from
its PLY space, a 180-degree turn about z, to glTF's), this writer turns the scene 180 degrees about z:
``(x, y, z) -> (-x, -y, z)``, the quaternion ``q -> q_z180 ⊗ q``, and every SH coefficient of odd order m
negated (the even ``n`` of each degree). The reader undoes it, so a ``.glb`` written by either comes back in
the PLY frame. Every float attribute is written as float32; one scene, one node, one mesh, one primitive,
one buffer view per attribute, each 4-byte aligned; the JSON chunk is padded with spaces, the binary chunk
with zeros.

The reader takes what the spec allows a writer to choose: any of the spec's component types (normalised
integers for rotation and opacity, integers for scale, as with ``KHR_mesh_quantization``), interleaved
views (``byteStride``), several splat primitives (concatenated in scene order), and a node's transform
when it is a similarity (rotation, uniform scale, translation; applied with the SH bands turned, as an
edit's transform). It refuses, with a `FormatError` naming the file, what it cannot decode: an external
buffer (a ``.gltf`` beside a ``.bin``), sparse accessors, and required extensions such as
``EXT_meshopt_compression`` or ``KHR_gaussian_splatting_compression_spz_2``. Every accessor is checked
against its view and the view against the binary chunk before anything is read.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from splatstudio.io.errors import FormatError, load_json_text, reports_out_of_memory
from splatstudio.io.ply import PathLike
from splatstudio.model.atomic import atomic_open
from splatstudio.model.geometry import quaternion_to_matrix
from splatstudio.model.splatcloud import SH_C0, SplatCloud, logit, normalize_quaternions, sh_rest_count, sigmoid
from splatstudio.model.transform import Similarity, TransformError, transform_cloud

EXTENSION = "KHR_gaussian_splatting"
PREFIX = EXTENSION + ":"
KERNEL = "ellipse"
COLOR_SPACE = "srgb_rec709_display"

GLB_MAGIC = 0x46546C67  # "glTF"
GLB_VERSION = 2
CHUNK_JSON = 0x4E4F534A  # "JSON"
CHUNK_BIN = 0x004E4942  # "BIN\0"
ARRAY_BUFFER = 34962
MAX_GLB_BYTES = 2**32 - 1  # the header's length is a uint32

BYTE, UNSIGNED_BYTE, SHORT, UNSIGNED_SHORT, UNSIGNED_INT, FLOAT = 5120, 5121, 5122, 5123, 5125, 5126
COMPONENTS = {BYTE: np.dtype("<i1"), UNSIGNED_BYTE: np.dtype("<u1"), SHORT: np.dtype("<i2"),
              UNSIGNED_SHORT: np.dtype("<u2"), UNSIGNED_INT: np.dtype("<u4"), FLOAT: np.dtype("<f4")}
WIDTHS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}
DEGREE_COEFFICIENTS = {1: 3, 2: 5, 3: 7}
KNOWN_EXTENSIONS = {EXTENSION, "KHR_mesh_quantization", "KHR_materials_unlit"}
_LARGEST_SCALE = np.float32(np.finfo(np.float32).max)
_TINY_SCALE = np.finfo(np.float32).tiny
_ALPHA_EPS = 1e-8


def sh_attribute(degree: int, n: int) -> str:
    """``KHR_gaussian_splatting:SH_DEGREE_{degree}_COEF_{n}``."""
    return f"{PREFIX}SH_DEGREE_{degree}_COEF_{n}"


def to_gltf_frame(cloud: SplatCloud, back: bool = False) -> SplatCloud:
    """`cloud` turned 180 degrees about z, from the 3DGS PLY frame to glTF's (``back``: from glTF's to the
    PLY's, the same turn, its quaternion negated so that a round trip gives each quaternion back as it was).
    Positions ``(-x, -y, z)``; quaternions ``q_z180 ⊗ q``; SH coefficients of odd order negated (sh_rest's
    even indices: m = -1 and 1 of degree 1, -1 and 1 of degree 2, -3, -1, 1, 3 of degree 3)."""
    positions = cloud.positions.copy()
    positions[:, :2] *= -1.0
    w, x, y, z = cloud.rotations.T
    rotations = np.stack([-z, -y, x, w], axis=1)  # (0, 0, 0, 1) ⊗ (w, x, y, z)
    if back:
        rotations = -rotations
    rest = cloud.sh_rest.copy()
    rest[:, 0::2] *= -1.0
    return SplatCloud(positions=positions, scales=cloud.scales.copy(), rotations=rotations,
                      opacities=cloud.opacities.copy(), sh_dc=cloud.sh_dc.copy(), sh_rest=rest)


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


@dataclass(frozen=True)
class _Attribute:
    semantic: str
    type: str
    component: int
    normalized: bool
    count: int

    @property
    def byte_length(self) -> int:
        return self.count * WIDTHS[self.type] * COMPONENTS[self.component].itemsize


def _attributes(n: int, degree: int) -> list[_Attribute]:
    out = [_Attribute("POSITION", "VEC3", FLOAT, False, n),
           _Attribute("COLOR_0", "VEC4", UNSIGNED_BYTE, True, n),
           _Attribute(PREFIX + "ROTATION", "VEC4", FLOAT, False, n),
           _Attribute(PREFIX + "SCALE", "VEC3", FLOAT, False, n),
           _Attribute(PREFIX + "OPACITY", "SCALAR", FLOAT, False, n),
           _Attribute(sh_attribute(0, 0), "VEC3", FLOAT, False, n)]
    for d in range(1, degree + 1):
        out += [_Attribute(sh_attribute(d, i), "VEC3", FLOAT, False, n) for i in range(DEGREE_COEFFICIENTS[d])]
    return out


def _values(cloud: SplatCloud, attribute: _Attribute) -> np.ndarray:
    """The bytes-to-be of one attribute of `cloud` (already in the glTF frame)."""
    name = attribute.semantic
    if name == "POSITION":
        return cloud.positions
    if name == "COLOR_0":
        rgba = np.empty((len(cloud), 4), dtype=np.float32)
        rgba[:, :3] = _srgb_to_linear(np.clip(0.5 + SH_C0 * cloud.sh_dc, 0.0, 1.0))
        rgba[:, 3] = sigmoid(cloud.opacities)
        return np.clip(np.rint(rgba * 255.0), 0, 255).astype(np.uint8)
    if name == PREFIX + "ROTATION":
        return normalize_quaternions(cloud.rotations)[:, [1, 2, 3, 0]]
    if name == PREFIX + "SCALE":
        with np.errstate(over="ignore"):
            return np.minimum(np.exp(cloud.scales), _LARGEST_SCALE)
    if name == PREFIX + "OPACITY":
        return sigmoid(cloud.opacities)
    degree, n = (int(part) for part in name.removeprefix(PREFIX + "SH_DEGREE_").split("_COEF_"))
    if degree == 0:
        return cloud.sh_dc
    return cloud.sh_rest[:, sh_rest_count(degree - 1) + n]


def write_glb(path: PathLike, cloud: SplatCloud, sh_degree: int | None = None) -> None:
    """Write `cloud` as a ``.glb`` with ``KHR_gaussian_splatting``, atomically (temporary file +
    ``os.replace``). `sh_degree` drops the SH bands above it."""
    cloud.validate()
    if len(cloud) == 0:
        raise FormatError(path, "a glTF file cannot hold a scene of no splats (an accessor counts at least one)")
    if sh_degree is not None and sh_degree < cloud.sh_degree:
        cloud = cloud.with_sh_degree(sh_degree)
    from splatstudio import __version__

    gltf_cloud = to_gltf_frame(cloud)
    attributes = _attributes(len(cloud), cloud.sh_degree)
    offsets, end = [], 0
    for attribute in attributes:
        offsets.append(end)
        end += -(-attribute.byte_length // 4) * 4
    lo, hi = gltf_cloud.positions.min(axis=0), gltf_cloud.positions.max(axis=0)
    accessors = []
    for i, attribute in enumerate(attributes):
        accessor: dict[str, Any] = {"bufferView": i, "componentType": attribute.component,
                                    "count": attribute.count, "type": attribute.type}
        if attribute.normalized:
            accessor["normalized"] = True
        if attribute.semantic == "POSITION":
            accessor["min"], accessor["max"] = [float(v) for v in lo], [float(v) for v in hi]
        accessors.append(accessor)
    document = {
        "asset": {"version": "2.0", "generator": f"SplatStudio {__version__}"},
        "extensionsUsed": [EXTENSION],
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": "splats"}],
        "meshes": [{"primitives": [{
            "mode": 0,
            "attributes": {attribute.semantic: i for i, attribute in enumerate(attributes)},
            "extensions": {EXTENSION: {"kernel": KERNEL, "colorSpace": COLOR_SPACE,
                                       "projection": "perspective", "sortingMethod": "cameraDistance"}},
        }]}],
        "buffers": [{"byteLength": end}],
        "bufferViews": [{"buffer": 0, "byteOffset": offset, "byteLength": attribute.byte_length,
                         "target": ARRAY_BUFFER} for offset, attribute in zip(offsets, attributes, strict=True)],
        "accessors": accessors,
    }
    text = json.dumps(document, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    total = 12 + 8 + len(text) + 8 + end
    if total > MAX_GLB_BYTES:
        raise FormatError(path, f"{len(cloud):,} splats make a {total / 2**30:.1f} GiB glTF file, above the "
                                "4 GiB a .glb can hold: lower the SH degree or the splat count")
    with atomic_open(path) as handle:
        handle.write(struct.pack("<III", GLB_MAGIC, GLB_VERSION, total))
        handle.write(struct.pack("<II", len(text), CHUNK_JSON))
        handle.write(text)
        handle.write(struct.pack("<II", end, CHUNK_BIN))
        for attribute in attributes:
            data = np.ascontiguousarray(_values(gltf_cloud, attribute), dtype=COMPONENTS[attribute.component])
            handle.write(memoryview(data).cast("B"))
            handle.write(b"\0" * (-attribute.byte_length % 4))


# ---------------------------------------------------------------------------------------------- reading


@reports_out_of_memory
def read_glb(path: PathLike) -> SplatCloud:
    """Read the ``KHR_gaussian_splatting`` primitives of a ``.glb`` into one cloud in the PLY frame."""
    with open(path, "rb") as handle:
        data = handle.read()
    document, binary = _chunks(path, data)
    used = set(document.get("extensionsUsed") or [])
    unknown = sorted(set(document.get("extensionsRequired") or []) - KNOWN_EXTENSIONS)
    if unknown:
        raise FormatError(path, f"needs the glTF extension(s) {', '.join(unknown)}, which this reader does not "
                                "decode (convert the file without compression)")
    if EXTENSION not in used:
        raise FormatError(path, f"is a glTF file without Gaussian splats (no {EXTENSION} in extensionsUsed)")
    reader = _Reader(path, document, binary)
    parts = []
    for mesh, matrix in reader.instances():
        for primitive in _list(path, mesh.get("primitives"), "a mesh's primitives"):
            if isinstance(primitive, dict) and EXTENSION in (primitive.get("extensions") or {}):
                cloud = reader.primitive(primitive)
                if not np.allclose(matrix, np.eye(4), atol=1e-12):
                    try:
                        cloud = transform_cloud(cloud, Similarity.from_matrix(matrix))
                    except TransformError as exc:
                        raise FormatError(path, f"a splat node's transform is not a rotation, uniform scale and "
                                                f"translation ({exc})") from None
                parts.append(cloud)
    if not parts:
        raise FormatError(path, f"no mesh primitive in its scene carries {EXTENSION}")
    degree = min(part.sh_degree for part in parts)
    parts = [part if part.sh_degree == degree else part.with_sh_degree(degree) for part in parts]
    joined = parts[0] if len(parts) == 1 else SplatCloud(
        **{name: np.concatenate([getattr(part, name) for part in parts])
           for name in ("positions", "scales", "rotations", "opacities", "sh_dc", "sh_rest")})
    return to_gltf_frame(joined, back=True)


def _chunks(path: PathLike, data: bytes) -> tuple[dict[str, Any], bytes]:
    if len(data) < 20:
        raise FormatError(path, f"is {len(data)} bytes, too short for a .glb header")
    magic, version, length = struct.unpack_from("<III", data, 0)
    if magic != GLB_MAGIC:
        raise FormatError(path, "is not a binary glTF file (no 'glTF' magic)")
    if version != GLB_VERSION:
        raise FormatError(path, f"is binary glTF version {version}; only version 2 is read")
    if length > len(data):
        raise FormatError(path, f"its header claims {length:,} bytes but the file holds {len(data):,}")
    chunks: list[tuple[int, bytes]] = []
    offset = 12
    while offset + 8 <= length:
        size, kind = struct.unpack_from("<II", data, offset)
        if offset + 8 + size > length:
            raise FormatError(path, f"a chunk of {size:,} bytes runs past the end of the file")
        chunks.append((kind, data[offset + 8:offset + 8 + size]))
        offset += 8 + size + (-size % 4)
    if not chunks or chunks[0][0] != CHUNK_JSON:
        raise FormatError(path, "its first chunk is not the JSON chunk")
    try:
        text = chunks[0][1].decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(path, "its JSON chunk is not UTF-8 text") from None
    document = load_json_text(path, text)
    if not isinstance(document, dict):
        raise FormatError(path, "its JSON is not an object")
    binary = chunks[1][1] if len(chunks) > 1 and chunks[1][0] == CHUNK_BIN else b""
    return document, binary


def _list(path: PathLike, value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise FormatError(path, f"{what} is not a list")
    return value


def _index(path: PathLike, items: list[Any], value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < len(items) \
            or not isinstance(items[value], dict):
        raise FormatError(path, f"{what} {value!r} names no such entry")
    return items[value]


def _node_matrix(path: PathLike, node: dict[str, Any]) -> np.ndarray:
    if "matrix" in node:
        m = np.asarray(node["matrix"], dtype=np.float64)
        if m.shape != (16,) or not np.isfinite(m).all():
            raise FormatError(path, "a node's matrix is not 16 finite numbers")
        return m.reshape(4, 4).T  # column-major
    t = np.asarray(node.get("translation", [0, 0, 0]), dtype=np.float64)
    q = np.asarray(node.get("rotation", [0, 0, 0, 1]), dtype=np.float64)
    s = np.asarray(node.get("scale", [1, 1, 1]), dtype=np.float64)
    if t.shape != (3,) or q.shape != (4,) or s.shape != (3,) or not all(np.isfinite(a).all() for a in (t, q, s)):
        raise FormatError(path, "a node's translation, rotation or scale is malformed")
    r = quaternion_to_matrix(q[[3, 0, 1, 2]]) if np.linalg.norm(q) else np.eye(3)  # glTF's order: x, y, z, w
    m = np.eye(4)
    m[:3, :3] = r * s
    m[:3, 3] = t
    return m


class _Reader:
    def __init__(self, path: PathLike, document: dict[str, Any], binary: bytes) -> None:
        self.path, self.document, self.binary = path, document, binary
        self.accessors = _list(path, document.get("accessors"), "accessors")
        self.views = _list(path, document.get("bufferViews"), "bufferViews")
        self.buffers = _list(path, document.get("buffers"), "buffers")
        self.nodes = _list(path, document.get("nodes"), "nodes")
        self.meshes = _list(path, document.get("meshes"), "meshes")

    def instances(self) -> Iterator[tuple[dict[str, Any], np.ndarray]]:
        """Each mesh a node of the scene instantiates, with the node's global matrix (depth first)."""
        path = self.path
        scenes = _list(path, self.document.get("scenes"), "scenes")
        if scenes:
            scene = _index(path, scenes, self.document.get("scene", 0), "the scene")
            roots = _list(path, scene.get("nodes"), "a scene's nodes")
        else:  # no scene: every node no other node holds
            held = {c for node in self.nodes if isinstance(node, dict) for c in node.get("children") or []}
            roots = [i for i in range(len(self.nodes)) if i not in held]
        stack = [(root, np.eye(4), 0) for root in reversed(roots)]
        while stack:
            index, parent, depth = stack.pop()
            if depth > 64:
                raise FormatError(path, "its node hierarchy is deeper than 64 levels (or holds a cycle)")
            node = _index(path, self.nodes, index, "a node")
            matrix = parent @ _node_matrix(path, node)
            if "mesh" in node:
                yield _index(path, self.meshes, node["mesh"], "a node's mesh"), matrix
            for child in reversed(_list(path, node.get("children"), "a node's children")):
                stack.append((child, matrix, depth + 1))

    def primitive(self, primitive: dict[str, Any]) -> SplatCloud:
        path = self.path
        if primitive.get("mode", 4) != 0:
            raise FormatError(path, f"a {EXTENSION} primitive has mode {primitive.get('mode', 4)}; the "
                                    "extension needs POINTS (0)")
        extension = primitive["extensions"][EXTENSION]
        if not isinstance(extension, dict):
            raise FormatError(path, f"its {EXTENSION} object is not an object")
        kernel = extension.get("kernel", KERNEL)  # required by the spec; a draft-era file may lack it
        if kernel != KERNEL:
            raise FormatError(path, f"its splats use the kernel {kernel!r}; only {KERNEL!r} is read")
        attributes = primitive.get("attributes")
        if not isinstance(attributes, dict):
            raise FormatError(path, "a splat primitive has no attributes")
        missing = [name for name in ("POSITION", PREFIX + "ROTATION", PREFIX + "SCALE", PREFIX + "OPACITY",
                                     sh_attribute(0, 0)) if name not in attributes]
        if missing:
            raise FormatError(path, f"a splat primitive lacks the attribute(s) {', '.join(missing)}")
        positions = self.accessor(attributes["POSITION"], "VEC3", "POSITION", needs_view=True)
        n = len(positions)
        scales = self.accessor(attributes[PREFIX + "SCALE"], "VEC3", "SCALE", n)
        rotations = self.accessor(attributes[PREFIX + "ROTATION"], "VEC4", "ROTATION", n)
        opacity = self.accessor(attributes[PREFIX + "OPACITY"], "SCALAR", "OPACITY", n)[:, 0]
        dc = self.accessor(attributes[sh_attribute(0, 0)], "VEC3", "SH_DEGREE_0_COEF_0", n)
        rest = []
        for degree, count in DEGREE_COEFFICIENTS.items():
            present = [sh_attribute(degree, i) in attributes for i in range(count)]
            if not any(present):
                break
            if not all(present):
                raise FormatError(path, f"its SH degree {degree} is partly defined ({sum(present)} of {count} "
                                        "coefficients)")
            rest += [self.accessor(attributes[sh_attribute(degree, i)], "VEC3", f"SH_DEGREE_{degree}_COEF_{i}", n)
                     for i in range(count)]
        for name, values in (("position", positions), ("scale", scales), ("rotation", rotations),
                             ("opacity", opacity), ("colour", dc), *(("SH", r) for r in rest)):
            if not np.isfinite(values).all():
                raise FormatError(path, f"a splat has a non-finite {name} (NaN or inf)")
        if (scales < 0).any():
            raise FormatError(path, "a splat has a negative scale (KHR_gaussian_splatting stores linear scales; "
                                    "log scales come from a writer of a draft of the extension)")
        if ((opacity < 0) | (opacity > 1)).any():
            raise FormatError(path, "a splat's opacity is outside 0..1 (KHR_gaussian_splatting stores it after "
                                    "the sigmoid)")
        return SplatCloud(
            positions=positions,
            scales=np.log(np.maximum(scales.astype(np.float64), _TINY_SCALE)),
            rotations=rotations[:, [3, 0, 1, 2]],
            opacities=logit(opacity, eps=_ALPHA_EPS),
            sh_dc=dc,
            sh_rest=np.stack(rest, axis=1) if rest else None,
        )

    def accessor(self, index: Any, kind: str, name: str, count: int | None = None,
                 needs_view: bool = False) -> np.ndarray:
        """Accessor `index` as float32 (count, width), integers normalised where the accessor says so."""
        path = self.path
        accessor = _index(path, self.accessors, index, f"the {name} accessor")
        if accessor.get("type") != kind:
            raise FormatError(path, f"the {name} accessor is {accessor.get('type')!r}, not {kind}")
        component = accessor.get("componentType")
        if component not in COMPONENTS or component == UNSIGNED_INT:
            raise FormatError(path, f"the {name} accessor has the component type {component!r}")
        if "sparse" in accessor:
            raise FormatError(path, f"the {name} accessor is sparse, which this reader does not decode")
        n = accessor.get("count")
        if not isinstance(n, int) or isinstance(n, bool) or n < 1 or (count is not None and n != count):
            raise FormatError(path, f"the {name} accessor counts {n!r} splats"
                                    + (f", not the {count:,} of POSITION" if count is not None else ""))
        dtype, width = COMPONENTS[component], WIDTHS[kind]
        element = dtype.itemsize * width
        if "bufferView" not in accessor:
            if needs_view:
                raise FormatError(path, f"the {name} accessor has no data")
            return np.zeros((n, width), dtype=np.float32)
        view = _index(path, self.views, accessor["bufferView"], f"the {name} accessor's bufferView")
        buffer = _index(path, self.buffers, view.get("buffer"), "a bufferView's buffer")
        if "uri" in buffer:
            raise FormatError(path, "its data is in an external buffer; only a .glb holding its own binary "
                                    "chunk is read")
        start = _offset(path, view.get("byteOffset", 0)) + _offset(path, accessor.get("byteOffset", 0))
        stride = view.get("byteStride") or element
        view_end = _offset(path, view.get("byteOffset", 0)) + _offset(path, view.get("byteLength"))
        if not isinstance(stride, int) or stride < element or start % dtype.itemsize or stride % dtype.itemsize:
            raise FormatError(path, f"the {name} accessor's layout (offset {start}, stride {stride}) is invalid")
        if start + stride * (n - 1) + element > min(view_end, len(self.binary)):
            raise FormatError(path, f"the {name} accessor runs past the end of its data")
        raw = np.ndarray((n, width), dtype=dtype, buffer=self.binary, offset=start,
                         strides=(stride, dtype.itemsize))
        values = raw.astype(np.float32)
        if accessor.get("normalized") and dtype.kind in "iu":
            top = float(np.iinfo(dtype).max)
            values = np.maximum(values / top, -1.0) if dtype.kind == "i" else values / top
        return values


def _offset(path: PathLike, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise FormatError(path, f"a byte offset or length {value!r} is not a whole number")
    return value

