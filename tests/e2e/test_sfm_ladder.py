"""Structure from motion beyond exhaustive matching, through the real commands on generated scenes: ordered
photos matched sequentially with loop closure, and the mapping ladder with its diagnosis on a set made to fail
(two groups of photos of the sample scene that share nothing)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from splatstudio.cli import main as cli
from splatstudio.io.colmap import read_model
from splatstudio.model.library import Library
from splatstudio.model.poses import pose_errors
from splatstudio.model.sample import (
    HORIZONTAL_FOV_DEG,
    Intrinsics,
    build_scene,
    generate_sample,
    look_at_camera,
    render_view,
)
from splatstudio.pipeline.pairing import EXHAUSTIVE_LIMIT

pytestmark = pytest.mark.slow

TINY = ["--set", "max_features=4096", "--set", "min_image_size=200"]


def _two_patches(folder: Path) -> tuple[list[str], list[str]]:
    """Eight photos of the mat on each side of the toy, taken from above along a short arc: the two patches
    are four units apart, so no photo of one shares anything with a photo of the other."""
    scene = build_scene(0)
    intrinsics = Intrinsics.from_fov_x(320, 240, HORIZONTAL_FOV_DEG)
    folder.mkdir(parents=True)
    groups: list[list[str]] = [[], []]
    for side, sign in enumerate((1.0, -1.0)):
        target = np.array([2.0 * sign, 0.0, 0.0])
        for i in range(8):
            azimuth = math.radians((0 if sign > 0 else 180) - 40 + 80 * i / 7)
            centre = target - np.array([1.4 * math.cos(azimuth), 1.4 * math.sin(azimuth), -1.5 - 0.2 * (i % 2)])
            camera = look_at_camera(f"IMG_{8 * side + i + 1:04d}.jpg", centre, target)
            Image.fromarray(render_view(scene, camera, intrinsics)).save(folder / camera.name, quality=92)
            groups[side].append(camera.name)
    return groups[0], groups[1]


def test_the_ladder_says_what_it_tried_and_names_the_photos_it_left_out(tmp_path, capsys):
    first, second = _two_patches(tmp_path / "photos")
    lib = str(tmp_path / "lib")
    assert cli(["--library", lib, "new", "Patches", str(tmp_path / "photos"), *TINY,
                "--set", "matcher=retrieval"]) == 0
    capsys.readouterr()
    assert cli(["--library", lib, "run", "Patches", "--until", "mapping"]) == 0
    project = Library(lib).get("Patches")
    figures = project.stage_record("mapping").figures
    assert figures["registered"] == 8 and figures["total"] == 16
    kept, left = (first, second) if set(figures["dropped"]) == set(second) else (second, first)
    assert figures["dropped"] == sorted(left)

    steps = [(a["how"], "skipped" in a) for a in figures["attempts"]]
    assert steps == [("incremental mapper", False),
                     ("global mapper", True),  # no mapper can place photos that share no matches
                     ("incremental mapper, relaxed initial pair", True),
                     ("matched every pair (120), then incremental mapper", False),  # another pairing can help
                     ("no lens distortion", True),
                     ("no lens distortion, focal length fixed", True)]
    assert figures["attempts"][0]["models"] == 2 and figures["attempts"][0]["model_sizes"] == [8, 8]
    assert all(a["why"] for a in figures["attempts"])

    diagnosis = figures["diagnosis"]
    assert "2 groups that share no features" in diagnosis["cause"]
    assert sorted(diagnosis["groups"]) == sorted([sorted(first), sorted(second)])
    assert set(diagnosis["photos"]) == set(left)
    assert all("separate group of 8 photos" in reason for reason in diagnosis["photos"].values())
    bridge = [name for name in first + second if name in diagnosis["advice"]]
    assert "take more photos between" in diagnosis["advice"] and len(bridge) == 2
    assert {bridge[0] in first, bridge[1] in first} == {True, False}  # one photo of each group

    assert json.loads(project.path("sfm", "report.json").read_text())["diagnosis"] == diagnosis
    log = project.log_path("mapping").read_text()
    assert "why: the photos fall into 2 groups" in log and "what to try: take more photos between" in log
    for name in left:
        assert f"{name}: overlaps only with a separate group" in log


def test_ordered_photos_are_matched_in_sequence_with_loop_closure(tmp_path):
    count = EXHAUSTIVE_LIMIT + 4
    sample = generate_sample(tmp_path / "photos", count, 320, 240, seed=0)  # one orbit, in order
    lib = str(tmp_path / "lib")
    assert cli(["--library", lib, "new", "Orbit", str(sample.directory), *TINY]) == 0
    assert cli(["--library", lib, "run", "Orbit", "--until", "mapping"]) == 0
    project = Library(lib).get("Orbit")
    matching = project.stage_record("matching").figures
    assert matching["matcher"] == "sequential" and "in order" in matching["matcher_reason"]
    assert matching["pairs"] < matching["all_pairs"] == count * (count - 1) // 2
    pairs = project.path("sfm", "pairs.txt").read_text().split("\n")
    assert f"{sample.cameras[0].name} {sample.cameras[-1].name}" in pairs  # the loop is closed
    assert "pairing: sequential" in project.log_path("matching").read_text()

    mapping = project.stage_record("mapping").figures
    assert mapping["registered"] == count and mapping["dropped"] == []
    model = read_model(project.path("sfm", "sparse", "0"))
    estimated = {img.name: (img.rotation_matrix(), np.asarray(img.tvec, float)) for img in model.images.values()}
    errors = pose_errors(estimated, sample.poses())
    assert errors.missing == () and errors.median_rotation_deg < 1.0 and errors.max_position < 0.01
