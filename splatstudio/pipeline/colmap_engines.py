"""Two ways to run COLMAP for the SfM stages: the built-in pycolmap (default), or an external ``colmap``
executable (setting ``colmap_path``), for example a CUDA build. Both write the same database and model
files, so the stages around them (progress, figures, diagnostics, file moves) are shared.

Both report progress through COLMAP's own log lines (``Processed file [i/n]``...), which the stage's log
tee passes to the stage's parser; both stop promptly on cancel (a cancellation token for pycolmap, SIGTERM
for the executable).
"""

from __future__ import annotations

import math
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from splatstudio.pipeline.entry import StageContext, StageFailed

MAPPING_STRATEGIES = ("incremental", "incremental, relaxed initial pair", "global")

# Relaxed initialisation for hard sets (few strong pairs, little parallax): measured on the shared
# "lund" set, where default incremental mapping placed 2 of 29 photos and these settings placed 29.
RELAXED_MAPPER = {
    "init_min_num_inliers": 50,
    "init_min_tri_angle": 8.0,
    "init_max_forward_motion": 0.99,
    "abs_pose_min_num_inliers": 15,
    "abs_pose_min_inlier_ratio": 0.15,
}


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

    def match(self, database: Path, kind: str, count: int) -> None:
        pc = self.pycolmap
        matching = pc.FeatureMatchingOptions()
        matching.num_threads = self.threads
        if kind == "exhaustive":
            pairing = pc.ExhaustivePairingOptions()
            pairing.block_size = exhaustive_block_size(count)
            self._run(lambda: pc.match_exhaustive(database, matching_options=matching, pairing_options=pairing,
                                                  device=pc.Device.cpu, cancellation_token=self.token))
        else:
            pairing = pc.SequentialPairingOptions()
            pairing.overlap = 10
            self._run(lambda: pc.match_sequential(database, matching_options=matching, pairing_options=pairing,
                                                  device=pc.Device.cpu, cancellation_token=self.token))

    def map(self, strategy: str, database: Path, images: Path, out: Path, on_image) -> list[Any]:
        pc = self.pycolmap
        if strategy == "global":
            options = pc.GlobalPipelineOptions()
            models = self._run(lambda: pc.global_mapping(database, images, out, options))
        else:
            options = pc.IncrementalPipelineOptions()
            options.num_threads = self.threads
            options.random_seed = 0
            options.mapper.random_seed = 0
            if strategy != "incremental":
                options.min_model_size = 3
                options.init_num_trials = 400
                for key, value in RELAXED_MAPPER.items():
                    setattr(options.mapper, key, value)
            models = self._run(lambda: pc.incremental_mapping(database, images, out, options,
                                                              next_image_callback=on_image,
                                                              cancellation_token=self.token))
        return list((models or {}).values())

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

    def match(self, database: Path, kind: str, count: int) -> None:
        common = ["--database_path", str(database), "--SiftMatching.num_threads", str(self.threads),
                  "--SiftMatching.use_gpu", "0"]
        if kind == "exhaustive":
            self._run("exhaustive_matcher", *common, "--ExhaustiveMatching.block_size",
                      str(exhaustive_block_size(count)))
        else:
            self._run("sequential_matcher", *common, "--SequentialMatching.overlap", "10")

    def map(self, strategy: str, database: Path, images: Path, out: Path, on_image) -> list[Any]:
        import pycolmap

        if strategy == "global":
            return []  # the global mapper is not part of the COLMAP 3 executable
        args = ["mapper", "--database_path", str(database), "--image_path", str(images), "--output_path",
                str(out), "--Mapper.num_threads", str(self.threads)]
        if strategy != "incremental":
            args += ["--Mapper.min_model_size", "3", "--Mapper.init_num_trials", "400"]
            for key, value in RELAXED_MAPPER.items():
                args += [f"--Mapper.{key}", str(value)]
        self._run(*args)
        return [pycolmap.Reconstruction(str(folder)) for folder in sorted(out.iterdir())
                if (folder / "images.bin").is_file()]

    def undistort(self, model: Path, images: Path, out: Path) -> None:
        self._run("image_undistorter", "--image_path", str(images), "--input_path", str(model), "--output_path",
                  str(out), "--output_type", "COLMAP")


def exhaustive_block_size(count: int) -> int:
    """Blocks small enough to report progress about 16 times, large enough to keep matching efficient."""
    return max(4, math.ceil(count / 4))


def make_engine(ctx: StageContext, threads: int):
    path = ctx.settings.colmap_path
    if path:
        return ColmapCliEngine(ctx, threads, str(Path(path).expanduser()))
    return PycolmapEngine(ctx, threads)
