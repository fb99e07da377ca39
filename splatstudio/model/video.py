"""Video in: the sharpest frame of each stretch of a video becomes a photo of the project.

A video is decoded once, as a stream (PyAV, whose wheel ships its own FFmpeg): its playing time is cut into
as many equal stretches as frames are wanted, the sharpness of every frame is measured on a small grey copy
(the variance of its Laplacian) and the sharpest frame of each stretch is kept. Only the best frame of the
current stretch is held besides the decoder's own, so memory does not grow with the video's length.
Stretches are equal in *time*, not in frame count, so a variable frame rate (phones drop to 15 fps in the
dark) still gives frames evenly spread over the walk. Kept frames are turned upright by the rotation the
video stores beside its pictures (phones film sideways and say so) and handed on as RGB pictures at the size
asked for.

The import (:mod:`splatstudio.model.images`) records each frame in the project's ``import.json`` with the
video it came from and its time (the ``video`` entry of an accepted item); :func:`frame_sequences` reads the
sequences back for structure from motion: one camera per video, matching in time order. Pure: no Qt.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from splatstudio.launch import is_frozen
from splatstudio.model.atomic import read_json

VIDEO_EXTENSIONS: tuple[str, ...] = ("avi", "m4v", "mkv", "mov", "mp4", "webm")
"""File types read as videos (any case), whatever the photo file types setting says."""

AUTO_PER_SECOND = 2.0
AUTO_MIN_FRAMES = 20
AUTO_MAX_FRAMES = 150
"""The automatic frame count (``video_frames`` = 0): two frames a second of video, at least 20 and at most
150 per video (a video with fewer frames gives them all)."""

SHARPNESS_SIDE = 400
"""Longest side, in pixels, of the grey copy whose sharpness is measured."""

MAX_DAMAGED_SHARE = 0.01
"""A video with more undecodable packets than this share (and more than two) is refused as corrupt; fewer
are skipped, with the frames that depend on them, and said in a note."""

MANIFEST = "import.json"
"""The manifest beside the project's photo folder that records where each frame came from."""

AV_MISSING = ("a video: reading videos needs the PyAV package (`pip install av`), which this installation of "
              "SplatStudio lacks; or export the frames as photos")
AV_NOT_BUNDLED = ("a video: this desktop build of SplatStudio does not read videos yet (its video decoder "
                  "is left out for licensing reasons); export the frames as photos, or install SplatStudio from "
                  "its source (installers/setup.sh), which reads them")

ProgressFn = Callable[[float, str], None]


class VideoRejected(Exception):
    """The video cannot give frames; the message says why in words a person understands (without the file's
    name, which the caller adds)."""


@functools.cache
def av_available() -> bool:
    """Whether videos can be read (PyAV is importable)."""
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def is_video(path: Path | str) -> bool:
    """Whether ``path`` is a video by its extension (:data:`VIDEO_EXTENSIONS`)."""
    return Path(path).suffix.lower().lstrip(".") in VIDEO_EXTENSIONS


def auto_frame_count(duration: float | None) -> int:
    """The automatic number of frames for a video this many seconds long (see :data:`AUTO_PER_SECOND`)."""
    if not duration or duration <= 0:
        return AUTO_MIN_FRAMES
    return int(min(AUTO_MAX_FRAMES, max(AUTO_MIN_FRAMES, round(duration * AUTO_PER_SECOND))))


def format_time(seconds: float) -> str:
    """``0:03.2`` / ``1:02:05.0``: a time in a video, to a tenth of a second."""
    tenths = int(round(max(0.0, seconds) * 10))
    minutes, tenth_seconds = divmod(tenths, 600)
    hours, minutes = divmod(minutes, 60)
    text = f"{minutes}:{tenth_seconds // 10:02d}.{tenth_seconds % 10}"
    return f"{hours}:{minutes:02d}:{text.split(':', 1)[1]}" if hours else text


# ---------------------------------------------------------------------------------------- reading

@dataclass(frozen=True)
class VideoInfo:
    """What a video's headers and first picture say, before the whole of it is decoded."""

    width: int
    """Upright width in pixels, as the video is shown (rotation and pixel shape applied)."""
    height: int
    coded_width: int
    """The pictures' own size in the file (before rotation)."""
    coded_height: int
    rotation: int
    """Quarter turns, in degrees counter-clockwise (0, 90, 180, 270), that make the pictures upright."""
    start: float
    """Time of the first picture, in seconds."""
    duration: float | None
    """Seconds of video the file declares (None when it does not say)."""
    frame_count: int | None
    """Frames the file declares (None when it does not say)."""
    fps: float | None
    """Average frames per second."""
    codec: str
    bits: int
    """Bits per colour sample (8, 10, ...)."""

    def describe(self) -> str:
        parts = [f"{self.width}×{self.height}"]
        if self.duration:
            parts.append(format_time(self.duration))
        if self.fps:
            parts.append(f"{self.fps:.3g} fps")
        parts.append(self.codec)
        return ", ".join(parts)


def _av() -> Any:
    if not av_available():
        raise VideoRejected(AV_NOT_BUNDLED if is_frozen() else AV_MISSING)
    import av

    return av


def _open(path: Path) -> Any:
    """The container, or :class:`VideoRejected` with the reason it cannot be opened."""
    av = _av()
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise VideoRejected(f"cannot be read ({exc.strerror})") from None
    if size == 0:
        raise VideoRejected("the file is empty (0 bytes)")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except PermissionError:
        raise VideoRejected("cannot be read (permission denied)") from None
    except (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise VideoRejected("cannot be read as a video: the file is damaged, cut short (an interrupted copy or "
                            f"download?) or not a video ({_ffmpeg_words(exc)})") from None
    if not container.streams.video:
        container.close()
        raise VideoRejected("holds no video pictures (sound only?)")
    return container


def _ffmpeg_words(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(":")[0].strip() or type(exc).__name__


def _declared_duration(container: Any, stream: Any) -> float | None:
    """Seconds of video: the video stream's own duration where the file gives one (an audio track may run
    longer), else Matroska's per-track DURATION tag, else the container's."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = (stream.metadata or {}).get("DURATION") or (stream.metadata or {}).get("duration")
    if tag:
        try:
            hours, minutes, seconds = str(tag).split(":")
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        except ValueError:
            pass
    if container.duration:
        return container.duration / 1_000_000
    return None


def _quarter_turns(rotation: float | None) -> int:
    """The display rotation (degrees counter-clockwise, FFmpeg's sign) as 0, 90, 180 or 270."""
    if not rotation:
        return 0
    return int(round(rotation / 90.0)) % 4 * 90


def _upright_size(width: int, height: int, rotation: int, aspect: float) -> tuple[int, int]:
    shown = (max(1, round(width * aspect)), height)
    return (shown[1], shown[0]) if rotation in (90, 270) else shown


def _pixel_aspect(stream: Any) -> float:
    ratio = stream.sample_aspect_ratio
    try:
        value = float(ratio) if ratio else 1.0
    except (TypeError, ZeroDivisionError):
        return 1.0
    return value if 0.1 < value < 10 else 1.0


def _prepare(stream: Any) -> None:
    stream.thread_type = "AUTO"  # frame and slice threads, as many as FFmpeg thinks fit


def _first_frame(container: Any, stream: Any) -> Any:
    av = _av()
    try:
        for frame in container.decode(stream):
            return frame
    except av.error.FFmpegError as exc:
        raise VideoRejected(f"its pictures cannot be decoded ({_ffmpeg_words(exc)}): the file is damaged or uses "
                            f"a codec ({stream.codec_context.name}) SplatStudio cannot read") from None
    raise VideoRejected("holds no picture that can be decoded (damaged or cut short?)")


def probe(path: Path | str) -> VideoInfo:
    """Read a video's headers and its first picture; :class:`VideoRejected` if it cannot be read."""
    path = Path(path)
    container = _open(path)
    with container:
        stream = container.streams.video[0]
        _prepare(stream)
        return _info(container, stream, _first_frame(container, stream))


def _info(container: Any, stream: Any, first: Any) -> VideoInfo:
    rotation = _quarter_turns(getattr(first, "rotation", 0))
    width, height = first.width, first.height
    upright = _upright_size(width, height, rotation, _pixel_aspect(stream))
    fps = float(stream.average_rate) if stream.average_rate else (float(stream.guessed_rate)
                                                                   if stream.guessed_rate else None)
    start = first.time if first.time is not None else 0.0
    bits = max((component.bits for component in first.format.components), default=8)
    return VideoInfo(upright[0], upright[1], width, height, rotation, float(start),
                     _declared_duration(container, stream), stream.frames or None, fps or None,
                     stream.codec_context.name, bits)


def frame_target(info: VideoInfo, requested: int) -> int:
    """Frames to take from this video: ``requested`` (0 = :func:`auto_frame_count`), never more than it holds."""
    target = requested or auto_frame_count(info.duration)
    if info.frame_count:
        target = min(target, info.frame_count)
    return max(1, target)


# ---------------------------------------------------------------------------------------- sharpness

def laplacian_variance(grey: Any) -> float:
    """Variance of the 4-neighbour Laplacian of a 2-D array: high for a sharp picture, low for a blurred one."""
    import numpy as np

    g = np.asarray(grey, dtype=np.float32)
    if g.shape[0] < 3 or g.shape[1] < 3:
        return 0.0
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4.0 * g[1:-1, 1:-1]
    return float(lap.var())


_PLANAR_LUMA = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p", "yuvj440p",
                "yuv411p", "nv12", "nv21", "nv16", "gray", "yuva420p"}
_PLANAR_LUMA_16 = {"yuv420p10le", "yuv422p10le", "yuv444p10le", "yuv420p12le", "yuv422p12le", "yuv444p12le",
                   "p010le", "p016le", "gray10le", "gray12le", "gray16le"}


def frame_sharpness(frame: Any) -> float:
    """:func:`laplacian_variance` of a grey copy of a decoded frame whose longest side is about
    :data:`SHARPNESS_SIDE`: the luma plane sampled in 2x2 blocks (no colour conversion), or a scaled grey
    conversion for other pixel formats."""
    import numpy as np

    step = max(1, math.ceil(max(frame.width, frame.height) / SHARPNESS_SIDE))
    name = frame.format.name
    if name in _PLANAR_LUMA or name in _PLANAR_LUMA_16:
        plane = frame.planes[0]
        dtype = np.uint16 if name in _PLANAR_LUMA_16 else np.uint8
        width = plane.line_size // np.dtype(dtype).itemsize
        luma = np.frombuffer(plane, dtype, count=plane.height * width).reshape(plane.height, width)
        luma = luma[:frame.height, :frame.width]
        if step == 1:
            grey = luma.astype(np.float32)
        else:
            rows, cols = (luma.shape[0] // step) * step, (luma.shape[1] // step) * step
            grey = luma[:rows:step, :cols:step].astype(np.float32)
            grey += luma[1:rows:step, :cols:step]
            grey += luma[:rows:step, 1:cols:step]
            grey += luma[1:rows:step, 1:cols:step]
            grey /= 4.0
        if name in _PLANAR_LUMA_16:
            grey /= 4.0  # 10 bits and more: near enough the scale of 8 bits for a ranking within one video
        return laplacian_variance(grey)
    grey = frame.reformat(width=max(3, frame.width // step), height=max(3, frame.height // step), format="gray")
    return laplacian_variance(grey.to_ndarray())


# ---------------------------------------------------------------------------------------- choosing

@dataclass
class ChosenFrame:
    """A kept frame: where it is in the video and its picture, upright, at the size asked for."""

    index: int
    """Frame number in the video, 0 for the first decoded picture."""
    time: float
    """Seconds from the video's first picture."""
    sharpness: float
    image: Image.Image


@dataclass
class Extraction:
    """What :func:`choose_frames` did with one video."""

    info: VideoInfo
    target: int
    chosen: int = 0
    decoded: int = 0
    damaged: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class _Best:
    frame: Any
    index: int
    time: float
    sharpness: float


def picture(frame: Any, info: VideoInfo, size: tuple[int, int]) -> Image.Image:
    """A decoded frame as an upright RGB picture of ``size`` (upright width, height)."""
    coded = (size[1], size[0]) if info.rotation in (90, 270) else size
    shrink = coded[0] * coded[1] < frame.width * frame.height
    rgb = frame.reformat(width=coded[0], height=coded[1], format="rgb24",
                         interpolation="AREA" if shrink else "BICUBIC")
    image = rgb.to_image()
    turn = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}
    return image.transpose(turn[info.rotation]) if info.rotation else image


def choose_frames(path: Path | str, requested: int, size: Callable[[VideoInfo], tuple[int, int]],
                  on_chosen: Callable[[ChosenFrame], None], progress: ProgressFn | None = None) -> Extraction:
    """Decode ``path`` once and pass the sharpest frame of each of ``frame_target(info, requested)`` equal
    stretches of its playing time to ``on_chosen``, in time order, as an upright picture of ``size(info)``.

    Raises :class:`VideoRejected` when the video cannot be read, is cut short (its pictures end well before
    the time it declares) or has many undecodable packets. Frames already passed on before such a finding
    are the caller's to discard. ``progress`` is called as decoding goes (it may raise to stop the work).
    """
    path = Path(path)
    av = _av()
    container = _open(path)
    with container:
        stream = container.streams.video[0]
        _prepare(stream)
        return _FramePicker(av, path, container, stream, requested, size, on_chosen, progress).run()


class _FramePicker:
    """One pass of `choose_frames` over a video: the packets decoded, the frames of the current stretch of
    time weighed (the sharpest kept), damage counted, and the checks once the video ends."""

    def __init__(self, av: Any, path: Path, container: Any, stream: Any, requested: int,
                 size: Callable[[VideoInfo], tuple[int, int]], on_chosen: Callable[[ChosenFrame], None],
                 progress: ProgressFn | None) -> None:
        self.av, self.path, self.container, self.stream = av, path, container, stream
        self.requested, self.size, self.on_chosen, self.progress = requested, size, on_chosen, progress
        self.info: VideoInfo | None = None
        self.out_size = (0, 0)
        self.target = 1
        self.span = 0.0
        self.result: Extraction | None = None
        self.best: _Best | None = None
        self.window = -1
        self.packets = self.failed = 0
        self.first_failure: float | None = None
        self.tainted = False  # a packet failed: frames until the next key frame may show its damage
        self.last_time = 0.0
        self.gaps: list[float] = []
        self.stopped_reading: str | None = None
        self.next_report = 0.0

    def run(self) -> Extraction:
        packet_iter = iter(self.container.demux(self.stream))
        while True:
            try:
                packet = next(packet_iter)
            except StopIteration:
                break
            except (self.av.error.FFmpegError, OSError) as exc:  # the container's data ends or breaks off
                self.stopped_reading = _ffmpeg_words(exc)
                break
            if packet.size:
                self.packets += 1
            try:
                frames = packet.decode()
            except self.av.error.FFmpegError:
                self.failed += 1
                self.tainted = True
                if self.first_failure is None:
                    self.first_failure = self.last_time
                continue
            for frame in frames:
                self._frame(frame)
        return self._finish()

    def _emit(self, item: _Best) -> None:
        assert self.result is not None and self.info is not None
        self.result.chosen += 1
        self.on_chosen(ChosenFrame(item.index, item.time, item.sharpness, picture(item.frame, self.info,
                                                                                  self.out_size)))

    def _start(self, frame: Any) -> None:
        """The first decoded picture: the video's figures, the frame count and size wanted, its length."""
        info = self.info = _info(self.container, self.stream, frame)
        self.target = frame_target(info, self.requested)
        self.out_size = self.size(info)
        self.span = info.duration or 0.0
        if self.span <= 0:
            self.span = _scan_duration(self.path)
        self.result = Extraction(info, self.target)

    def _frame(self, frame: Any) -> None:
        if self.info is None:
            self._start(frame)
        info, result, span, target = self.info, self.result, self.span, self.target
        assert info is not None and result is not None
        time = (frame.time if frame.time is not None else
                result.decoded / (info.fps or 30.0) + info.start) - info.start
        if result.decoded and time > self.last_time:
            self.gaps.append(time - self.last_time)
        self.last_time = max(self.last_time, time)
        index = result.decoded
        result.decoded += 1
        if frame.key_frame:
            self.tainted = False
        if self.tainted:
            result.damaged += 1
            return
        slot = min(target - 1, max(self.window, int(time / span * target))) if span > 0 else 0
        if slot > self.window:
            if self.best is not None:
                self._emit(self.best)
            self.best, self.window = None, slot
        sharpness = frame_sharpness(frame)
        if self.best is None or sharpness > self.best.sharpness:
            self.best = _Best(frame, index, time, sharpness)
        if self.progress is not None and span > 0 and time / span >= self.next_report:
            self.next_report = time / span + 0.01
            self.progress(min(1.0, time / span), f"{self.path.name}: {format_time(time)} of {format_time(span)}, "
                                                 f"{result.chosen} of {target} frames chosen")

    def _finish(self) -> Extraction:
        """The last stretch's frame, the checks for a video cut short or damaged, and the notes."""
        result, info, span, gaps, failed = self.result, self.info, self.span, self.gaps, self.failed
        if result is None or info is None:
            reason = f" ({self.stopped_reading})" if self.stopped_reading else ""
            raise VideoRejected(f"holds no picture that can be decoded (damaged or cut short?){reason}")
        step = _typical_step(gaps, info.fps)
        end = self.last_time + step
        if span > 0 and end < span - max(1.0, 0.05 * span):
            raise VideoRejected(f"cut short or damaged: its pictures end at {format_time(end)} of the "
                                f"{format_time(span)} it declares (an interrupted copy or download?)")
        if failed > max(2, MAX_DAMAGED_SHARE * max(self.packets, 1)):
            raise VideoRejected(f"corrupt video data: {failed} of {self.packets} packets cannot be decoded (from "
                                f"{format_time(self.first_failure or 0.0)} on)")
        if self.best is not None:
            self._emit(self.best)
        if result.chosen == 0:
            raise VideoRejected("none of its pictures could be decoded without damage")
        if failed:
            result.notes.append(f"{failed} damaged packet(s) skipped, with the {result.damaged} frame(s) that "
                                "depend on them")
        if gaps and max(gaps) > 1.5 * step and min(gaps) < 0.75 * max(gaps):
            result.notes.append(f"variable frame rate (frames {min(gaps) * 1000:.0f}-{max(gaps) * 1000:.0f} ms "
                                "apart): frames were chosen in equal stretches of time")
        if result.chosen < self.target:
            result.notes.append(f"{result.chosen} frames instead of {self.target}: parts of the video hold no "
                                "picture")
        if info.rotation:
            turn = {90: "a quarter turn anticlockwise", 180: "upside down", 270: "a quarter turn clockwise"}
            result.notes.append(f"turned upright ({turn[info.rotation]}, as the video's rotation says)")
        if self.progress is not None:
            self.progress(1.0, f"{self.path.name}: {result.chosen} frames chosen")
        return result


def _typical_step(gaps: list[float], fps: float | None) -> float:
    if gaps:
        ordered = sorted(gaps)
        return ordered[len(ordered) // 2]
    return 1.0 / fps if fps else 0.0


def _scan_duration(path: Path) -> float:
    """Seconds from the first to past the last picture, read from the packets' times (for a file that does
    not declare its duration: a live recording's WebM, some AVIs). No decoding."""
    av = _av()
    first = last = None
    with av.open(str(path), metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        try:
            for packet in container.demux(stream):
                if packet.pts is None or not packet.size:
                    continue
                start = float(packet.pts * stream.time_base)
                end = start + float((packet.duration or 0) * stream.time_base)
                first = start if first is None else min(first, start)
                last = end if last is None else max(last, end)
        except av.error.FFmpegError:
            pass
    if first is None or last is None:
        return 0.0
    return max(0.0, last - first)


# ---------------------------------------------------------------------------------------- the project

def frame_sequences(images_dir: Path | str) -> list[list[str]]:
    """The frames of each video imported into the project whose photos are in ``images_dir``: one list per
    video, its frames' file names (as in ``images_dir``) in time order; videos in the order they were
    imported. Photos that are not video frames are in none. Read from the ``import.json`` beside
    ``images_dir`` (each frame's accepted entry has ``"video": {"time": s, "frame": n, ...}`` and the video's
    ``sha256``, which tells the videos apart); an unreadable manifest gives ``[]``."""
    try:
        manifest = read_json(Path(images_dir).parent / MANIFEST, {}) or {}
    except ValueError:
        return []
    return _sequences(manifest.get("accepted", []) if isinstance(manifest, dict) else [])


def _sequences(entries: Iterable[Any]) -> list[list[str]]:
    videos: dict[str, list[tuple[float, int, str]]] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("video"), dict):
            continue
        origin = entry["video"]
        key = str(entry.get("sha256") or entry.get("source"))
        try:
            when = float(origin.get("time", 0.0))
            index = int(origin.get("frame", 0))
        except (TypeError, ValueError):
            continue
        videos.setdefault(key, []).append((when, index, str(entry["name"])))
    return [[name for _, _, name in sorted(frames)] for frames in videos.values()]
