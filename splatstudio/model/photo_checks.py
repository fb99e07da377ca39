"""One photo file, checked and decoded for the import (`images`): whether SplatStudio reads its format (HEIC
with the optional pillow-heif), its size limits (megapixels before decoding, the shorter side, the aspect
ratio), turning it upright by its EXIF orientation (the tag then set to 1) and converting it to 8-bit RGB.
A file that cannot be used raises `Reject` with the reason a person reads. Pure: no Qt.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from splatstudio.model.settings import Settings

EXIF_ORIENTATION = 0x0112
EXIF_IFD = 0x8769
MAX_ASPECT_RATIO = 8.0

# Our own size check (max_image_megapixels, read from the header before decoding) replaces Pillow's
# fixed limit, which would otherwise warn at 89 MP whatever the user's setting says.
Image.MAX_IMAGE_PIXELS = None
# A damaged EXIF block loses only the metadata (the photo is still read); Pillow's warning would reach the
# user as a Python warning with a source line.
warnings.filterwarnings("ignore", message="Corrupt EXIF data", category=UserWarning)

# PIL format names we accept, per extension family (content must match one of them); HEIF (iPhones' HEIC)
# when the optional pillow-heif package is installed
FORMATS = {"JPEG", "MPO", "PNG", "TIFF", "WEBP", "HEIF"}
# ISO base media file brands of HEIF still images (the bytes 8-11 after "ftyp" at 4-7)
HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
HEIF_MISSING = ("a HEIC/HEIF photo (as iPhones take): reading these needs the optional pillow-heif package "
                "(`pip install pillow-heif`), or export the photos as JPEG")


@functools.cache
def heif_available() -> bool:
    """Whether HEIC/HEIF photos can be read: pillow-heif is installed (it is optional, and not in the
    desktop bundle: its wheel carries a GPL encoder). Registers its Pillow plugin on first call."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def is_heif(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
    except OSError:
        return False
    return head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS


class Reject(Exception):
    """The file cannot be imported; the message says why."""


@dataclass
class Decoded:
    image: Image.Image
    original_size: tuple[int, int]
    exif: bytes | None
    format: str
    notes: list[str]
    unchanged: bool  # the file can be copied byte for byte

    def final_size(self, settings: Settings) -> tuple[int, int]:
        """The size the photo is stored at: its longest side at most ``max_image_size``."""
        return stored_size(self.image.size, settings)


def decode(path: Path, settings: Settings) -> Decoded:
    """Open, validate and fully decode one photo; raise :class:`Reject` with the reason."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise Reject(f"cannot be read ({exc.strerror})") from None
    if size == 0:
        raise Reject("the file is empty (0 bytes)")
    max_pixels = int(settings.max_image_megapixels * 1_000_000)
    if is_heif(path) and not heif_available():
        raise Reject(HEIF_MISSING)
    try:
        image = Image.open(path)
    except PermissionError:
        raise Reject("cannot be read (permission denied)") from None
    except UnidentifiedImageError:
        raise Reject("not an image: the contents are not a photo format SplatStudio reads, whatever the "
                      "file name says") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise Reject(f"corrupt image: {exc}") from None
    with image:
        if image.format not in FORMATS:
            raise Reject(f"unsupported image format {image.format} (accepted: JPEG, PNG, TIFF, WebP, HEIC)")
        width, height = image.size
        if width <= 0 or height <= 0:
            raise Reject("corrupt image: its header gives no size")
        if width * height > max_pixels:
            raise Reject(f"refused as a possible decompression bomb: {width}x{height} is "
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
                raise Reject("truncated: the file ends before the image data does (an interrupted copy "
                              "or download?)") from None
            raise Reject(f"corrupt image data: {text}") from None
        exif = image.getexif()
        orientation = int(exif.get(EXIF_ORIENTATION, 1) or 1)
        exif_bytes = _exif_without_orientation(exif) if len(exif) else None
        source_mode, source_format = image.mode, image.format
        upright = _apply_orientation(image, orientation)
    rgb = _to_rgb8(upright)
    if rgb is not upright and source_mode not in ("RGB", "L", "P"):
        notes.append(f"converted from {source_mode} to 8-bit RGB")
    problem = size_problem(*rgb.size, settings)
    if problem:
        raise Reject(problem)
    long = max(rgb.size)
    unchanged = (source_format == "JPEG" and orientation == 1 and source_mode == "RGB"
                 and (settings.original_resolution or long <= settings.max_image_size))
    return Decoded(rgb, (width, height), exif_bytes, source_format, notes, unchanged)


def size_problem(width: int, height: int, settings: Settings) -> str | None:
    """Why a photo (or a video's frames) of this upright size cannot be used, or None."""
    short, long = sorted((width, height))
    if short < settings.min_image_size:
        return (f"too small: {width}x{height} pixels, the shorter side must be at least "
                f"{settings.min_image_size}")
    if long / short > MAX_ASPECT_RATIO:
        return f"too elongated for reconstruction ({width}x{height}, a panorama or strip?)"
    return None


def stored_size(size: tuple[int, int], settings: Settings) -> tuple[int, int]:
    """The size a photo or frame of this upright ``size`` is stored at: its longest side at most
    ``max_image_size`` unless original resolution is on."""
    return size if settings.original_resolution else fit(size, settings.max_image_size)


def fit(size: tuple[int, int], longest: int) -> tuple[int, int]:
    """``size`` scaled down (never up) so its longest side is at most ``longest``."""
    if max(size) <= longest:
        return size
    scale = longest / max(size)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


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

        data = np.asarray(image, dtype=np.float64)
        if not np.isfinite(data).any():
            raise Reject("no picture in it: every pixel is NaN or infinite")
        data = np.nan_to_num(data, posinf=0.0, neginf=0.0)
        lo, hi = float(data.min()), float(data.max())
        scaled = (data - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(data)
        return Image.fromarray(scaled.astype("uint8"), "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")
