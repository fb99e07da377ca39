"""Photo import: find photos and videos in files and folders, check each one, and copy it into a project.

Each accepted photo is decoded, turned upright by its EXIF orientation (the tag is then dropped, so no
later loader rotates it again), converted to 8-bit RGB and, unless "original resolution" is on, resized
so its longest side is at most ``max_image_size``. A video gives its sharpest frames (``video_frames`` of
them, :mod:`splatstudio.model.video`), stored as JPEG photos like the others and recorded with the video
and time they came from. The originals are never touched. Every rejected file gets a reason a person
understands, and the rest go on (each file is checked and decoded by `photo_checks`). Pure: no Qt.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

import psutil
from PIL import Image

from splatstudio.model.atomic import read_json, sha256_of, write_json_atomic
from splatstudio.model.photo_checks import (
    Decoded,
    Reject,
    decode,
    fit,
    size_problem,
    stored_size,
)
from splatstudio.model.settings import Settings
from splatstudio.model.video import (
    VIDEO_EXTENSIONS,
    ChosenFrame,
    Extraction,
    VideoInfo,
    VideoRejected,
    choose_frames,
    is_video,
    probe,
)

ProgressFn = Callable[[float, str], None]
_T = TypeVar("_T")

JPEG_QUALITY = 95
_MAX_STEM_BYTES = 120

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
    video: dict | None = None
    """For a frame of a video (``source``, whose hash is ``sha256``): ``{"time": seconds from its first
    picture, "frame": frame number, "sharpness": the variance of the Laplacian it was chosen by}``."""

    def entry(self) -> dict:
        """The item as ``import.json`` records it (photos without the ``video`` key)."""
        return {k: v for k, v in self.__dict__.items() if not (k == "video" and v is None)}


@dataclass
class Rejected:
    source: str
    reason: str


class ImportFailed(Exception):
    """The import could not finish (the disk is full, the project folder cannot be written); nothing of it
    was kept."""


class ImportCancelled(Exception):
    """The person stopped the import (raised by a progress callback); nothing of it was kept."""

    def __init__(self, message: str = "the import was stopped; nothing was imported"):
        super().__init__(message)


@dataclass
class VideoImport:
    """A video that gave frames: its figures, and (from :func:`inspect_photos` with ``thumb_size``) small
    upright pictures of the frames chosen, in time order, as (width, height, RGB bytes)."""

    source: str
    sha256: str
    info: VideoInfo
    target: int
    chosen: int
    decoded: int
    notes: list[str] = field(default_factory=list)
    thumbs: list[tuple[int, int, bytes]] = field(default_factory=list)

    def describe(self) -> str:
        """``24 frames of 360 (1920×1080, 0:12.0, 30 fps, h264)``"""
        return f"{self.chosen} frames of {self.decoded} ({self.info.describe()})"


@dataclass
class ImportReport:
    accepted: list[Accepted] = field(default_factory=list)
    """Photos and video frames, in the order they were stored."""
    rejected: list[Rejected] = field(default_factory=list)
    videos: list[VideoImport] = field(default_factory=list)


# ---------------------------------------------------------------------------------------- discovery

def discover(paths: Iterable[Path | str], allowed_extensions: Iterable[str]) -> tuple[list[Path], list[Rejected]]:
    """Expand files and folders (recursively, sorted) into candidate files (photos of ``allowed_extensions``
    and videos of :data:`VIDEO_EXTENSIONS`).

    Files with other extensions found inside folders are skipped quietly only when hidden (``.DS_Store``);
    anything else a person dropped gets an "unsupported" rejection so nothing vanishes silently.
    """
    allowed = {ext.lower().lstrip(".") for ext in allowed_extensions} | set(VIDEO_EXTENSIONS)
    files: list[Path] = []
    rejected: list[Rejected] = []
    seen: set[Path] = set()

    def consider(path: Path, explicit: bool) -> None:
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError):  # RuntimeError: Python before 3.13 on a symbolic link loop
            rejected.append(Rejected(str(path), "a symbolic link that loops back on itself"))
            return
        if resolved in seen:
            return
        seen.add(resolved)
        if path.name.startswith(".") and not explicit:
            return
        ext = path.suffix.lower().lstrip(".")
        if ext not in allowed:
            kind = f"'.{ext}' files" if ext else "files without an extension"
            rejected.append(Rejected(str(path), f"unsupported file type: {kind} are not photos or videos "
                                                f"SplatStudio reads (accepted: {', '.join(sorted(allowed))})"))
            return
        if not path.is_file():
            rejected.append(Rejected(str(path), "not a regular file (a broken link, device or pipe)"))
            return
        files.append(path)

    def unreadable_folder(error: OSError) -> None:
        rejected.append(Rejected(str(error.filename), f"this folder cannot be read ({error.strerror}); the "
                                                      "photos in it were not imported"))

    for raw in paths:
        path = Path(raw).expanduser()
        try:
            kind = _kind(path)
        except OSError as exc:  # a folder on the way cannot be searched
            rejected.append(Rejected(str(path), f"cannot be read ({exc.strerror or exc})"))
            continue
        if kind == "folder":
            for root, dirs, names in os.walk(path, onerror=unreadable_folder, followlinks=False):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(names):
                    try:
                        consider(Path(root) / name, explicit=False)
                    except OSError as exc:
                        rejected.append(Rejected(str(Path(root) / name), f"cannot be read ({exc.strerror or exc})"))
        elif kind == "file":
            consider(path, explicit=True)
        elif kind == "other":
            rejected.append(Rejected(str(path), "not a regular file (a broken link, device or pipe)"))
        else:
            rejected.append(Rejected(str(path), "no such file or folder"))
    return files, rejected


def _kind(path: Path) -> str:
    """"folder", "file", "other" (a device, pipe or broken link) or "missing"; OSError if it cannot be
    looked at (a folder on the way is not searchable)."""
    if path.is_dir():
        return "folder"
    if path.is_file():
        return "file"
    if path.is_symlink() or path.exists():
        return "other"
    return "missing"


# ---------------------------------------------------------------------------------------- import

# Photos being decoded at once, per worker: a small queue so a worker never waits on the consumer, while
# memory stays a few full-size photos per worker whatever the number of photos (findings, defect 5).
_AHEAD_PER_WORKER = 2

_Handle = Callable[[Path, Decoded], _T]

VIDEO_FRAMES_PER_PHOTO = 30
"""For progress only: decoding this many video frames counts as much work as importing one photo."""


@dataclass
class _Candidates:
    """What was found to import, hashed and without duplicates: photos and videos (with their probe)."""

    photos: list[tuple[Path, str]]
    videos: list[tuple[Path, str, VideoInfo]]

    def units(self) -> float:
        return len(self.photos) + sum(_video_units(info) for _, _, info in self.videos)


def _video_units(info: VideoInfo) -> float:
    frames = info.frame_count or (info.duration or 0.0) * (info.fps or 30.0)
    return max(1.0, frames / VIDEO_FRAMES_PER_PHOTO)


def _candidates(sources: Iterable[Path | str], settings: Settings, known_hashes: dict[str, str],
                report: ImportReport) -> _Candidates:
    """Discover and hash every candidate, reject duplicates (of each other and of ``known_hashes``), and read
    each video's headers (a video that cannot be read, or whose frames are too small, is rejected here)."""
    files, rejected = discover(sources, settings.allowed_extensions)
    report.rejected.extend(rejected)
    hashes = _hash_files(files, report)
    found = _Candidates([], [])
    for path in files:
        digest = hashes.get(path)
        if digest is None:
            continue
        video = is_video(path)
        if digest in known_hashes:
            kind = "video" if video else "photo"
            report.rejected.append(Rejected(str(path), f"duplicate: the same {kind} as {known_hashes[digest]}"))
            continue
        if not video:
            known_hashes[digest] = path.name
            found.photos.append((path, digest))
            continue
        try:
            info = probe(path)
        except VideoRejected as exc:
            report.rejected.append(Rejected(str(path), str(exc)))
            continue
        except MemoryError:
            report.rejected.append(Rejected(str(path), "too large to decode in the available memory"))
            continue
        problem = _video_size_problem(info, settings)
        if problem:
            report.rejected.append(Rejected(str(path), problem))
            continue
        known_hashes[digest] = path.name
        found.videos.append((path, digest, info))
    return found


def _video_size_problem(info: VideoInfo, settings: Settings) -> str | None:
    pixels = info.width * info.height
    if pixels > settings.max_image_megapixels * 1_000_000:
        return (f"refused: its {info.width}x{info.height} frames are {pixels / 1e6:.0f} megapixels, above the limit "
                f"of {settings.max_image_megapixels:g}")
    problem = size_problem(info.width, info.height, settings)
    return f"its frames are {problem}" if problem else None


def _share(progress: ProgressFn | None, start: float, width: float) -> ProgressFn | None:
    """``progress`` for one part of the work: its 0..1 maps onto ``start``..``start + width``."""
    if progress is None:
        return None
    return lambda fraction, message="": progress(start + width * min(1.0, max(0.0, fraction)), message)


def _check_all(
    candidates: list[tuple[Path, str]],
    settings: Settings,
    report: ImportReport,
    progress: ProgressFn | None,
    workers: int | None,
    handle: _Handle,
) -> Iterator[tuple[Path, str, _T]]:
    """Decode every candidate photo and pass it to ``handle`` in a worker thread (the decoded image is dropped
    when it returns). Rejections go to ``report``; ``handle``'s results are yielded in discovery order with the
    photo's content hash. At most a few photos per worker are in flight, so memory does not grow with the
    number of photos."""

    def work(path: Path) -> tuple[_T | None, str | None]:
        try:
            return handle(path, decode(path, settings)), None
        except Reject as exc:
            return None, str(exc)
        except MemoryError:
            return None, "too large to decode in the available memory"

    threads = workers or min(os.cpu_count() or 1, 8)
    total = max(len(candidates), 1)
    pending: deque[tuple[Path, str, Future]] = deque()
    items = iter(candidates)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        try:
            for done in range(1, len(candidates) + 1):
                while len(pending) < threads * _AHEAD_PER_WORKER:
                    item = next(items, None)
                    if item is None:
                        break
                    pending.append((*item, pool.submit(work, item[0])))
                path, digest, future = pending.popleft()
                result, reason = future.result()
                if result is None:
                    report.rejected.append(Rejected(str(path), reason or "unreadable"))
                else:
                    yield path, digest, result
                if progress:
                    progress(done / total, f"checked {path.name}")
        finally:  # stopped early (an error, Ctrl+C, the caller gave up): photos not started are not decoded
            for _, _, future in pending:
                future.cancel()


def _video_report(path: Path, digest: str, extraction: Extraction) -> VideoImport:
    return VideoImport(str(path), digest, extraction.info, extraction.target, extraction.chosen,
                       extraction.decoded, list(extraction.notes))


def _frame_accepted(name: str, path: Path, digest: str, size: tuple[int, int], info: VideoInfo,
                    chosen: ChosenFrame) -> Accepted:
    return Accepted(name, str(path), *size, info.width, info.height, digest,
                    video={"time": round(chosen.time, 4), "frame": chosen.index,
                           "sharpness": round(chosen.sharpness, 2)})


def _without_pixels(chosen: ChosenFrame) -> ChosenFrame:
    """The frame's figures, its picture dropped (stored or measured already): memory stays one frame."""
    return ChosenFrame(chosen.index, chosen.time, chosen.sharpness, _NO_PIXELS)


_NO_PIXELS = Image.new("RGB", (1, 1))


def inspect_photos(
    sources: Iterable[Path | str],
    settings: Settings,
    progress: ProgressFn | None = None,
    workers: int | None = None,
    thumb_size: int = 0,
) -> ImportReport:
    """Check photos and videos as :func:`import_photos` would, without storing anything (the new-project
    preview). Videos are decoded and their frames chosen; with ``thumb_size`` each video's report carries
    pictures of its chosen frames that fit ``thumb_size`` x ``thumb_size``.

    Accepted items have an empty ``name`` and the size they would be imported at.
    """
    report = ImportReport()
    found = _candidates(sources, settings, {}, report)
    total = max(found.units(), 1.0)

    def measure(path: Path, decoded: Decoded) -> tuple[tuple[int, int], tuple[int, int], list[str]]:
        return decoded.final_size(settings), decoded.original_size, decoded.notes  # the figures, not the pixels

    photos = _check_all(found.photos, settings, report, _share(progress, 0.0, len(found.photos) / total), workers,
                        measure)
    for path, digest, (size, original_size, notes) in photos:
        report.accepted.append(Accepted("", str(path), *size, *original_size, digest, notes))
    done = float(len(found.photos))
    for path, digest, info in found.videos:
        units = _video_units(info)
        size = stored_size((info.width, info.height), settings)
        thumb = fit((info.width, info.height), thumb_size) if thumb_size else fit((info.width, info.height), 16)

        def look(chosen: ChosenFrame, path: Path = path, digest: str = digest, info: VideoInfo = info,
                 size: tuple[int, int] = size) -> tuple[Accepted, tuple[int, int, bytes] | None]:
            image = chosen.image
            return (_frame_accepted("", path, digest, size, info, chosen),
                    (image.width, image.height, image.tobytes()) if thumb_size else None)

        try:
            extraction, kept = choose_frames_for(path, settings, thumb, look, _share(progress, done / total,
                                                                                      units / total))
        except VideoRejected as exc:
            report.rejected.append(Rejected(str(path), str(exc)))
        except MemoryError:
            report.rejected.append(Rejected(str(path), "too large to decode in the available memory"))
        else:
            video = _video_report(path, digest, extraction)
            video.thumbs = [pixels for _, pixels in kept if pixels is not None]
            report.accepted.extend(item for item, _ in kept)
            report.videos.append(video)
        done += units
    return report


def choose_frames_for(path: Path, settings: Settings, size: tuple[int, int], keep: Callable[[ChosenFrame], _T],
                      progress: ProgressFn | None) -> tuple[Extraction, list[_T]]:
    """:func:`choose_frames` with the project's frame count, each chosen frame at ``size`` passed to ``keep``;
    its results in time order."""
    kept: list[_T] = []
    extraction = choose_frames(path, settings.video_frames, lambda _info: size,
                               lambda chosen: kept.append(keep(chosen)), progress)
    return extraction, kept


@dataclass
class _Staged:
    """A photo converted and written into the import's staging folder, waiting for its name."""
    file: Path
    format: str
    size: tuple[int, int]
    original_size: tuple[int, int]
    notes: list[str]


def import_photos(
    images_dir: Path,
    manifest_path: Path,
    sources: Iterable[Path | str],
    settings: Settings,
    progress: ProgressFn | None = None,
    workers: int | None = None,
) -> ImportReport:
    """Import photos, and the chosen frames of videos, into ``images_dir`` and record them in ``manifest_path``
    (``import.json``).

    Already-imported photos and videos stay; new duplicates of them (same file content) are rejected. The
    import is all or nothing: photos and frames are converted into a staging folder beside ``images_dir`` and
    named into it as they come (a video's frames once the whole video was read without fault); if anything
    stops the import (a full disk, Ctrl+C, :class:`ImportCancelled` from ``progress``) the files it stored are
    removed again and the manifest is untouched, so importing the same files again starts afresh. Photos come
    first, then each video's frames in time order. Raises :class:`ImportFailed` when the project folder cannot
    take the photos.
    """
    images_dir.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_staging(images_dir)
    manifest = read_json(manifest_path, {}) or {}
    known_hashes: dict[str, str] = {}
    for item in manifest.get("accepted", []):
        known = Path(item["source"]).name if item.get("video") else item["name"]
        known_hashes.setdefault(item["sha256"], known)
    taken = {item["name"].lower() for item in manifest.get("accepted", [])}
    taken |= {p.name.lower() for p in images_dir.iterdir()}
    report = ImportReport()
    staging = Path(tempfile.mkdtemp(prefix=f"{_staging_prefix(images_dir)}{os.getpid()}-", dir=images_dir.parent))
    stored: list[Path] = []
    try:
        found = _candidates(sources, settings, known_hashes, report)
        total = max(found.units(), 1.0)
        checked = _check_all(found.photos, settings, report, _share(progress, 0.0, len(found.photos) / total),
                             workers, partial(_stage, staging=staging, settings=settings))
        with closing(checked):  # on any exit the workers stop before the staging folder goes
            for path, digest, staged in checked:
                name = _unique_name(path, staged.format, taken)
                os.replace(staged.file, images_dir / name)
                stored.append(images_dir / name)
                report.accepted.append(Accepted(name, str(path), *staged.size, *staged.original_size, digest,
                                                staged.notes))
        done = float(len(found.photos))
        for path, digest, info in found.videos:
            units = _video_units(info)
            _import_video(path, digest, info, settings, staging, images_dir, taken, stored, report,
                          _share(progress, done / total, units / total))
            done += units
        manifest.setdefault("accepted", []).extend(a.entry() for a in report.accepted)
        manifest.setdefault("rejected", []).extend(r.__dict__ for r in report.rejected)
        write_json_atomic(manifest_path, manifest)
    except BaseException as exc:
        for file in stored:
            file.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ImportFailed(f"the photos could not be stored in {images_dir.parent}: "
                               f"{exc.strerror or exc}; nothing was imported") from exc
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def _import_video(path: Path, digest: str, info: VideoInfo, settings: Settings, staging: Path, images_dir: Path,
                  taken: set[str], stored: list[Path], report: ImportReport, progress: ProgressFn | None) -> None:
    """Choose a video's frames into the staging folder and, once the whole video was read, name them into
    ``images_dir`` in time order; a video found damaged on the way is rejected and leaves nothing."""
    size = stored_size((info.width, info.height), settings)
    written: list[Path] = []

    def keep(chosen: ChosenFrame) -> tuple[Path, ChosenFrame]:
        handle, name = tempfile.mkstemp(suffix=".jpg", dir=staging)
        os.close(handle)
        written.append(Path(name))
        chosen.image.save(name, "JPEG", quality=JPEG_QUALITY, subsampling=0)
        return Path(name), _without_pixels(chosen)

    try:
        extraction, kept = choose_frames_for(path, settings, size, keep, progress)
    except (VideoRejected, MemoryError) as exc:
        for file in written:
            file.unlink(missing_ok=True)
        reason = str(exc) if isinstance(exc, VideoRejected) else "too large to decode in the available memory"
        report.rejected.append(Rejected(str(path), reason))
        return
    stem = _safe_stem(path)
    width = max(4, len(str(len(kept))))
    for number, (file, chosen) in enumerate(kept, 1):
        name = _unique_stem_name(f"{stem}_{number:0{width}d}", ".jpg", taken)
        os.replace(file, images_dir / name)
        stored.append(images_dir / name)
        report.accepted.append(_frame_accepted(name, path, digest, size, info, chosen))
    report.videos.append(_video_report(path, digest, extraction))


def _staging_prefix(images_dir: Path) -> str:
    return f".{images_dir.name}-import-"


def _remove_abandoned_staging(images_dir: Path) -> None:
    """Staging folders left by an import whose process died (kill -9, a power cut)."""
    prefix = _staging_prefix(images_dir)
    for folder in images_dir.parent.glob(prefix + "*"):
        pid = folder.name[len(prefix):].split("-", 1)[0]
        if not pid.isdigit() or not psutil.pid_exists(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _stage(source: Path, decoded: Decoded, staging: Path, settings: Settings) -> _Staged:
    """Worker: store one decoded photo in the staging folder, resized and converted (a JPEG that needs
    nothing is copied byte for byte)."""
    suffix = _stored_suffix(decoded.format)
    handle, name = tempfile.mkstemp(suffix=suffix, dir=staging)
    os.close(handle)
    target = Path(name)
    image = decoded.image
    if decoded.unchanged and suffix == ".jpg":
        shutil.copyfile(source, target)
    else:
        size = decoded.final_size(settings)
        if size != image.size:
            image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        if suffix == ".jpg":
            options = {"quality": JPEG_QUALITY, "subsampling": 0}
            if decoded.exif:
                options["exif"] = decoded.exif
            image.save(target, "JPEG", **options)
        else:
            image.save(target, "PNG", compress_level=4)
    return _Staged(target, decoded.format, image.size, decoded.original_size, decoded.notes)


def _hash_files(files: list[Path], report: ImportReport) -> dict[Path, str]:
    result: dict[Path, str] = {}
    for path in files:
        try:
            result[path] = sha256_of(path)
        except OSError as exc:
            report.rejected.append(Rejected(str(path), f"cannot be read ({exc.strerror or exc})"))
    return result


def _stored_suffix(source_format: str) -> str:
    """Photos from lossy formats are stored as JPEG (quality 95), the others as PNG (lossless)."""
    return ".jpg" if source_format in ("JPEG", "MPO", "HEIF") else ".png"


def _unique_name(path: Path, source_format: str, taken: set[str]) -> str:
    """A file name not used yet: ``IMG_1.jpg``, then ``IMG_1-2.jpg`` for a clash from another folder."""
    return _unique_stem_name(_safe_stem(path), _stored_suffix(source_format), taken)


def _safe_stem(path: Path) -> str:
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in path.stem) or "photo"
    # File systems hold names of up to 255 bytes; keep well below, with room for "-2" and the extension.
    return stem.encode()[:_MAX_STEM_BYTES].decode(errors="ignore")


def _unique_stem_name(stem: str, ext: str, taken: set[str]) -> str:
    name, n = stem + ext, 2
    while name.lower() in taken:
        name, n = f"{stem}-{n}{ext}", n + 1
    taken.add(name.lower())
    return name
