"""Photo import: good photos of every kind go in upright, 8-bit RGB and resized; each bad file is
rejected with a reason a person understands, and the rest go on."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from splatstudio.model.images import discover, import_photos
from splatstudio.model.settings import Settings


def _noise(width: int, height: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1, "CMYK": 4}[mode]
    data = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(data[..., 0] if channels == 1 else data, mode)


def _jpeg(path: Path, width=640, height=480, seed=0, exif_orientation: int | None = None) -> Path:
    image = _noise(width, height, seed)
    kwargs = {}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        exif[0x010F] = "TestMake"
        kwargs["exif"] = exif.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "JPEG", quality=90, **kwargs)
    return path


def _png_with_header(path: Path, width: int, height: int) -> Path:
    """A tiny PNG file whose header claims ``width x height`` pixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


@pytest.fixture
def bad_folder(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A folder of bad files, each with the words its rejection must contain."""
    bad = tmp_path / "bad"
    bad.mkdir()
    expected: dict[str, str] = {}

    (bad / "empty.jpg").write_bytes(b"")
    expected["empty.jpg"] = "empty"
    (bad / "notes.jpg").write_text("these are my holiday notes, not a photo\n" * 20)
    expected["notes.jpg"] = "not an image"
    (bad / "page.png").write_text("<html><body>404 not found</body></html>")
    expected["page.png"] = "not an image"
    full = _jpeg(tmp_path / "src" / "full.jpg", 800, 600, seed=1).read_bytes()
    (bad / "truncated.jpg").write_bytes(full[: len(full) // 2])
    expected["truncated.jpg"] = "truncated"
    corrupt = bytearray(full)
    corrupt[600:4000] = os.urandom(3400)
    (bad / "scrambled.jpg").write_bytes(bytes(full[:200]) + b"\xff\xd9")
    expected["scrambled.jpg"] = "corrupt"
    _jpeg(bad / "tiny.jpg", 200, 150, seed=2)
    expected["tiny.jpg"] = "too small"
    _jpeg(bad / "strip.jpg", 4000, 300, seed=3)
    expected["strip.jpg"] = "elongated"
    _noise(300, 300, 4).save(bad / "anim.gif")
    expected["anim.gif"] = "unsupported file type"
    _noise(300, 300, 5).save(bad / "fake.jpg", "GIF")
    expected["fake.jpg"] = "unsupported image format GIF"
    (bad / "README").write_text("photos of the tree")
    expected["README"] = "without an extension"
    (bad / "scan.bmp").write_bytes(b"BM" + b"\x00" * 100)
    expected["scan.bmp"] = "unsupported file type"
    _png_with_header(bad / "bomb.png", 60000, 60000)
    expected["bomb.png"] = "decompression bomb"
    png = io.BytesIO()
    _noise(400, 300, 6).save(png, "PNG")
    (bad / "cut.png").write_bytes(png.getvalue()[:300])
    expected["cut.png"] = "truncated"
    tiff = io.BytesIO()
    _noise(400, 300, 7).save(tiff, "TIFF")
    (bad / "cut.tif").write_bytes(tiff.getvalue()[:2000])
    expected["cut.tif"] = "truncated"
    (bad / "garbage.webp").write_bytes(b"RIFF\x10\x00\x00\x00WEBPVP8 " + os.urandom(64))
    expected["garbage.webp"] = "image"
    (bad / "broken-link.jpg").symlink_to(bad / "does-not-exist.jpg")
    expected["broken-link.jpg"] = "not a regular file"
    return bad, expected


def _import(tmp_path: Path, sources, settings: Settings | None = None):
    project = tmp_path / "project"
    return import_photos(project / "images", project / "import.json", sources, settings or Settings()), project


def test_every_bad_file_gets_a_reason_and_good_ones_go_on(tmp_path, bad_folder):
    bad, expected = bad_folder
    good = _jpeg(bad / "good.jpg", 640, 480, seed=10)
    duplicate = bad / "zz-copy.jpg"
    duplicate.write_bytes(good.read_bytes())
    expected["zz-copy.jpg"] = "duplicate"
    missing = tmp_path / "nowhere" / "lost.jpg"
    expected["lost.jpg"] = "no such file"

    report, project = _import(tmp_path, [bad, missing])

    assert [a.name for a in report.accepted] == ["good.jpg"]
    reasons = {Path(r.source).name: r.reason for r in report.rejected}
    assert len(expected) >= 15
    for name, words in expected.items():
        assert name in reasons, f"{name} was not rejected (reasons: {reasons})"
        assert words.lower() in reasons[name].lower(), f"{name}: {reasons[name]!r} lacks {words!r}"
    assert len(reasons) == len(expected)
    manifest = (project / "import.json").read_text()
    assert "scrambled.jpg" in manifest and "good.jpg" in manifest
    assert sorted(p.name for p in (project / "images").iterdir()) == ["good.jpg"]


def test_exif_orientation_applied_and_tag_dropped(tmp_path):
    source = _jpeg(tmp_path / "in" / "rotated.JPG", 640, 480, seed=1, exif_orientation=6)
    original = Image.open(source).convert("RGB")
    report, project = _import(tmp_path, [source])
    out = Image.open(project / "images" / report.accepted[0].name)
    assert out.size == (480, 640)                     # turned upright
    assert out.getexif().get(0x0112, 1) == 1            # no later loader rotates it again
    assert out.getexif().get(0x010F) == "TestMake"       # the rest of the EXIF (camera) is kept
    expected = np.asarray(original.transpose(Image.Transpose.ROTATE_270), dtype=float)
    assert np.abs(np.asarray(out, dtype=float) - expected).mean() < 12  # same pixels up to JPEG noise


def test_resized_to_max_size_unless_original_resolution(tmp_path):
    source = _jpeg(tmp_path / "in" / "big.jpeg", 2400, 1800, seed=2, exif_orientation=3)
    report, project = _import(tmp_path, [source], Settings({"max_image_size": 1200}))
    item = report.accepted[0]
    assert (item.width, item.height) == (1200, 900)
    assert (item.original_width, item.original_height) == (2400, 1800)
    assert Image.open(project / "images" / item.name).size == (1200, 900)
    report2, project2 = _import(tmp_path / "b", [source], Settings({"max_image_size": 1200,
                                                                     "original_resolution": True}))
    assert Image.open(project2 / "images" / report2.accepted[0].name).size == (2400, 1800)
    assert source.read_bytes() == (tmp_path / "in" / "big.jpeg").read_bytes()


def test_unchanged_jpeg_is_copied_byte_for_byte(tmp_path):
    source = _jpeg(tmp_path / "in" / "ok.jpg", 800, 600, seed=3)
    report, project = _import(tmp_path, [source])
    assert (project / "images" / "ok.jpg").read_bytes() == source.read_bytes()


@pytest.mark.parametrize("mode, ext, fmt", [("RGBA", "png", "PNG"), ("L", "png", "PNG"), ("CMYK", "jpg", "JPEG"),
                                            ("RGB", "tiff", "TIFF"), ("RGB", "webp", "WEBP")])
def test_other_modes_become_8bit_rgb(tmp_path, mode, ext, fmt):
    source = tmp_path / "in" / f"photo.{ext.upper()}"
    source.parent.mkdir()
    _noise(500, 400, 4, mode).save(source, fmt)
    report, project = _import(tmp_path, [source])
    assert len(report.accepted) == 1, report.rejected
    out = Image.open(project / "images" / report.accepted[0].name)
    assert out.mode == "RGB" and out.size == (500, 400)


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    source = tmp_path / "deep.png"
    data = np.tile(np.linspace(0, 65535, 512, dtype=np.uint16), (300, 1))
    Image.fromarray(data).save(source)
    report, project = _import(tmp_path, [source])
    out = np.asarray(Image.open(project / "images" / report.accepted[0].name))
    assert out.dtype == np.uint8 and out[..., 0].min() == 0 and out[..., 0].max() == 255
    assert 100 < out[0, 256, 0] < 155  # mid-grey stays mid-grey


def test_name_clashes_from_different_folders_keep_both(tmp_path):
    a = _jpeg(tmp_path / "day1" / "IMG_0001.jpg", seed=20)
    b = _jpeg(tmp_path / "day2" / "IMG_0001.jpg", seed=21)
    c = _jpeg(tmp_path / "day2" / "img_0001.JPG", seed=22)
    report, project = _import(tmp_path, [tmp_path / "day1", tmp_path / "day2"])
    names = sorted(x.name for x in report.accepted)
    assert len(names) == 3 and len({n.lower() for n in names}) == 3
    stored = {Path(x.source).resolve(): x.name for x in report.accepted}
    for src in (a, b, c):
        assert (project / "images" / stored[src.resolve()]).exists()


def test_second_import_rejects_what_is_already_there(tmp_path):
    first = _jpeg(tmp_path / "in" / "a.jpg", seed=30)
    report, project = _import(tmp_path, [first])
    again = import_photos(project / "images", project / "import.json", [first, tmp_path / "in"], Settings())
    assert not again.accepted
    assert "duplicate" in again.rejected[0].reason


def test_discover_skips_hidden_files_in_folders(tmp_path):
    _jpeg(tmp_path / "f" / "a.jpg")
    (tmp_path / "f" / ".DS_Store").write_bytes(b"\x00\x01")
    (tmp_path / "f" / ".thumbs").mkdir()
    _jpeg(tmp_path / "f" / ".thumbs" / "t.jpg")
    files, rejected = discover([tmp_path / "f"], ["jpg"])
    assert [f.name for f in files] == ["a.jpg"] and not rejected


def test_progress_is_reported(tmp_path):
    for i in range(3):
        _jpeg(tmp_path / "in" / f"{i}.jpg", seed=40 + i)
    seen = []
    project = tmp_path / "project"
    import_photos(project / "images", project / "import.json", [tmp_path / "in"], Settings(),
                  progress=lambda f, m: seen.append(f))
    assert seen[-1] == 1.0 and len(seen) == 3


def test_inspect_checks_without_storing(tmp_path, bad_folder):
    from splatstudio.model.images import inspect_photos

    bad, expected = bad_folder
    _jpeg(bad / "good.jpg", 2400, 1800, seed=50)
    report = inspect_photos([bad], Settings({"max_image_size": 1200}))
    assert [(Path(a.source).name, a.width, a.height) for a in report.accepted] == [("good.jpg", 1200, 900)]
    assert {Path(r.source).name for r in report.rejected} >= set(expected) - {"lost.jpg", "zz-copy.jpg"}
    assert not (tmp_path / "project").exists()


def test_real_phone_photos_are_turned_upright(tmp_path):
    """monstree holds phone photos with EXIF orientation 1 and 6 (see shared/data/README.md)."""
    from shared_sets import shared_data

    folder = shared_data("monstree/images")
    sources = sorted(folder.iterdir())
    orientations = {}
    for path in sources:
        with Image.open(path) as image:
            orientations.setdefault(image.getexif().get(0x0112, 1), path)
        if {1, 6} <= set(orientations):
            break
    report, project = _import(tmp_path, [orientations[1], orientations[6]])
    sizes = {Path(a.source).name: (a.width, a.height) for a in report.accepted}
    assert sizes[orientations[6].name] == (1200, 1600)  # sensor landscape, turned to portrait
    assert sizes[orientations[1].name] == (1600, 1200)
    for item in report.accepted:
        assert Image.open(project / "images" / item.name).getexif().get(0x0112, 1) == 1
