"""Two ways to run COLMAP for the SfM stages: the built-in pycolmap (default), or an external ``colmap``
executable (setting ``colmap_path``), for example a CUDA build. Both write the same database and model
files, so the stages around them (progress, figures, diagnostics, file moves) are shared.

Both report progress through COLMAP's own log lines (``Processed file [i/n]``...), which the stage's log
tee passes to the stage's parser; both stop promptly on cancel (a cancellation token for pycolmap, SIGTERM
for the executable).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from splatstudio.pipeline.context import StageContext, StageFailed

# The seed of every randomised step of the built-in SfM (verification's RANSAC, both mappers): the same photos and
# settings then give the same database, and on one thread the same model (NOTES).
RANDOM_SEED = 0

# Relaxed initialisation for hard sets (few strong pairs, little parallax): measured on the shared
# "lund" set, where default incremental mapping placed 2 of 29 photos and these settings placed 29.
RELAXED_MAPPER = {
    "init_min_num_inliers": 50,
    "init_min_tri_angle": 8.0,
    "init_max_forward_motion": 0.99,
    "abs_pose_min_num_inliers": 15,
    "abs_pose_min_inlier_ratio": 0.15,
}


@dataclass(frozen=True)
class MapperTry:
    """One way of mapping: which mapper, and which of its assumptions are relaxed or fixed."""

    mapper: str  # "global" (GLOMAP, in pycolmap 4) or "incremental"
    relaxed_start: bool = False  # incremental: accept a weaker initial pair (RELAXED_MAPPER)
    fixed_distortion: bool = False  # fewer camera parameters: lens distortion stays 0
    fixed_focal: bool = False  # the focal length stays at EXIF's (or COLMAP's 1.2 x size guess)

    @property
    def label(self) -> str:
        words = [f"{self.mapper} mapper"]
        if self.relaxed_start:
            words.append("relaxed initial pair")
        if self.fixed_distortion:
            words.append("no lens distortion")
        if self.fixed_focal:
            words.append("focal length fixed")
        return ", ".join(words)


class PycolmapEngine:
    """COLMAP through its Python bindings (CPU; no system installation needed)."""

    name = "pycolmap"

    def __init__(self, ctx: StageContext, threads: int):
        import pycolmap

        self.pycolmap = pycolmap
        self.ctx = ctx
        self.threads = threads
        self.token = pycolmap.CancellationToken()

    def _run(self, work):
        return self.ctx.run_cancellable(work, on_cancel=self.token.cancel)

    def extract(self, database: Path, images: Path, names: list[str], single_camera: bool) -> None:
        pc, settings = self.pycolmap, self.ctx.settings
        reader = pc.ImageReaderOptions()
        reader.camera_model = settings.camera_model
        extraction = pc.FeatureExtractionOptions()
        extraction.num_threads = self.threads
        extraction.max_image_size = settings.sfm_max_image_size
        extraction.sift.max_num_features = settings.max_features
        mode = pc.CameraMode.SINGLE if single_camera else pc.CameraMode.PER_IMAGE
        self._run(lambda: pc.extract_features(database, images, image_names=names, camera_mode=mode,
                                              reader_options=reader, extraction_options=extraction,
                                              device=pc.Device.cpu, cancellation_token=self.token))

    def _verification(self):
        """Geometric verification with a fixed RANSAC seed: left to the clock, one pair in a hundred could keep an
        inlier more or less from run to run, and the mapper then starts from another model (NOTES)."""
        verification = self.pycolmap.TwoViewGeometryOptions()
        verification.ransac.random_seed = RANDOM_SEED
        return verification

    def match_all(self, database: Path, count: int) -> None:
        """Match every pair of the ``count`` photos (COLMAP skips pairs matched before)."""
        pc = self.pycolmap
        matching = pc.FeatureMatchingOptions()
        matching.num_threads = self.threads
        pairing = pc.ExhaustivePairingOptions()
        pairing.block_size = exhaustive_block_size(count)
        self._run(lambda: pc.match_exhaustive(database, matching_options=matching, pairing_options=pairing,
                                              verification_options=self._verification(),
                                              device=pc.Device.cpu, cancellation_token=self.token))

    def match_pairs(self, database: Path, pairs_file: Path, count: int) -> None:
        """Match the pairs listed in ``pairs_file`` (``name1 name2`` a line)."""
        pc = self.pycolmap
        matching = pc.FeatureMatchingOptions()
        matching.num_threads = self.threads
        pairing = pc.ImportedPairingOptions()
        pairing.match_list_path = pairs_file
        pairing.block_size = pairs_block_size(count)
        self._run(lambda: pc.match_image_pairs(database, matching_options=matching, pairing_options=pairing,
                                               verification_options=self._verification(),
                                               device=pc.Device.cpu, cancellation_token=self.token))

    def map(self, how: MapperTry, database: Path, images: Path, out: Path, on_image) -> list[Any]:
        pc = self.pycolmap
        if how.mapper == "global":
            options = pc.GlobalPipelineOptions()
            options.num_threads = self.threads
            options.random_seed = RANDOM_SEED
            options.mapper.random_seed = RANDOM_SEED
            options.mapper.bundle_adjustment.refine_extra_params = not how.fixed_distortion
            options.mapper.bundle_adjustment.refine_focal_length = not how.fixed_focal
            self._global_in_child(lambda: pc.global_mapping(database, images, out, options))
            return [pc.Reconstruction(str(folder)) for folder in sorted(out.iterdir())
                    if (folder / "images.bin").is_file()]
        options = pc.IncrementalPipelineOptions()
        options.num_threads = self.threads
        options.random_seed = RANDOM_SEED
        options.mapper.random_seed = RANDOM_SEED
        options.ba_refine_extra_params = not how.fixed_distortion
        options.ba_refine_focal_length = not how.fixed_focal
        if how.relaxed_start:
            options.min_model_size = 3
            options.init_num_trials = 400
            for key, value in RELAXED_MAPPER.items():
                setattr(options.mapper, key, value)
        models = self._run(lambda: pc.incremental_mapping(database, images, out, options,
                                                          next_image_callback=on_image,
                                                          cancellation_token=self.token))
        return list((models or {}).values())

    def _global_in_child(self, work) -> None:
        """pycolmap 4.2.1's global mapper takes no cancellation token: it runs in a forked child (its log
        goes to the same stderr, so progress lines still reach the stage), which a cancel kills."""
        if not hasattr(os, "fork"):  # Windows: in a thread, as the other calls (a cancel waits for it)
            self._run(work)
            return
        pid = os.fork()
        if pid == 0:  # the child: map, write the models, leave without running the parent's exit code
            code = 1
            try:
                _die_with_parent()
                work()
                code = 0
            except BaseException as exc:  # noqa: BLE001 - said on stderr, the parent reports the failure
                os.write(2, f"global mapper: {type(exc).__name__}: {exc}\n".encode())
            finally:
                os._exit(code)
        status = [None]

        def wait() -> None:
            while status[0] is None:
                done, code = os.waitpid(pid, os.WNOHANG)
                if done:
                    status[0] = code
                else:
                    time.sleep(0.05)

        def kill() -> None:
            try:
                os.kill(pid, signal.SIGKILL)  # glog turns SIGTERM into a stack dump
            except ProcessLookupError:
                pass

        self.ctx.run_cancellable(wait, on_cancel=kill)
        if os.waitstatus_to_exitcode(status[0]) != 0:
            raise StageFailed("the global mapper stopped with an error", "see the stage log")

    def undistort(self, model: Path, images: Path, out: Path) -> None:
        pc = self.pycolmap
        self._run(lambda: pc.undistort_images(out, model, images, output_type="COLMAP",
                                              undistort_options=pc.UndistortCameraOptions(), jpeg_quality=95,
                                              num_threads=self.threads, cancellation_token=self.token))


class ColmapCliEngine:
    """An external ``colmap`` executable (COLMAP 3.x command-line options)."""

    name = "colmap"

    def __init__(self, ctx: StageContext, threads: int, executable: str):
        self.ctx = ctx
        self.threads = threads
        self.executable = executable

    def _run(self, *args: str) -> None:
        argv = [self.executable, *args]
        self.ctx.log("$ " + " ".join(argv))
        holder: dict[str, subprocess.Popen[str]] = {}

        def work() -> int:
            try:
                process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                           errors="replace")
            except OSError as exc:
                raise StageFailed(f"cannot start COLMAP at {self.executable}: {exc.strerror or exc}",
                                  "check colmap_path in Preferences, or clear it to use the built-in pycolmap"
                                  ) from None
            holder["process"] = process
            assert process.stdout is not None
            for line in process.stdout:
                self.ctx.log(line.rstrip("\n"))
            return process.wait()

        def stop() -> None:
            process = holder.get("process")
            if process is not None and process.poll() is None:
                process.terminate()

        code = self.ctx.run_cancellable(work, on_cancel=stop)
        if code != 0:
            raise StageFailed(f"COLMAP {args[0]} stopped with exit status {code}", "see the stage log")

    def extract(self, database: Path, images: Path, names: list[str], single_camera: bool) -> None:
        settings = self.ctx.settings
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
            handle.write("\n".join(names) + "\n")
            image_list = handle.name
        try:
            self._run("feature_extractor", "--database_path", str(database), "--image_path", str(images),
                      "--image_list_path", image_list, "--ImageReader.camera_model", settings.camera_model,
                      "--ImageReader.single_camera", "1" if single_camera else "0",
                      "--SiftExtraction.max_num_features", str(settings.max_features),
                      "--SiftExtraction.max_image_size", str(settings.sfm_max_image_size),
                      "--SiftExtraction.num_threads", str(self.threads), "--SiftExtraction.use_gpu", "0")
        finally:
            Path(image_list).unlink(missing_ok=True)

    def match_all(self, database: Path, count: int) -> None:
        self._run("exhaustive_matcher", "--database_path", str(database), "--SiftMatching.num_threads",
                  str(self.threads), "--SiftMatching.use_gpu", "0", "--ExhaustiveMatching.block_size",
                  str(exhaustive_block_size(count)))

    def match_pairs(self, database: Path, pairs_file: Path, count: int) -> None:
        self._run("matches_importer", "--database_path", str(database), "--match_list_path", str(pairs_file),
                  "--match_type", "pairs", "--SiftMatching.num_threads", str(self.threads),
                  "--SiftMatching.use_gpu", "0")

    def map(self, how: MapperTry, database: Path, images: Path, out: Path, on_image) -> list[Any]:
        import pycolmap

        if how.mapper == "global":
            return []  # the global mapper is not part of the COLMAP 3 executable
        args = ["mapper", "--database_path", str(database), "--image_path", str(images), "--output_path",
                str(out), "--Mapper.num_threads", str(self.threads),
                "--Mapper.ba_refine_extra_params", "0" if how.fixed_distortion else "1",
                "--Mapper.ba_refine_focal_length", "0" if how.fixed_focal else "1"]
        if how.relaxed_start:
            args += ["--Mapper.min_model_size", "3", "--Mapper.init_num_trials", "400"]
            for key, value in RELAXED_MAPPER.items():
                args += [f"--Mapper.{key}", str(value)]
        self._run(*args)
        return [pycolmap.Reconstruction(str(folder)) for folder in sorted(out.iterdir())
                if (folder / "images.bin").is_file()]

    def undistort(self, model: Path, images: Path, out: Path) -> None:
        self._run("image_undistorter", "--image_path", str(images), "--input_path", str(model), "--output_path",
                  str(out), "--output_type", "COLMAP")


def _die_with_parent() -> None:
    """Linux: the forked mapper is killed when the stage process dies (elsewhere it ends on its own)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def pairs_block_size(count: int) -> int:
    """Pairs per block of an imported pair list: about 16 progress steps."""
    return max(10, math.ceil(count / 16))


def exhaustive_block_size(count: int) -> int:
    """Blocks small enough to report progress about 16 times, large enough to keep matching efficient."""
    return max(4, math.ceil(count / 4))


def make_engine(ctx: StageContext, threads: int):
    path = ctx.settings.colmap_path
    if path:
        return ColmapCliEngine(ctx, threads, str(Path(path).expanduser()))
    return PycolmapEngine(ctx, threads)
