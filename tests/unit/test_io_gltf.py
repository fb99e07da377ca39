"""Tests for `splatstudio.io.gltf`: ``.glb`` with Khronos's ``KHR_gaussian_splatting`` (issue 23, Delivery).

The file's structure is checked against the extension's specification (the attribute semantics, accessor
types and component types it names, the required ``kernel`` and ``colorSpace``, linear scales, opacity after
the sigmoid, unit xyzw quaternions, POINTS) and against glTF 2.0's own rules for a GLB (chunk layout and
padding, 4-byte aligned views, POSITION's min/max); the frame change against the edits' own similarity
transform; reading against files laid out the ways the spec allows a writer (normalised integers,
interleaved views, node transforms). Tests against PlayCanvas's ``splat-transform`` and Khronos's glTF
validator are in ``tests/interop``.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _clouds import random_cloud

from splatstudio.io.errors import FormatError
from splatstudio.io.formats import FORMATS, load_splats, save_splats
from splatstudio.io.gltf import (
    COLOR_SPACE,
    EXTENSION,
    KERNEL,
    PREFIX,
    read_glb,
    sh_attribute,
    to_gltf_frame,
    write_glb,
)
from splatstudio.model.splatcloud import SH_C0, SplatCloud, normalize_quaternions, sigmoid
from splatstudio.model.transform import Similarity, sh_basis, transform_cloud

Z180 = np.diag([-1.0, -1.0, 1.0])


def parse(path: Path) -> tuple[dict[str, Any], bytes]:
    """The JSON and binary chunks of a .glb, checking glTF 2.0's GLB layout on the way."""
    data = path.read_bytes()
    magic, version, length = struct.unpack_from("<III", data)
    assert (magic, version, length) == (0x46546C67, 2, len(data))
    json_length, json_type = struct.unpack_from("<II", data, 12)
    assert json_type == 0x4E4F534A and json_length % 4 == 0
    text = data[20:20 + json_length]
    assert text == text.rstrip(b" ") + b" " * (len(text) - len(text.rstrip(b" ")))  # padded with spaces
    bin_length, bin_type = struct.unpack_from("<II", data, 20 + json_length)
    assert bin_type == 0x004E4942 and bin_length % 4 == 0 and 28 + json_length + bin_length == len(data)
    return json.loads(text), data[28 + json_length:]


def accessor_values(document: dict[str, Any], binary: bytes, index: int) -> np.ndarray:
    accessor = document["accessors"][index]
    view = document["bufferViews"][accessor["bufferView"]]
    dtype = {5121: "<u1", 5126: "<f4"}[accessor["componentType"]]
    width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}[accessor["type"]]
    start = view["byteOffset"] + accessor.get("byteOffset", 0)
    return np.frombuffer(binary, dtype=dtype, count=accessor["count"] * width, offset=start).reshape(-1, width)


def test_the_file_is_what_the_extension_specifies(tmp_path: Path) -> None:
    cloud = random_cloud(300, sh_degree=3, seed=1)
    write_glb(tmp_path / "scene.glb", cloud)
    document, binary = parse(tmp_path / "scene.glb")
    assert document["asset"]["version"] == "2.0" and EXTENSION in document["extensionsUsed"]
    assert "extensionsRequired" not in document  # viewers without splats fall back to points
    (primitive,) = document["meshes"][document["nodes"][document["scenes"][document["scene"]]["nodes"][0]]["mesh"]][
        "primitives"]
    assert primitive["mode"] == 0  # POINTS
    ext = primitive["extensions"][EXTENSION]
    assert ext["kernel"] == KERNEL == "ellipse" and ext["colorSpace"] == COLOR_SPACE == "srgb_rec709_display"
    attributes = primitive["attributes"]
    expected = {"POSITION": ("VEC3", 5126), "COLOR_0": ("VEC4", 5121), PREFIX + "ROTATION": ("VEC4", 5126),
                PREFIX + "SCALE": ("VEC3", 5126), PREFIX + "OPACITY": ("SCALAR", 5126),
                **{sh_attribute(d, n): ("VEC3", 5126) for d, k in ((0, 1), (1, 3), (2, 5), (3, 7)) for n in range(k)}}
    assert set(attributes) == set(expected) and len(expected) == 5 + 16
    for name, (kind, component) in expected.items():
        accessor = document["accessors"][attributes[name]]
        assert (accessor["type"], accessor["componentType"], accessor["count"]) == (kind, component, 300), name
        view = document["bufferViews"][accessor["bufferView"]]
        assert view["buffer"] == 0 and view["byteOffset"] % 4 == 0 and view["target"] == 34962
        assert view["byteOffset"] + view["byteLength"] <= document["buffers"][0]["byteLength"] == len(binary)
    assert document["accessors"][attributes["COLOR_0"]]["normalized"] is True

    turned = to_gltf_frame(cloud)
    position = document["accessors"][attributes["POSITION"]]
    values = accessor_values(document, binary, attributes["POSITION"])
    np.testing.assert_array_equal(values, turned.positions)
    assert position["min"] == values.min(axis=0).tolist() and position["max"] == values.max(axis=0).tolist()
    scale = accessor_values(document, binary, attributes[PREFIX + "SCALE"])
    np.testing.assert_allclose(scale, np.exp(cloud.scales), rtol=1e-6)  # linear, never negative
    opacity = accessor_values(document, binary, attributes[PREFIX + "OPACITY"])[:, 0]
    np.testing.assert_allclose(opacity, sigmoid(cloud.opacities), rtol=1e-6)
    rotation = accessor_values(document, binary, attributes[PREFIX + "ROTATION"])
    np.testing.assert_allclose(np.linalg.norm(rotation, axis=1), 1.0, atol=1e-6)  # unit, xyzw
    np.testing.assert_allclose(rotation, normalize_quaternions(turned.rotations)[:, [1, 2, 3, 0]], atol=1e-7)
    np.testing.assert_array_equal(accessor_values(document, binary, attributes[sh_attribute(0, 0)]), cloud.sh_dc)
    np.testing.assert_array_equal(accessor_values(document, binary, attributes[sh_attribute(2, 4)]),
                                  turned.sh_rest[:, 3 + 4])
    colour = accessor_values(document, binary, attributes["COLOR_0"]).astype(float) / 255
    srgb = np.clip(0.5 + SH_C0 * cloud.sh_dc, 0, 1)
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)  # COLOR_0 is linear
    assert np.abs(colour[:, :3] - linear).max() <= 0.5 / 255 + 1e-6
    assert np.abs(colour[:, 3] - sigmoid(cloud.opacities)).max() <= 0.5 / 255 + 1e-6


def test_the_frame_turn_is_half_a_turn_about_z_for_centres_shapes_and_colours() -> None:
    """Our sign flips equal the edits' general similarity transform by R_z(180°), and the turned scene
    looks the same along the turned directions."""
    cloud = random_cloud(200, sh_degree=3, seed=2)
    ours = to_gltf_frame(cloud)
    general = transform_cloud(cloud, Similarity(1.0, Z180))
    np.testing.assert_allclose(ours.positions, general.positions, atol=1e-6)
    q1, q2 = normalize_quaternions(ours.rotations), normalize_quaternions(general.rotations)
    np.testing.assert_allclose(np.abs(np.einsum("ij,ij->i", q1, q2)), 1.0, atol=1e-6)
    np.testing.assert_allclose(ours.sh_rest, general.sh_rest, atol=1e-3)
    d = np.random.default_rng(3).normal(size=(200, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    before = np.einsum("nk,nkc->nc", sh_basis(d)[:, 1:], cloud.sh_rest)
    after = np.einsum("nk,nkc->nc", sh_basis(d @ Z180.T)[:, 1:], ours.sh_rest)
    np.testing.assert_allclose(after, before, atol=1e-5)
    np.testing.assert_array_equal(to_gltf_frame(ours).positions, cloud.positions)  # its own inverse


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_round_trip_is_exact_but_for_the_activations(tmp_path: Path, degree: int) -> None:
    cloud = random_cloud(257, sh_degree=degree, seed=degree)
    save_splats(cloud, tmp_path / "a.glb")
    back = load_splats(tmp_path / "a.glb")
    assert back.sh_degree == degree and len(back) == 257
    np.testing.assert_array_equal(back.positions, cloud.positions)
    np.testing.assert_allclose(back.scales, cloud.scales, atol=1e-5)
    np.testing.assert_allclose(sigmoid(back.opacities), sigmoid(cloud.opacities), atol=1e-6)
    np.testing.assert_allclose(normalize_quaternions(back.rotations), normalize_quaternions(cloud.rotations),
                               atol=1e-6)
    np.testing.assert_array_equal(back.sh_dc, cloud.sh_dc)
    np.testing.assert_array_equal(back.sh_rest, cloud.sh_rest)


def test_the_format_is_registered_and_lower_sh_degrees_are_kept(tmp_path: Path) -> None:
    assert ".glb" in FORMATS and "KHR_gaussian_splatting" in FORMATS[".glb"].description
    write_glb(tmp_path / "one.glb", random_cloud(10, sh_degree=3), sh_degree=1)
    assert read_glb(tmp_path / "one.glb").sh_degree == 1
    with pytest.raises(FormatError, match="no splats"):
        write_glb(tmp_path / "none.glb", SplatCloud.empty())


def _glb(document: dict[str, Any], binary: bytes) -> bytes:
    text = json.dumps(document).encode()
    text += b" " * (-len(text) % 4)
    binary += b"\0" * (-len(binary) % 4)
    return (struct.pack("<III", 0x46546C67, 2, 28 + len(text) + len(binary)) + struct.pack("<II", len(text), 0x4E4F534A)
            + text + struct.pack("<II", len(binary), 0x004E4942) + binary)


def quantised_file(node: dict[str, Any]) -> tuple[bytes, dict[str, np.ndarray]]:
    """Two splats laid out as another writer may (the spec's other component types, one interleaved view
    for position and rotation), already in the glTF frame."""
    positions = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.25]], np.float32)
    rotations = np.array([[0, 0, 32767, 0], [0, 0, 0, 32767]], np.int16)  # xyzw: z 180°, identity
    interleaved = b"".join(p.tobytes() + r.tobytes() for p, r in zip(positions, rotations, strict=True))  # stride 20
    scales = np.array([[10, 20, 30], [40, 50, 60]], np.uint8)
    opacity = np.array([65535, 32768], np.uint16)
    dc = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], np.float32)
    binary = interleaved + scales.tobytes() + b"\0\0" + opacity.tobytes() + dc.tobytes()
    doc = {
        "asset": {"version": "2.0"}, "extensionsUsed": [EXTENSION, "KHR_mesh_quantization"],
        "extensionsRequired": ["KHR_mesh_quantization"],
        "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [node], "meshes": [{"primitives": [{
            "mode": 0, "extensions": {EXTENSION: {"kernel": "ellipse", "colorSpace": "srgb_rec709_display"}},
            "attributes": {"POSITION": 0, PREFIX + "ROTATION": 1, PREFIX + "SCALE": 2, PREFIX + "OPACITY": 3,
                           sh_attribute(0, 0): 4}}]}],
        "buffers": [{"byteLength": len(binary)}],
        "bufferViews": [{"buffer": 0, "byteOffset": 0, "byteLength": 40, "byteStride": 20},
                        {"buffer": 0, "byteOffset": 40, "byteLength": 6},
                        {"buffer": 0, "byteOffset": 48, "byteLength": 4},
                        {"buffer": 0, "byteOffset": 52, "byteLength": 24}],
        "accessors": [{"bufferView": 0, "componentType": 5126, "count": 2, "type": "VEC3"},
                      {"bufferView": 0, "byteOffset": 12, "componentType": 5122, "normalized": True, "count": 2,
                       "type": "VEC4"},
                      {"bufferView": 1, "componentType": 5121, "count": 2, "type": "VEC3"},
                      {"bufferView": 2, "componentType": 5123, "normalized": True, "count": 2, "type": "SCALAR"},
                      {"bufferView": 3, "componentType": 5126, "count": 2, "type": "VEC3"}],
    }
    return _glb(doc, binary), {"positions": positions, "scales": scales.astype(float), "dc": dc,
                                "opacity": opacity / 65535}


def test_other_writers_layouts_are_read(tmp_path: Path) -> None:
    data, truth = quantised_file({"mesh": 0})
    (tmp_path / "q.glb").write_bytes(data)
    cloud = read_glb(tmp_path / "q.glb")
    np.testing.assert_allclose(cloud.positions, truth["positions"] @ Z180, atol=0)  # back in the PLY frame
    np.testing.assert_allclose(np.exp(cloud.scales), truth["scales"], rtol=1e-6)
    np.testing.assert_allclose(sigmoid(cloud.opacities), truth["opacity"], atol=1e-6)
    np.testing.assert_allclose(cloud.sh_dc, truth["dc"])
    q = normalize_quaternions(cloud.rotations)
    np.testing.assert_allclose(np.abs(q), [[1, 0, 0, 0], [0, 0, 0, 1]], atol=1e-6)  # z180 ⊗ (z180, identity)


def test_a_node_transform_is_applied(tmp_path: Path) -> None:
    data, truth = quantised_file({"children": [1]})
    document = json.loads(data[20:20 + struct.unpack_from("<I", data, 12)[0]])
    document["nodes"] = [{"children": [1], "translation": [0, 0, 5]}, {"mesh": 0, "scale": [2, 2, 2]}]
    binary = data[28 + struct.unpack_from("<I", data, 12)[0]:]
    (tmp_path / "t.glb").write_bytes(_glb(document, binary))
    cloud = read_glb(tmp_path / "t.glb")
    np.testing.assert_allclose(cloud.positions, (2 * truth["positions"] + [0, 0, 5]) @ Z180, atol=1e-6)
    np.testing.assert_allclose(np.exp(cloud.scales), 2 * truth["scales"], rtol=1e-6)
    document["nodes"][1]["scale"] = [1, 2, 3]
    (tmp_path / "bad.glb").write_bytes(_glb(document, binary))
    with pytest.raises(FormatError, match="uniform scale"):
        read_glb(tmp_path / "bad.glb")


@pytest.mark.parametrize("change, message", [
    (lambda d, b: (d, b[:-8]), "past the end"),
    (lambda d, b: ({**d, "extensionsRequired": ["EXT_meshopt_compression"]}, b), "EXT_meshopt_compression"),
    (lambda d, b: ({**d, "extensionsUsed": []}, b), "without Gaussian splats"),
    (lambda d, b: ({**d, "buffers": [{"byteLength": 8, "uri": "scene.bin"}]}, b), "external buffer"),
    (lambda d, b: ({**d, "accessors": [{**d["accessors"][0], "count": 3}] + d["accessors"][1:]}, b), "past the end"),
    (lambda d, b: ({**d, "accessors": d["accessors"][:2] + [{**d["accessors"][2], "count": 1}] + d["accessors"][3:]},
                   b), "not the 2 of POSITION"),
])
def test_damaged_files_are_refused_by_name(tmp_path: Path, change, message: str) -> None:
    data, _truth = quantised_file({"mesh": 0})
    length = struct.unpack_from("<I", data, 12)[0]
    document, binary = change(json.loads(data[20:20 + length]), data[28 + length:])
    (tmp_path / "d.glb").write_bytes(_glb(document, binary))
    with pytest.raises(FormatError, match=message) as error:
        read_glb(tmp_path / "d.glb")
    assert str(error.value).startswith("d.glb: ")


def test_log_scales_and_logit_opacities_of_a_draft_era_writer_are_said(tmp_path: Path) -> None:
    cloud = random_cloud(5, sh_degree=0)
    write_glb(tmp_path / "a.glb", cloud)
    document, binary = parse(tmp_path / "a.glb")
    view = document["bufferViews"][document["accessors"][document["meshes"][0]["primitives"][0]["attributes"][
        PREFIX + "SCALE"]]["bufferView"]]
    raw = bytearray(binary)
    raw[view["byteOffset"]:view["byteOffset"] + 60] = np.full(15, -4.0, np.float32).tobytes()
    (tmp_path / "b.glb").write_bytes(_glb(document, bytes(raw)))
    with pytest.raises(FormatError, match="negative scale"):
        read_glb(tmp_path / "b.glb")
    (tmp_path / "c.glb").write_bytes(b"glTF\x01\0\0\0" + bytes(16))
    with pytest.raises(FormatError, match="version 1"):
        read_glb(tmp_path / "c.glb")
