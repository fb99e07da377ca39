"""Tiny generated video clips for the video-import tests, encoded with PyAV (which the app reads them with).

Each frame is a view of one large random texture, panned a few pixels a frame (a camera walking past a
wall); frames in ``blurred`` are blurred as a shaking hand blurs them. Clips are small (160x96 by default)
so a test encodes and decodes them in well under a second.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

CODECS = {".mp4": "libx264", ".mov": "libx264", ".m4v": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9",
          ".avi": "mpeg4"}


def texture(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A random texture of 4-pixel blocks, wider than any frame cut from it."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (height // 4 + 1, (width + 4 * 400) // 4 + 1, 3), dtype=np.uint8)
    return blocks.repeat(4, axis=0).repeat(4, axis=1)[:height]


def frame_picture(index: int, width: int, height: int, blurred: bool, seed: int = 0) -> Image.Image:
    """Frame ``index``: the texture panned 3 pixels a frame, blurred or not."""
    offset = (3 * index) % 1600
    image = Image.fromarray(np.ascontiguousarray(texture(width, height, seed)[:, offset:offset + width]))
    return image.filter(ImageFilter.GaussianBlur(3)) if blurred else image


class _Pipe(io.RawIOBase):
    """A file the muxer cannot seek back in, as a live recording's: no duration in the header."""

    def __init__(self, file: io.BufferedWriter):
        self.file = file

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, data) -> int:
        return self.file.write(data)


def make_clip(path: Path, frames: int = 60, width: int = 160, height: int = 96, fps: int = 24,
              blurred: Iterable[int] = (), rotation: int | None = None, times: list[float] | None = None,
              seed: int = 0, streamed: bool = False, codec: str | None = None, pix_fmt: str = "yuv420p") -> Path:
    """Encode a clip at ``path`` (the codec from its extension). ``rotation``: the display rotation the file
    declares (degrees counter-clockwise, as FFmpeg gives it; a phone filming upright stores -90).
    ``times``: each frame's time in seconds, for a variable frame rate. ``streamed``: written as a live
    recording is (WebM or Matroska), without a declared duration. ``codec`` and ``pix_fmt``: another encoder
    and pixel format than the extension's usual ones."""
    import av

    blurred = set(blurred)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as file, av.open(_Pipe(file) if streamed else file, "w",
                                           format={".mp4": "mp4", ".mov": "mov", ".m4v": "mp4", ".mkv": "matroska",
                                                   ".webm": "webm", ".avi": "avi"}[path.suffix.lower()]) as out:
        stream = out.add_stream(codec or CODECS[path.suffix.lower()], rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if stream.codec_context.name == "libx264":
            stream.options = {"crf": "10", "preset": "ultrafast"}
        elif stream.codec_context.name == "mpeg4":
            stream.bit_rate = 4_000_000
        elif stream.codec_context.name == "libvpx-vp9":
            stream.options = {"crf": "10", "b:v": "0", "deadline": "realtime", "cpu-used": "8"}
        if rotation is not None:
            stream.set_display_rotation(rotation)
        if times is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for index in range(frames):
            frame = av.VideoFrame.from_image(frame_picture(index, width, height, index in blurred, seed))
            if pix_fmt != "yuv420p":
                frame = frame.reformat(format=pix_fmt)
            if times is not None:
                frame.pts = round(times[index] * 1000)
                frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def make_sound_only(path: Path) -> Path:
    """An MP4 holding half a second of silence and no pictures."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=44100)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono")
        frame.sample_rate = 44100
        for index in range(20):
            frame.pts = index * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
