"""Export with options: which splats and how much colour detail go into the file.

Shared by ``splatstudio export`` and the window's export dialog (no Qt here). An export is

1. a selection from the project's result (:func:`select_splats`): splats inside a crop box
   (axis-aligned, or oriented by a rotation), splats at or above an opacity, SH degree reduced, and at
   most a target count of them, the most visible (:mod:`splatstudio.io.decimate`);
2. written in any registered format (:mod:`splatstudio.io.formats`), as many of the most visible splats
   as fit a target file size when one is given.

:func:`prepare_export` writes the file under a temporary name next to nothing the user chose yet and
reports its exact size and splat count; :func:`ExportPreview.commit` then moves it to the chosen place
(write-then-rename, so a target never holds half a file). :func:`export_splats` does both at once.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from splatstudio.io.decimate import fit_to_size, keep_most_important
from splatstudio.io.errors import FormatError
from splatstudio.io.formats import format_for, save_splats
from splatstudio.model.geometry import quaternion_to_matrix
from splatstudio.model.splatcloud import SplatCloud, sigmoid
from splatstudio.model.transform import Similarity, transform_cloud


@dataclass(frozen=True)
class CropBox:
    """A box given by its centre, half sizes along its own axes, and the rotation whose columns are
    those axes in world coordinates (identity: axis-aligned)."""

    center: tuple[float, float, float]
    half_size: tuple[float, float, float]
    rotation: tuple[tuple[float, ...], ...] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))

    def __post_init__(self) -> None:
        c, h, r = np.asarray(self.center, float), np.asarray(self.half_size, float), np.asarray(self.rotation, float)
        if c.shape != (3,) or h.shape != (3,) or r.shape != (3, 3):
            raise ValueError("a crop box needs a centre (3 numbers), half sizes (3) and a 3x3 rotation")
        if not (np.isfinite(c).all() and np.isfinite(h).all() and np.isfinite(r).all()):
            raise ValueError("crop box values must be finite numbers")
        if (h <= 0).any():
            raise ValueError(f"crop box sizes must be positive, got {tuple(2 * h)}")
        if not np.allclose(r @ r.T, np.eye(3), atol=1e-4) or np.linalg.det(r) < 0:
            raise ValueError("crop box rotation must be a rotation matrix (orthonormal, determinant +1)")

    @classmethod
    def from_min_max(cls, lo: tuple[float, float, float], hi: tuple[float, float, float]) -> CropBox:
        lo_a, hi_a = np.asarray(lo, float), np.asarray(hi, float)
        if lo_a.shape != (3,) or hi_a.shape != (3,) or (hi_a <= lo_a).any():
            raise ValueError(f"crop box minimum {tuple(lo)} must be below its maximum {tuple(hi)} on every axis")
        return cls(tuple((lo_a + hi_a) / 2), tuple((hi_a - lo_a) / 2))

    @classmethod
    def oriented(cls, center, half_size, quaternion_wxyz) -> CropBox:
        """A box rotated by a (w, x, y, z) quaternion (normalised here)."""
        q = np.asarray(quaternion_wxyz, float)
        if q.shape != (4,) or not np.isfinite(q).all() or np.linalg.norm(q) < 1e-12:
            raise ValueError("crop box rotation must be a quaternion w,x,y,z")
        r = tuple(tuple(row) for row in quaternion_to_matrix(q))
        return cls(tuple(center), tuple(half_size), r)

    def contains(self, positions: np.ndarray) -> np.ndarray:
        """Boolean mask of the points inside the box (its faces included)."""
        local = (np.asarray(positions, np.float64) - np.asarray(self.center)) @ np.asarray(self.rotation)
        return (np.abs(local) <= np.asarray(self.half_size)).all(axis=1)


@dataclass(frozen=True)
class ExportOptions:
    """What to keep. ``raw`` picks the trainer's output instead of the outlier-filtered result;
    ``target_count`` keeps at most that many splats and ``target_size`` (bytes) as many as fit, the most
    visible ones (both may be given: the count first)."""

    raw: bool = False
    min_opacity: float = 0.0
    sh_degree: int | None = None
    crop: CropBox | None = None
    target_count: int | None = None
    target_size: int | None = None
    remove: np.ndarray | None = None
    """Splats an edit removes, before anything else (the clean-up's mask, ``model/cleanup.py``, and the hand
    edits' deletions, ``model/edits.py``, combined)."""
    transform: Similarity | None = None
    """The scene's orientation and scale (``model/transform.py``), applied to the kept splats before the crop
    box, which is in the transformed frame."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_opacity < 1.0:
            raise ValueError(f"minimum opacity must be in [0, 1), got {self.min_opacity}")
        if self.sh_degree is not None and self.sh_degree not in (0, 1, 2, 3):
            raise ValueError(f"SH degree must be 0..3, got {self.sh_degree}")
        if self.target_count is not None and self.target_count < 1:
            raise ValueError(f"a target splat count must be at least 1, got {self.target_count}")
        if self.target_size is not None and self.target_size < 1:
            raise ValueError(f"a target file size must be at least 1 byte, got {self.target_size}")


def select_splats(cloud: SplatCloud, options: ExportOptions) -> SplatCloud:
    """The splats `options` keep, at the SH degree they ask for (never raised above the cloud's), at most
    ``target_count`` of them (the file size target is applied when writing, by :func:`prepare_export`)."""
    keep = np.ones(len(cloud), dtype=bool)
    if options.remove is not None:
        if len(options.remove) != len(cloud):
            raise ValueError(f"an edit of {len(options.remove):,} splats cannot apply to a model of {len(cloud):,}")
        keep &= ~np.asarray(options.remove, dtype=bool)
    if options.min_opacity > 0.0:
        keep &= sigmoid(cloud.opacities) >= options.min_opacity
    transform = options.transform if options.transform is not None and not options.transform.is_identity() else None
    if options.crop is not None:
        keep &= options.crop.contains(cloud.positions if transform is None else transform.apply(cloud.positions))
    out = cloud if keep.all() else cloud.subset(keep)
    if transform is not None:
        out = transform_cloud(out, transform)
    if options.sh_degree is not None and options.sh_degree < out.sh_degree:
        out = out.with_sh_degree(options.sh_degree)
    if options.target_count is not None:
        out = keep_most_important(out, options.target_count)
    return out


@dataclass
class ExportPreview:
    """A written export waiting for its final place: how many splats and bytes it holds."""

    path: Path
    extension: str
    count: int
    size: int

    def commit(self, target: Path | str) -> Path:
        """Move the file to `target` (same filesystem: a rename; else a copy to a temporary name beside
        the target, then a rename). The preview is consumed, whether this works or not; a failure is a
        FormatError naming `target`."""
        target = Path(target)
        try:
            _check_target(target)
            try:
                os.replace(self.path, target)
            except OSError:
                tmp = target.with_name(f".{target.name}.part")
                try:
                    shutil.copyfile(self.path, tmp)
                    os.replace(tmp, target)
                except OSError as exc:
                    raise _write_error(target, exc) from None
                finally:
                    tmp.unlink(missing_ok=True)
        finally:
            self.discard()
        return target

    def discard(self) -> None:
        """Remove the temporary file and its folder (idempotent)."""
        shutil.rmtree(self.path.parent, ignore_errors=True)


def prepare_export(cloud: SplatCloud, extension: str, options: ExportOptions,
                   workdir: Path | str | None = None, target: Path | None = None) -> ExportPreview:
    """Select and write `cloud` as `extension` under a temporary name; nothing the user chose is touched.

    An empty selection is an error (a file with no splats helps nobody). `target`: the user's file, named
    in errors instead of the temporary one."""
    ext = format_for("x" + extension if extension.startswith(".") else "x." + extension).extension
    name = f"export{ext}" if target is None else target
    if len(cloud) == 0:
        raise FormatError(name, "the model has no splats to export")
    selected = select_splats(cloud, options)
    if len(selected) == 0:
        raise FormatError(name, "these options keep no splats (lower the minimum opacity or widen the crop box)")
    try:
        folder = Path(tempfile.mkdtemp(prefix="splatstudio-export-", dir=workdir))
    except OSError as exc:
        raise _write_error(name, exc) from None
    path = folder / f"export{ext}"
    try:
        if options.target_size is not None:
            attempts = folder / "attempts"
            attempts.mkdir()
            selected, best = fit_to_size(selected, options.target_size, save_splats, attempts, ext, name)
            os.replace(best, path)
            shutil.rmtree(attempts)
        else:
            save_splats(selected, path)
    except BaseException as exc:
        shutil.rmtree(folder, ignore_errors=True)
        reworded = _save_error(name, exc)
        if reworded is None:
            raise
        raise reworded from None
    return ExportPreview(path, ext, len(selected), path.stat().st_size)


def export_splats(cloud: SplatCloud, target: Path | str, options: ExportOptions) -> ExportPreview:
    """Write the selection of `cloud` to `target` (format from its extension). The temporary file is
    made in the target's folder so the final step is a rename."""
    target = Path(target)
    _check_target(target)
    preview = prepare_export(cloud, format_for(target).extension, options, workdir=target.parent, target=target)
    preview.commit(target)
    return preview


def _check_target(target: Path) -> None:
    if target.is_dir():
        raise FormatError(target, f"is a folder; give a file name, such as {target / ('scene' + target.suffix)}")
    if not target.parent.is_dir():
        raise FormatError(target, f"its folder {target.parent} does not exist")


def _save_error(target: Path | str, exc: BaseException) -> FormatError | None:
    """What went wrong while writing `target`'s temporary file, in the user's words and naming `target`;
    None for what is no fault of the file (an interrupt, a bug), passed on as it is."""
    if isinstance(exc, FormatError):
        return FormatError(target, exc.message)
    if isinstance(exc, OSError):
        return _write_error(target, exc)
    if isinstance(exc, MemoryError):
        return FormatError(target, "too large to write in the available memory")
    return None


def _write_error(target: Path | str, exc: OSError) -> FormatError:
    """An OSError while writing the user's `target` (or its temporary file), in the user's words."""
    text = str(exc)
    if exc.errno == errno.ENOSPC or "requested and" in text:  # numpy's short write reports no errno
        return FormatError(target, "cannot be written: the disk is full")
    if exc.errno == errno.EROFS:
        return FormatError(target, f"cannot be written: {Path(target).parent} is on a read-only disk")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return FormatError(target, f"cannot be written: no permission to write in {Path(target).parent}")
    return FormatError(target, f"cannot be written ({exc.strerror or text})")
