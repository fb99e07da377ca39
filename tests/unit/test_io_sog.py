"""Tests for `splatstudio.io.sog`, PlayCanvas's SOG (version 2), bundled ``.sog`` and unbundled ``meta.json``.

Round-trip bounds: positions one 16-bit step of ``ln(|p| + 1)`` times ``|p| + 1`` (rounded: half a step);
quaternions 8 bits per component of the smallest three; opacity half of 1/255; scales and DC their
nearest codebook entry; SH their palette entry (lossy: checked on average and exactly for a scene
whose SH the palette holds). Tests against splat-transform itself are in tests/interop.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
from _clouds import random_cloud
from PIL import Image

from splatstudio.io.errors import FormatError
from splatstudio.io.formats import FORMATS, load_splats, save_splats
from splatstudio.io.sog import (
    encode_sog,
    encode_sog_files,
    image_size,
    kmeans,
    morton_order,
    palette_size,
    quantize_1d,
    read_sog,
    write_sog,
    write_sog_folder,
)
from splatstudio.model.splatcloud import SplatCloud, sigmoid


def webp(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8), "RGBA").save(
        buffer, format="WEBP", lossless=True, exact=True)
    return buffer.getvalue()


def rgba(path: Path | bytes, name: str) -> np.ndarray:
    data = zipfile.ZipFile(io.BytesIO(path) if isinstance(path, bytes) else path).read(name)
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))


def bundle(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def rotation_angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return 2 * np.arccos(np.clip(np.abs(np.einsum("ij,ij->i", a, b)), 0, 1))


def matched(source: SplatCloud, back: SplatCloud) -> SplatCloud:
    """`source` in `back`'s (Morton) order, by nearest position."""
    from scipy.spatial import cKDTree

    index = cKDTree(source.positions).query(back.positions)[1]
    assert len(np.unique(index)) == len(source)
    return source.subset(index)


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_round_trip_within_the_quantisation(tmp_path: Path, degree: int) -> None:
    cloud = random_cloud(1500, sh_degree=degree, seed=degree)
    write_sog(tmp_path / "scene.sog", cloud)
    back = read_sog(tmp_path / "scene.sog")
    assert len(back) == 1500 and back.sh_degree == degree
    src = matched(cloud, back)
    t = np.log1p(np.abs(src.positions.astype(np.float64)))
    step = np.ptp(np.sign(src.positions) * t, axis=0) / 65535
    assert (np.abs(back.positions - src.positions) <= 0.5 * step * (1 + np.abs(src.positions)) * 1.01 + 1e-6).all()
    assert rotation_angle(back.rotations, src.rotations).max() < 0.02
    assert np.abs(sigmoid(back.opacities) - sigmoid(src.opacities)).max() <= 0.5 / 255 + 1e-6
    assert np.sqrt(np.mean((back.scales - src.scales) ** 2)) < 0.02  # 256 log scales for N(-4, 1)
    assert np.sqrt(np.mean((back.sh_dc - src.sh_dc) ** 2)) < 0.02
    if degree:  # the palette holds 1024 entries for 1500 splats: lossy, but far better than nothing
        assert np.sqrt(np.mean((back.sh_rest - src.sh_rest) ** 2)) < 0.6 * np.sqrt(np.mean(src.sh_rest**2))


def test_a_palette_as_large_as_the_scene_keeps_each_splats_sh(tmp_path: Path) -> None:
    cloud = random_cloud(1000, sh_degree=1, seed=3)  # palette_size(1000) = 512 < 1000: use 8 distinct rows
    rows = np.random.default_rng(0).choice([-0.5, 0.25, 0.5], size=(8, 3, 3))
    cloud.sh_rest[:] = rows[np.arange(1000) % 8]
    back = read_sog(encode_to(tmp_path, cloud))
    src = matched(cloud, back)
    np.testing.assert_allclose(back.sh_rest, src.sh_rest, atol=1e-6)


def encode_to(tmp_path: Path, cloud: SplatCloud) -> Path:
    path = tmp_path / "scene.sog"
    path.write_bytes(encode_sog(cloud))
    return path


def test_colours_with_zero_opacity_keep_their_colour(tmp_path: Path) -> None:
    cloud = random_cloud(64, sh_degree=0, seed=4)
    cloud.opacities[:] = -30.0  # alpha byte 0: lossless WebP would drop the colour under it without `exact`
    back = read_sog(encode_to(tmp_path, cloud))
    src = matched(cloud, back)
    assert np.abs(back.sh_dc - src.sh_dc).max() < 0.05
    assert (back.alphas() < 1e-5).all()


def test_same_cloud_same_bytes() -> None:
    cloud = random_cloud(3000, sh_degree=3, seed=8)
    assert encode_sog(cloud) == encode_sog(cloud)


def test_empty_and_single_splat_scenes(tmp_path: Path) -> None:
    for n in (0, 1):
        cloud = random_cloud(n, sh_degree=2)
        back = read_sog(encode_to(tmp_path, cloud))
        assert len(back) == n
        if n:
            np.testing.assert_allclose(back.positions, cloud.positions, rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(back.sh_rest, cloud.sh_rest, atol=0.01)  # its own palette entry


def test_unbundled_scene_by_its_meta_json(tmp_path: Path) -> None:
    cloud = random_cloud(300, sh_degree=3, seed=5)
    write_sog_folder(tmp_path / "meta.json", cloud)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["meta.json", "means_l.webp", "means_u.webp", "quats.webp", "scales.webp", "sh0.webp",
                            "shN_centroids.webp", "shN_labels.webp"])
    back = load_splats(tmp_path / "meta.json")
    write_sog(tmp_path / "scene.sog", cloud)
    bundled = read_sog(tmp_path / "scene.sog")
    np.testing.assert_array_equal(back.positions, bundled.positions)
    np.testing.assert_array_equal(back.sh_rest, bundled.sh_rest)


def test_registered_as_sog(tmp_path: Path) -> None:
    assert ".sog" in FORMATS and "SOG" in FORMATS[".sog"].description
    cloud = random_cloud(50, sh_degree=3)
    save_splats(cloud, tmp_path / "Scene.SOG", sh_degree=1)
    back = load_splats(tmp_path / "Scene.SOG")
    assert len(back) == 50 and back.sh_degree == 1


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    cloud = random_cloud(10)
    cloud.positions[3, 1] = np.nan
    with pytest.raises(ValueError):
        write_sog(tmp_path / "scene.sog", cloud)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- layout


def test_meta_and_images_follow_the_specification() -> None:
    n = 2000
    cloud = random_cloud(n, sh_degree=2, seed=6)
    files = encode_sog_files(cloud)
    meta = json.loads(files["meta.json"])
    assert meta["version"] == 2 and meta["count"] == n and meta["asset"]["generator"].startswith("SplatStudio")
    assert meta["means"]["files"] == ["means_l.webp", "means_u.webp"]
    assert len(meta["scales"]["codebook"]) == len(meta["sh0"]["codebook"]) == len(meta["shN"]["codebook"]) == 256
    assert meta["scales"]["codebook"] == sorted(meta["scales"]["codebook"])
    assert meta["shN"]["bands"] == 2 and meta["shN"]["count"] == palette_size(n) == 1024
    width, height = image_size(n)
    assert (width, height) == (48, 44)  # ceil(sqrt(2000) / 4) * 4, ceil(2000 / 48 / 4) * 4
    for name in ("means_l.webp", "means_u.webp", "quats.webp", "scales.webp", "sh0.webp", "shN_labels.webp"):
        assert Image.open(io.BytesIO(files[name])).size == (width, height)
    assert Image.open(io.BytesIO(files["shN_centroids.webp"])).size == (64 * 8, 1024 // 64)
    pixels = np.asarray(Image.open(io.BytesIO(files["quats.webp"])).convert("RGBA")).reshape(-1, 4)[:n]
    assert set(np.unique(pixels[:, 3])) <= {252, 253, 254, 255}
    # positions: the 16-bit value of the smallest and largest ln(|p| + 1) per axis is 0 and 65535
    low = np.asarray(Image.open(io.BytesIO(files["means_l.webp"])).convert("RGBA")).reshape(-1, 4)[:n, :3]
    high = np.asarray(Image.open(io.BytesIO(files["means_u.webp"])).convert("RGBA")).reshape(-1, 4)[:n, :3]
    v = low.astype(int) | (high.astype(int) << 8)
    assert (v.min(axis=0) == 0).all() and (v.max(axis=0) == 65535).all()
    t = np.sign(cloud.positions) * np.log1p(np.abs(cloud.positions))
    np.testing.assert_allclose(meta["means"]["mins"], t.min(axis=0), rtol=1e-6)
    np.testing.assert_allclose(meta["means"]["maxs"], t.max(axis=0), rtol=1e-6)


def test_splats_are_in_morton_order() -> None:
    positions = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=np.float32)
    assert morton_order(positions).tolist() == [1, 2, 3, 0]  # code bits: x lowest, then y, then z


def hand_built(tmp_path: Path, *, tag: int = 252, label: int = 1, version: object = 2,
               drop: str | None = None) -> tuple[Path, dict]:
    """Two splats written by hand; see `test_hand_built_scene_decodes_as_specified` for the values."""
    count = 2
    means_l = np.zeros((4, 4, 4), np.uint8)
    means_u = np.zeros((4, 4, 4), np.uint8)
    means_l[0, 0], means_u[0, 0] = [0, 255, 0, 255], [0, 255, 128, 255]  # x: 0, y: 65535, z: 32768
    means_l[0, 1], means_u[0, 1] = [255, 0, 0, 255], [255, 0, 0, 255]  # 65535, 0, 0
    quats = np.zeros((4, 4, 4), np.uint8)
    quats[0, 0] = [128, 128, 128, tag]  # largest w, the others (128 / 255 * 2 - 1) / sqrt(2)
    quats[0, 1] = [0, 255, 128, 253]  # largest x: w = -1/sqrt(2), y = +1/sqrt(2), z = small
    scales = np.zeros((4, 4, 4), np.uint8)
    scales[0, 0], scales[0, 1] = [0, 1, 255, 255], [2, 2, 2, 255]
    sh0 = np.zeros((4, 4, 4), np.uint8)
    sh0[0, 0], sh0[0, 1] = [0, 255, 1, 255], [3, 3, 3, 0]
    labels = np.zeros((4, 4, 4), np.uint8)
    labels[0, 0], labels[0, 1] = [0, 0, 0, 255], [label & 255, label >> 8, 0, 255]
    centroids = np.zeros((1, 64 * 3, 4), np.uint8)
    centroids[0, 0:3, :3] = [[0, 1, 2], [3, 4, 5], [6, 7, 8]]  # entry 0, coefficients 0..2, r g b
    centroids[0, 3:6, :3] = 255  # entry 1
    meta = {
        "version": version, "count": count,
        "means": {"mins": [-1.0, 0.0, -2.0], "maxs": [1.0, 0.0, 2.0], "files": ["means_l.webp", "means_u.webp"]},
        "scales": {"codebook": [float(-10 + i / 16) for i in range(256)], "files": ["scales.webp"]},
        "quats": {"files": ["quats.webp"]},
        "sh0": {"codebook": [float(i / 100) for i in range(256)], "files": ["sh0.webp"]},
        "shN": {"count": 2, "bands": 1, "codebook": [float(i / 1000) for i in range(256)],
                "files": ["shN_centroids.webp", "shN_labels.webp"]},
    }
    files = {"meta.json": json.dumps(meta).encode(), "means_l.webp": webp(means_l), "means_u.webp": webp(means_u),
             "quats.webp": webp(quats), "scales.webp": webp(scales), "sh0.webp": webp(sh0),
             "shN_labels.webp": webp(labels), "shN_centroids.webp": webp(centroids)}
    if drop:
        del files[drop]
    return bundle(tmp_path / "hand.sog", files), meta


def test_hand_built_scene_decodes_as_specified(tmp_path: Path) -> None:
    cloud = read_sog(hand_built(tmp_path)[0])
    e1 = math.e - 1
    # x: lt^-1(-1 + 2 * 0) = -(e - 1); y: zero range, read as 1: lt^-1(0 + 1 * 1) = e - 1; z: -2 + 4 * 32768/65535
    z0 = -2 + 4 * 32768 / 65535
    np.testing.assert_allclose(cloud.positions[0], [-e1, e1, math.copysign(math.expm1(abs(z0)), z0)], rtol=1e-6)
    np.testing.assert_allclose(cloud.positions[1], [e1, 0.0, -math.expm1(2)], rtol=1e-6)
    small = (128 / 255 * 2 - 1) / math.sqrt(2)
    np.testing.assert_allclose(cloud.rotations[0], [math.sqrt(1 - 3 * small**2), small, small, small], atol=1e-6)
    s = 1 / math.sqrt(2)
    np.testing.assert_allclose(cloud.rotations[1], [-s, math.sqrt(max(0, 1 - 2 * 0.5 - small**2)), s, small],
                               atol=1e-6)
    np.testing.assert_allclose(cloud.scales, [[-10, -10 + 1 / 16, -10 + 255 / 16], [-10 + 2 / 16] * 3])
    np.testing.assert_allclose(cloud.sh_dc, [[0, 2.55, 0.01], [0.03] * 3], atol=1e-6)
    np.testing.assert_allclose(sigmoid(cloud.opacities), [1 - 1e-6, 1e-6], rtol=1e-4)
    assert cloud.sh_degree == 1
    np.testing.assert_allclose(cloud.sh_rest[0], [[0, 0.001, 0.002], [0.003, 0.004, 0.005], [0.006, 0.007, 0.008]])
    np.testing.assert_allclose(cloud.sh_rest[1], np.full((3, 3), 0.255))


# --------------------------------------------------------------------------- bad files


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tag": 7}, "2 of 2 splats have a quaternion tag outside 252..255"),
        ({"label": 2}, "1 of 2 splats point past the 2 entries of the SH palette"),
        ({"version": 3}, "unsupported SOG version 3"),
        ({"drop": "quats.webp"}, "the archive holds no quats.webp"),
    ],
)
def test_bad_scenes_name_the_file_and_the_problem(tmp_path: Path, change: dict, message: str) -> None:
    path = hand_built(tmp_path, **change)[0]
    if change.get("tag") == 7:  # the other splat's tag too
        files = {name: zipfile.ZipFile(path).read(name) for name in zipfile.ZipFile(path).namelist()}
        quats = rgba(path, "quats.webp").copy()
        quats[0, 1, 3] = 9
        files["quats.webp"] = webp(quats)
        bundle(path, files)
    with pytest.raises(FormatError) as info:
        read_sog(path)
    assert str(info.value).startswith("hand.sog: ") and message in str(info.value)


def edited_meta(tmp_path: Path, edit) -> Path:
    path, meta = hand_built(tmp_path)
    files = {name: zipfile.ZipFile(path).read(name) for name in zipfile.ZipFile(path).namelist()}
    edit(meta)
    files["meta.json"] = json.dumps(meta).encode() if isinstance(meta, dict) else meta
    return bundle(path, files)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.pop("version"), "SOG version 1 is not supported"),
        (lambda m: m.update(count=-1), "count must be a whole number"),
        (lambda m: m.update(count=10**9), "more than the 30000000"),
        (lambda m: m.update(count=17), "is 4x4 pixels; the scene needs 17"),
        (lambda m: m["scales"].update(codebook=[1.0] * 255), "scales.codebook must be a list of 256 numbers"),
        (lambda m: m["means"].update(mins=[0, "x", 0]), "means.mins must be a list of 3 numbers"),
        (lambda m: m["means"].update(files=["../means_l.webp", "means_u.webp"]), "not a file beside meta.json"),
        (lambda m: m["shN"].update(bands=5), "shN.bands must be 0..3"),
        (lambda m: m.pop("sh0"), "meta.json has no 'sh0'"),
        (lambda m: m["quats"].update(files=["sh0.webp"]), "quaternion tag outside 252..255"),
    ],
)
def test_bad_meta_names_the_file_and_the_problem(tmp_path: Path, edit, message: str) -> None:
    with pytest.raises(FormatError) as info:
        read_sog(edited_meta(tmp_path, edit))
    assert str(info.value).startswith("hand.sog: ") and message in str(info.value)


def test_not_a_bundle(tmp_path: Path) -> None:
    (tmp_path / "a.sog").write_bytes(b"NGSP not a zip")
    with pytest.raises(FormatError, match=r"a.sog: not a SOG bundle: a .sog is a zip archive"):
        read_sog(tmp_path / "a.sog")
    (tmp_path / "b.sog").write_bytes(b"")
    with pytest.raises(FormatError, match="b.sog: empty file"):
        read_sog(tmp_path / "b.sog")
    bundle(tmp_path / "c.sog", {"meta.json": b"{not json"})
    with pytest.raises(FormatError, match="c.sog: not valid JSON"):
        read_sog(tmp_path / "c.sog")


def test_a_corrupt_image(tmp_path: Path) -> None:
    path, _ = hand_built(tmp_path)
    files = {name: zipfile.ZipFile(path).read(name) for name in zipfile.ZipFile(path).namelist()}
    files["scales.webp"] = files["scales.webp"][:20]
    bundle(path, files)
    with pytest.raises(FormatError, match="hand.sog: scales.webp"):
        read_sog(path)


def _set_compression_method(data: bytes, member: str, method: int) -> bytes:
    """The zip `data` with `member`'s compression method field set to `method`, in its local header and in the
    central directory (nothing else changes)."""
    out = bytearray(data)
    name = member.encode()
    for signature, name_len_at, name_at, method_at in ((b"PK\x03\x04", 26, 30, 8), (b"PK\x01\x02", 28, 46, 10)):
        at = out.find(signature)
        while at >= 0:
            length = int.from_bytes(out[at + name_len_at:at + name_len_at + 2], "little")
            if bytes(out[at + name_at:at + name_at + length]) == name:
                out[at + method_at:at + method_at + 2] = method.to_bytes(2, "little")
            at = out.find(signature, at + 4)
    return bytes(out)


def test_a_member_compressed_in_a_way_zipfile_cannot_read(tmp_path: Path) -> None:
    """Python's zipfile raises NotImplementedError for a compression method it lacks (98: PPMd): the reader
    names the file, the member and the problem instead."""
    path, _ = hand_built(tmp_path)
    files = {name: zipfile.ZipFile(path).read(name) for name in zipfile.ZipFile(path).namelist()}
    bundle(path, files)
    path.write_bytes(_set_compression_method(path.read_bytes(), "means_l.webp", 98))
    with pytest.raises(FormatError, match=r"hand.sog: means_l.webp is compressed in a way this reader does not know"):
        read_sog(path)


def test_an_unbundled_scene_missing_an_image(tmp_path: Path) -> None:
    write_sog_folder(tmp_path / "meta.json", random_cloud(20, sh_degree=0))
    (tmp_path / "sh0.webp").unlink()
    with pytest.raises(FormatError, match=r"meta.json: sh0.webp, which meta.json names, is not in"):
        read_sog(tmp_path / "meta.json")


# --------------------------------------------------------------------------- codebooks


def test_quantize_1d_gives_a_sorted_codebook_and_nearest_indexes() -> None:
    values = np.random.default_rng(0).normal(0, 1, 20000).astype(np.float32)
    codebook, labels = quantize_1d(values)
    assert codebook.shape == (256,) and (np.diff(codebook) >= 0).all() and labels.dtype == np.uint8
    distance = np.abs(values[:, None] - codebook[None, :])
    np.testing.assert_array_equal(np.abs(values - codebook[labels]), distance.min(axis=1))
    assert np.sqrt(np.mean((values - codebook[labels]) ** 2)) < 0.01
    # few distinct values: each is its own entry
    codebook, labels = quantize_1d(np.array([3.0, -1.0, 3.0, 0.5]))
    np.testing.assert_array_equal(codebook[labels], [3.0, -1.0, 3.0, 0.5])
    codebook, labels = quantize_1d(np.full(5, 2.5))
    assert (codebook[labels] == 2.5).all()


def test_palette_size_follows_splat_transform() -> None:
    assert [palette_size(n) for n in (0, 1, 10, 1000, 1024, 2047, 2048, 100_000, 1_000_000)] == [
        0, 1, 8, 512, 1024, 1024, 2048, 65536, 65536]


def test_kmeans_is_deterministic_and_uses_every_centre() -> None:
    rng = np.random.default_rng(1)
    blobs = rng.normal(0, 1, (40, 9)) * 5
    points = (blobs[rng.integers(0, 40, 6000)] + rng.normal(0, 0.05, (6000, 9))).astype(np.float32)
    centroids, labels = kmeans(points, 40)
    again = kmeans(points, 40)
    np.testing.assert_array_equal(centroids, again[0])
    assert centroids.shape == (40, 9) and set(np.unique(labels)) == set(range(40))
    # the clustering finds the blobs: what is left is a small part of the spread (one centre: 100 %)
    residual = np.mean(np.sum((points - centroids[labels]) ** 2, axis=1))
    assert residual < 0.05 * np.mean(np.sum((points - points.mean(axis=0)) ** 2, axis=1))
    assert np.median(np.linalg.norm(points - centroids[labels], axis=1)) < 0.3  # most blobs have their own
    few = kmeans(points[:7], 40)
    np.testing.assert_array_equal(few[0], points[:7])
