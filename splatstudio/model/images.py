"""Photo import: find photos in files and folders, check each one, and copy it into a project.

Each accepted photo is decoded, turned upright by its EXIF orientation (the tag is then dropped, so no
later loader rotates it again), converted to 8-bit RGB and, unless "original resolution" is on, resized
so its longest side is at most ``max_image_size``. The originals are never touched. Every rejected file
gets a reason a person understands, and the rest go on. Pure: no Qt.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from splatstudio.model.atomic import atomic_path, read_json, write_json_atomic
from splatstudio.model.settings import Settings

ProgressFn = Callable[[float, str], None]

EXIF_ORIENTATION = 0x0112
EXIF_IFD = 0x8769
MAX_ASPECT_RATIO = 8.0
JPEG_QUALITY = 95

# Our own size check (max_image_megapixels, read from the header before decoding) replaces Pillow's
# fixed limit, which would otherwise warn at 89 MP whatever the user's setting says.
Image.MAX_IMAGE_PIXELS = None

# PIL format names we accept, per extension family (content must match one of them)
_FORMATS = {"JPEG", "MPO", "PNG", "TIFF", "WEBP"}


@dataclass
class Accepted:
    name: str
    source: str
    width: int
    height: int
    original_width: int
    original_height: int
    sha256: str
    notes: list[str] = field(default_factory=list)


@dataclass
class Rejected:
    source: str
    reason: str


@dataclass
class ImportReport:
    accepted: list[Accepted] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


# ---------------------------------------------------------------------------------------- discovery

def discover(paths: Iterable[Path | str], allowed_extensions: Iterable[str]) -> tuple[list[Path], list[Rejected]]:
    """Expand files and folders (recursively, sorted) into candidate files.

    Files with other extensions found inside folders are skipped quietly only when hidden (``.DS_Store``);
    anything else a person dropped gets an "unsupported" rejection so nothing vanishes silently.
    """
    allowed = {ext.lower().lstrip(".") for ext in allowed_extensions}
    files: list[Path] = []
    rejected: list[Rejected] = []
    seen: set[Path] = set()

    def consider(path: Path, explicit: bool) -> None:
        resolved = path.resolve()
        if resolved in seen:
            return
        seen.add(resolved)
        if path.name.startswith(".") and not explicit:
            return
        ext = path.suffix.lower().lstrip(".")
        if ext not in allowed:
            kind = f"'.{ext}' files" if ext else "files without an extension"
            rejected.append(Rejected(str(path), f"unsupported file type: {kind} are not photos SplatStudio "
                                                f"reads (accepted: {', '.join(sorted(allowed))})"))
            return
        if not path.is_file():
            rejected.append(Rejected(str(path), "not a regular file (a broken link, device or pipe)"))
            return
        files.append(path)

    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            for root, dirs, names in os.walk(path, followlinks=False):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(names):
                    consider(Path(root) / name, explicit=False)
        elif path.is_file():
            consider(path, explicit=True)
        elif path.exists() or path.is_symlink():
            rejected.append(Rejected(str(path), "not a regular file (a broken link, device or pipe)"))
        else:
            rejected.append(Rejected(str(path), "no such file or folder"))
    return files, rejected


# ---------------------------------------------------------------------------------------- checking

class _Reject(Exception):
    pass


@dataclass
class _Decoded:
    image: Image.Image
    original_size: tuple[int, int]
    exif: bytes | None
    format: str
    notes: list[str]
    unchanged: bool  # the file can be copied byte for byte


def _decode(path: Path, settings: Settings) -> _Decoded:
    """Open, validate and fully decode one photo; raise :class:`_Reject` with the reason."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise _Reject(f"cannot be read ({exc.strerror})") from None
    if size == 0:
        raise _Reject("the file is empty (0 bytes)")
    max_pixels = int(settings.max_image_megapixels * 1_000_000)
    try:
        image = Image.open(path)
    except PermissionError:
        raise _Reject("cannot be read (permission denied)") from None
    except UnidentifiedImageError:
        raise _Reject("not an image: the contents are not a photo format SplatStudio reads, whatever the "
                      "file name says") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise _Reject(f"corrupt image: {exc}") from None
    with image:
        if image.format not in _FORMATS:
            raise _Reject(f"unsupported image format {image.format} (accepted: JPEG, PNG, TIFF, WebP)")
        width, height = image.size
        if width <= 0 or height <= 0:
            raise _Reject("corrupt image: its header gives no size")
        if width * height > max_pixels:
            raise _Reject(f"refused as a possible decompression bomb: {width}x{height} is "
                          f"{width * height / 1e6:.0f} megapixels, above the limit of "
                          f"{settings.max_image_megapixels:g}")
        notes: list[str] = []
        if getattr(image, "n_frames", 1) > 1 and image.format not in ("MPO",):
            notes.append(f"holds {image.n_frames} frames; the first was used")
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as exc:
            text = str(exc)
            if "truncated" in text:
                raise _Reject("truncated: the file ends before the image data does (an interrupted copy "
                              "or download?)") from None
            raise _Reject(f"corrupt image data: {text}") from None
        exif = image.getexif()
        orientation = int(exif.get(EXIF_ORIENTATION, 1) or 1)
        exif_bytes = _exif_without_orientation(exif) if len(exif) else None
        source_mode, source_format = image.mode, image.format
        upright = _apply_orientation(image, orientation)
    rgb = _to_rgb8(upright)
    if rgb is not upright and source_mode not in ("RGB", "L", "P"):
        notes.append(f"converted from {source_mode} to 8-bit RGB")
    short, long = sorted(rgb.size)
    if short < settings.min_image_size:
        raise _Reject(f"too small: {rgb.size[0]}x{rgb.size[1]} pixels, the shorter side must be at least "
                      f"{settings.min_image_size}")
    if long / short > MAX_ASPECT_RATIO:
        raise _Reject(f"too elongated for reconstruction ({rgb.size[0]}x{rgb.size[1]}, a panorama or strip?)")
    unchanged = (source_format == "JPEG" and orientation == 1 and source_mode == "RGB"
                 and (settings.original_resolution or long <= settings.max_image_size))
    return _Decoded(rgb, (width, height), exif_bytes, source_format, notes, unchanged)


def _exif_without_orientation(exif: Image.Exif) -> bytes:
    exif.get_ifd(EXIF_IFD)  # load the Exif sub-IFD (focal length, camera) so it is written back
    exif[EXIF_ORIENTATION] = 1
    return exif.tobytes()


_TRANSPOSE = {
    2: (Image.Transpose.FLIP_LEFT_RIGHT,),
    3: (Image.Transpose.ROTATE_180,),
    4: (Image.Transpose.FLIP_TOP_BOTTOM,),
    5: (Image.Transpose.TRANSPOSE,),
    6: (Image.Transpose.ROTATE_270,),
    7: (Image.Transpose.TRANSVERSE,),
    8: (Image.Transpose.ROTATE_90,),
}


def _apply_orientation(image: Image.Image, orientation: int) -> Image.Image:
    result = image
    for op in _TRANSPOSE.get(orientation, ()):
        result = result.transpose(op)
    return result


def _to_rgb8(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        import numpy as np

        data = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if data.max() > 255 else 255.0
        grey = Image.fromarray(np.clip(data / peak * 255.0 + 0.5, 0, 255).astype("uint8"), "L")
        return grey.convert("RGB")
    if mode == "F":
        import numpy as np

        data = np.nan_to_num(np.asarray(image, dtype=np.float64))
        lo, hi = float(data.min()), float(data.max())
        scaled = (data - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(data)
        return Image.fromarray(scaled.astype("uint8"), "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


# ---------------------------------------------------------------------------------------- import

def _check_all(
    sources: Iterable[Path | str],
    settings: Settings,
    known_hashes: dict[str, str],
    report: ImportReport,
    progress: ProgressFn | None,
    workers: int | None,
) -> Iterator[tuple[Path, str, _Decoded]]:
    """Discover, hash and decode every candidate; rejections go to ``report``, good photos are yielded
    (in discovery order) with their content hash."""
    files, rejected = discover(sources, settings.allowed_extensions)
    report.rejected.extend(rejected)
    hashes = _hash_files(files, report)
    candidates: list[tuple[Path, str]] = []
    for path in files:
        digest = hashes.get(path)
        if digest is None:
            continue
        if digest in known_hashes:
            report.rejected.append(Rejected(str(path), f"duplicate: the same photo as {known_hashes[digest]}"))
            continue
        known_hashes[digest] = path.name
        candidates.append((path, digest))

    def work(item: tuple[Path, str]) -> tuple[Path, str, _Decoded | None, str | None]:
        path, digest = item
        try:
            return path, digest, _decode(path, settings), None
        except _Reject as exc:
            return path, digest, None, str(exc)
        except MemoryError:
            return path, digest, None, "too large to decode in the available memory"

    total = max(len(candidates), 1)
    with ThreadPoolExecutor(max_workers=workers or min(os.cpu_count() or 1, 8)) as pool:
        for done, (path, digest, decoded, reason) in enumerate(pool.map(work, candidates), start=1):
            if decoded is None:
                report.rejected.append(Rejected(str(path), reason or "unreadable"))
            else:
                yield path, digest, decoded
            if progress:
                progress(done / total, f"checked {path.name}")


def _final_size(size: tuple[int, int], settings: Settings) -> tuple[int, int]:
    if settings.original_resolution or max(size) <= settings.max_image_size:
        return size
    scale = settings.max_image_size / max(size)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def inspect_photos(
    sources: Iterable[Path | str],
    settings: Settings,
    progress: ProgressFn | None = None,
    workers: int | None = None,
) -> ImportReport:
    """Check photos as :func:`import_photos` would, without storing anything (the new-project preview).

    Accepted items have an empty ``name`` and the size they would be imported at.
    """
    report = ImportReport()
    for path, digest, decoded in _check_all(sources, settings, {}, report, progress, workers):
        width, height = _final_size(decoded.image.size, settings)
        report.accepted.append(Accepted("", str(path), width, height, *decoded.original_size, digest,
                                        decoded.notes))
    return report


def import_photos(
    images_dir: Path,
    manifest_path: Path,
    sources: Iterable[Path | str],
    settings: Settings,
    progress: ProgressFn | None = None,
    workers: int | None = None,
) -> ImportReport:
    """Import photos into ``images_dir`` and record them in ``manifest_path`` (``import.json``).

    Already-imported photos stay; new duplicates of them (same file content) are rejected.
    """
    images_dir.mkdir(parents=True, exist_ok=True)
    manifest = read_json(manifest_path, {}) or {}
    known_hashes = {item["sha256"]: item["name"] for item in manifest.get("accepted", [])}
    taken = {item["name"].lower() for item in manifest.get("accepted", [])}
    taken |= {p.name.lower() for p in images_dir.iterdir()}
    report = ImportReport()
    for path, digest, decoded in _check_all(sources, settings, known_hashes, report, progress, workers):
        name = _unique_name(path, decoded.format, taken)
        width, height = _store(path, decoded, images_dir / name, settings)
        report.accepted.append(Accepted(name, str(path), width, height, *decoded.original_size, digest,
                                        decoded.notes))
    manifest.setdefault("accepted", []).extend(a.__dict__ for a in report.accepted)
    manifest.setdefault("rejected", []).extend(r.__dict__ for r in report.rejected)
    write_json_atomic(manifest_path, manifest)
    return report


def _hash_files(files: list[Path], report: ImportReport) -> dict[Path, str]:
    result: dict[Path, str] = {}
    for path in files:
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        except OSError as exc:
            report.rejected.append(Rejected(str(path), f"cannot be read ({exc.strerror or exc})"))
            continue
        result[path] = digest.hexdigest()
    return result


def _unique_name(path: Path, source_format: str, taken: set[str]) -> str:
    """A file name not used yet: ``IMG_1.jpg``, then ``IMG_1-2.jpg`` for a clash from another folder."""
    ext = ".jpg" if source_format in ("JPEG", "MPO") else ".png"
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in path.stem) or "photo"
    name, n = stem + ext, 2
    while name.lower() in taken:
        name, n = f"{stem}-{n}{ext}", n + 1
    taken.add(name.lower())
    return name


def _store(source: Path, decoded: _Decoded, target: Path, settings: Settings) -> tuple[int, int]:
    image = decoded.image
    if decoded.unchanged and target.suffix == ".jpg":
        with atomic_path(target) as tmp:
            tmp.write_bytes(source.read_bytes())
        return image.size
    size = _final_size(image.size, settings)
    if size != image.size:
        image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    with atomic_path(target) as tmp:
        if target.suffix == ".jpg":
            options = {"quality": JPEG_QUALITY, "subsampling": 0}
            if decoded.exif:
                options["exif"] = decoded.exif
            image.save(tmp, "JPEG", **options)
        else:
            image.save(tmp, "PNG", compress_level=4)
    return image.size

