"""Our ``.glb`` (``KHR_gaussian_splatting``) against tools no one here wrote (issue 23, Delivery).

PlayCanvas's ``splat-transform`` 3.10.2 writes ``.glb`` (it does not read it): its file of our ``.ply`` holds,
accessor for accessor, the values of ours (same frame, same activations), and our reader gives back the
source scene from it. Khronos's glTF-Validator finds nothing wrong with our file beyond what it says of
splat-transform's alike: it predates the extension, so it reports the extension as one it cannot check and
the extension's ``KHR_gaussian_splatting:`` attribute semantics as invalid names (glTF 2.0's core allows only
its own and ``_``-prefixed ones); every other check of the file (GLB chunks, buffers, views, alignment,
accessor bounds, POSITION's min/max) passes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from test_splat_transform import grid_scene

from splatstudio.io.gltf import EXTENSION, PREFIX, read_glb, write_glb
from splatstudio.io.ply import read_splat_ply, write_splat_ply
from splatstudio.model.splatcloud import normalize_quaternions

EXPECTED_CODES = {"UNSUPPORTED_EXTENSION", "MESH_PRIMITIVE_INVALID_ATTRIBUTE"}


def _accessors(path: Path) -> dict[str, np.ndarray]:
    import json
    import struct

    data = path.read_bytes()
    length = struct.unpack_from("<I", data, 12)[0]
    document, binary = json.loads(data[20:20 + length]), data[28 + length:]
    out = {}
    for name, index in document["meshes"][0]["primitives"][0]["attributes"].items():
        accessor = document["accessors"][index]
        view = document["bufferViews"][accessor["bufferView"]]
        dtype = {5121: "<u1", 5126: "<f4"}[accessor["componentType"]]
        width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}[accessor["type"]]
        out[name] = np.frombuffer(binary, dtype, accessor["count"] * width,
                                  view["byteOffset"] + accessor.get("byteOffset", 0)).reshape(-1, width)
    return out


def test_splat_transform_writes_what_we_write_and_we_read_its_file(splat_transform_glb, tmp_path: Path) -> None:
    source = grid_scene(sh_degree=3)
    write_splat_ply(tmp_path / "scene.ply", source)
    source = read_splat_ply(tmp_path / "scene.ply")  # float32 as both writers see it
    splat_transform_glb(tmp_path / "scene.ply", tmp_path / "theirs.glb")
    write_glb(tmp_path / "ours.glb", source)
    theirs, ours = _accessors(tmp_path / "theirs.glb"), _accessors(tmp_path / "ours.glb")
    assert set(theirs) == set(ours) and len(ours) == 5 + 16
    for name in ours:
        if name == PREFIX + "ROTATION":  # theirs keeps the file's quaternions as they are; ours are unit
            a, b = ours[name], theirs[name] / np.linalg.norm(theirs[name], axis=1, keepdims=True)
            np.testing.assert_allclose(np.abs(np.einsum("ij,ij->i", a, b)), 1.0, atol=1e-6)
        elif name == "COLOR_0":  # a fallback; ours decoded to linear as glTF's COLOR_0 is (theirs is not)
            np.testing.assert_array_equal(ours[name][:, 3], theirs[name][:, 3])
        else:
            np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-6, atol=1e-7, err_msg=name)

    back = read_glb(tmp_path / "theirs.glb")  # in the PLY's frame again, splat for splat
    np.testing.assert_array_equal(back.positions, source.positions)
    np.testing.assert_allclose(back.scales, source.scales, atol=1e-5)
    np.testing.assert_array_equal(back.sh_dc, source.sh_dc)
    np.testing.assert_array_equal(back.sh_rest, source.sh_rest)
    q1, q2 = normalize_quaternions(back.rotations), normalize_quaternions(source.rotations)
    np.testing.assert_allclose(np.abs(np.einsum("ij,ij->i", q1, q2)), 1.0, atol=1e-6)
    np.testing.assert_allclose(1 / (1 + np.exp(-back.opacities)), 1 / (1 + np.exp(-source.opacities)), atol=1e-6)


def test_the_khronos_validator_finds_nothing_but_the_extension_it_predates(gltf_validator, splat_transform_glb,
                                                                           tmp_path: Path) -> None:
    source = grid_scene(sh_degree=3)
    write_glb(tmp_path / "ours.glb", source)
    report = gltf_validator(tmp_path / "ours.glb")["issues"]
    codes = {message["code"] for message in report["messages"]}
    assert codes <= EXPECTED_CODES, report["messages"]
    for message in report["messages"]:
        if message["code"] == "MESH_PRIMITIVE_INVALID_ATTRIBUTE":
            assert message["pointer"].split("/attributes/")[1].startswith(PREFIX), message
        else:
            assert EXTENSION in message["message"], message
    namespaced = [name for name in _accessors(tmp_path / "ours.glb") if name.startswith(PREFIX)]
    assert report["numWarnings"] == 0 and report["numErrors"] == len(namespaced) == 4 + 15  # those, no more
    write_splat_ply(tmp_path / "scene.ply", source)
    splat_transform_glb(tmp_path / "scene.ply", tmp_path / "theirs.glb")
    theirs = gltf_validator(tmp_path / "theirs.glb")["issues"]
    assert {message["code"] for message in theirs["messages"]} == codes
    assert theirs["numErrors"] == report["numErrors"]
