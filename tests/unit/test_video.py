"""Video in: the sharpest frame of each stretch of a generated clip is imported, upright, and recorded with its
video and time; frames of one video share one camera; photos and videos mix in one project."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from video_clips import frame_picture, make_clip, make_sound_only

from splatstudio.model.images import ImportCancelled, import_photos, inspect_photos
from splatstudio.model.settings import Settings
from splatstudio.model.video import (
    AUTO_MAX_FRAMES,
    AUTO_MIN_FRAMES,
    auto_frame_count,
    frame_sequences,
    laplacian_variance,
    probe,
)
from splatstudio.pipeline.sfm import camera_groups

SMALL = {"min_image_size": 64}
BLURRED = frozenset(i for i in range(60) if i % 3 != 1)
"""Two frames in three blurred: each stretch of six frames holds two sharp ones."""


def _import(project: Path, sources: list[Path], **settings) -> tuple:
    report = import_photos(project / "images", project / "import.json", sources, Settings({**SMALL, **settings}))
    manifest = json.loads((project / "import.json").read_text())
    return report, manifest


def _grey_sharpness(path: Path) -> float:
    with Image.open(path) as image:
        return laplacian_variance(np.asarray(image.convert("L")))


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"])
def test_the_sharpest_frame_of_each_stretch_is_imported(tmp_path, suffix):
    clip = make_clip(tmp_path / f"walk{suffix}", frames=60, fps=24, blurred=BLURRED)
    report, manifest = _import(tmp_path / "project", [clip], video_frames=10)

    assert not report.rejected
    frames = [entry for entry in manifest["accepted"] if "video" in entry]
    assert len(frames) == 10 == len(report.accepted)
    chosen = [entry["video"]["frame"] for entry in frames]
    assert not set(chosen) & BLURRED, chosen
    stretches = [int(entry["video"]["time"] / 2.5 * 10) for entry in frames]
    assert stretches == list(range(10))  # one frame from each quarter second, in time order
    assert all(entry["source"] == str(clip) and entry["width"] == 160 and entry["height"] == 96 for entry in frames)
    [video] = report.videos
    assert (video.chosen, video.decoded, video.target) == (10, 60, 10)

    # the stored pictures are the sharp ones: as sharp as a sharp source frame, far above a blurred one
    sharp = laplacian_variance(np.asarray(frame_picture(1, 160, 96, False).convert("L")))
    blurred = laplacian_variance(np.asarray(frame_picture(0, 160, 96, True).convert("L")))
    stored = [_grey_sharpness(tmp_path / "project" / "images" / entry["name"]) for entry in frames]
    assert min(stored) > 0.5 * sharp > 5 * blurred, (stored, sharp, blurred)


@pytest.mark.parametrize(("name", "codec", "pix_fmt"), [
    ("hdr.mp4", "libx264", "yuv420p10le"),  # 10 bits a sample, as phones' HDR videos
    ("screen.mov", "qtrle", "rgb24"),  # no luma plane: measured on a grey conversion
    ("camera.avi", "mjpeg", "yuvj422p"),  # full-range 4:2:2, as older cameras' motion JPEG
])
def test_other_pixel_formats_choose_the_sharp_frames_too(tmp_path, name, codec, pix_fmt):
    clip = make_clip(tmp_path / name, frames=60, fps=24, blurred=BLURRED, codec=codec, pix_fmt=pix_fmt)
    report, _ = _import(tmp_path / "project", [clip], video_frames=10)
    chosen = [a.video["frame"] for a in report.accepted]
    assert len(chosen) == 10 and not set(chosen) & BLURRED, chosen


def test_frames_are_named_and_sequenced_in_time_order(tmp_path):
    clip = make_clip(tmp_path / "Garden walk.mp4", frames=48, fps=24)
    report, manifest = _import(tmp_path / "project", [clip], video_frames=6)
    names = [entry["name"] for entry in manifest["accepted"]]
    assert names == [f"Garden_walk_{i:04d}.jpg" for i in range(1, 7)]
    assert frame_sequences(tmp_path / "project" / "images") == [names]
    times = [entry["video"]["time"] for entry in manifest["accepted"]]
    assert times == sorted(times) and times[-1] < 2.0
    assert sorted(p.name for p in (tmp_path / "project" / "images").iterdir()) == names


def test_a_short_video_gives_all_its_frames(tmp_path):
    clip = make_clip(tmp_path / "short.mp4", frames=8, fps=24)
    report, _ = _import(tmp_path / "project", [clip], video_frames=30)
    assert [a.video["frame"] for a in report.accepted] == list(range(8))


def test_automatic_frame_count_is_two_a_second_within_limits(tmp_path):
    assert auto_frame_count(30.0) == 60
    assert auto_frame_count(3.0) == AUTO_MIN_FRAMES == 20
    assert auto_frame_count(600.0) == AUTO_MAX_FRAMES == 150
    assert auto_frame_count(None) == AUTO_MIN_FRAMES
    clip = make_clip(tmp_path / "auto.mp4", frames=60, fps=24)  # 2.5 s: 20 frames by the lower limit
    report, _ = _import(tmp_path / "project", [clip])
    assert len(report.accepted) == 20


def test_a_phone_video_filmed_upright_is_turned_upright(tmp_path):
    # a phone held upright stores landscape pictures and a display rotation of a quarter turn clockwise
    clip = make_clip(tmp_path / "phone.mp4", frames=24, fps=24, rotation=-90)
    info = probe(clip)
    assert (info.width, info.height, info.coded_width, info.coded_height) == (96, 160, 160, 96)
    report, manifest = _import(tmp_path / "project", [clip], video_frames=3)
    assert "turned upright (a quarter turn clockwise, as the video's rotation says)" in report.videos[0].notes
    entry = manifest["accepted"][0]
    assert (entry["width"], entry["height"]) == (96, 160)
    with Image.open(tmp_path / "project" / "images" / entry["name"]) as stored:
        upright = np.asarray(stored.convert("RGB"), dtype=np.float32)
    expected = np.asarray(frame_picture(entry["video"]["frame"], 160, 96, False).transpose(Image.Transpose.ROTATE_270),
                          dtype=np.float32)
    other_way = np.asarray(frame_picture(entry["video"]["frame"], 160, 96, False).transpose(Image.Transpose.ROTATE_90),
                           dtype=np.float32)
    assert np.abs(upright - expected).mean() < 12 < np.abs(upright - other_way).mean()


def test_a_variable_frame_rate_spreads_the_frames_evenly_in_time(tmp_path):
    # 1.25 s at 24 fps, then 2.5 s at 12 fps: equal stretches of time, not of frame count
    times = [i / 24 if i < 30 else 30 / 24 + (i - 30) / 12 for i in range(60)]
    clip = make_clip(tmp_path / "vfr.mp4", frames=60, times=times)
    report, _ = _import(tmp_path / "project", [clip], video_frames=6)
    chosen = [a.video["time"] for a in report.accepted]
    assert len(chosen) == 6
    assert sum(1 for t in chosen if t < 1.25) == 2  # a third of the time, a third of the frames (not half)
    assert any("variable frame rate" in note for note in report.videos[0].notes)


def test_a_live_recording_without_a_declared_duration_is_spread_over_its_length(tmp_path):
    clip = make_clip(tmp_path / "live.webm", frames=48, fps=24, streamed=True)  # 2 s, as a browser records
    assert probe(clip).duration is None
    report, _ = _import(tmp_path / "project", [clip], video_frames=8)
    stretches = [int(a.video["time"] / 2.0 * 8) for a in report.accepted]
    assert stretches == list(range(8))


def test_a_file_without_pictures_is_refused_with_the_reason(tmp_path):
    sound = make_sound_only(tmp_path / "voice memo.mp4")
    report, manifest = _import(tmp_path / "project", [sound])
    assert [(r.source, r.reason) for r in report.rejected] == [(str(sound), "holds no video pictures (sound only?)")]
    assert manifest["accepted"] == []


def test_videos_and_photos_mix_and_each_video_is_one_camera(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(4)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)).save(photos / f"IMG_{i}.jpg")
    one = make_clip(tmp_path / "one.mp4", frames=36, fps=24, seed=1)
    two = make_clip(tmp_path / "two.mkv", frames=36, fps=24, seed=2)  # same size, no EXIF, another video
    project = tmp_path / "project"
    report, manifest = _import(project, [photos, one, two], video_frames=5)

    assert not report.rejected and len(report.accepted) == 3 + 5 + 5
    names = [entry["name"] for entry in manifest["accepted"]]
    assert names[:3] == ["IMG_0.jpg", "IMG_1.jpg", "IMG_2.jpg"]
    sequences = frame_sequences(project / "images")
    assert sequences == [[f"one_{i:04d}.jpg" for i in range(1, 6)], [f"two_{i:04d}.jpg" for i in range(1, 6)]]
    groups = camera_groups(project / "images", names)
    assert sequences[0] in groups and sequences[1] in groups
    # the photos (same size, no EXIF) share a camera of their own, as before
    assert ["IMG_0.jpg", "IMG_1.jpg", "IMG_2.jpg"] in groups and len(groups) == 3

    # adding more: the same video again is a duplicate; a new one gets its own sequence and camera
    three = make_clip(tmp_path / "three.webm", frames=24, fps=24, seed=3)
    again, manifest = _import(project, [one, three], video_frames=4)
    assert [r.reason for r in again.rejected] == ["duplicate: the same video as one.mp4"]
    assert len(frame_sequences(project / "images")) == 3
    assert len(camera_groups(project / "images", [e["name"] for e in manifest["accepted"]])) == 4


def test_the_preview_chooses_the_same_frames_and_shows_them_small(tmp_path):
    clip = make_clip(tmp_path / "walk.mp4", frames=60, fps=24, blurred=BLURRED)
    preview = inspect_photos([clip], Settings({**SMALL, "video_frames": 10}), thumb_size=64)
    [video] = preview.videos
    assert len(video.thumbs) == 10 and all(max(w, h) == 64 and len(data) == w * h * 3 for w, h, data in video.thumbs)
    imported, _ = _import(tmp_path / "project", [clip], video_frames=10)
    assert [a.video for a in preview.accepted] == [a.video for a in imported.accepted]
    assert all(a.name == "" for a in preview.accepted)
    assert not (tmp_path / "walk.mp4").with_suffix(".jpg").exists()


def test_stopping_during_extraction_keeps_nothing(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (240, 320, 3), dtype=np.uint8)).save(photos / "a.jpg")
    project = tmp_path / "project"
    _import(project, [photos])  # a project with one photo already
    before = (project / "import.json").read_bytes()
    clip = make_clip(tmp_path / "long.mp4", frames=120, fps=24)
    seen: list[str] = []

    def progress(fraction: float, message: str) -> None:
        seen.append(message)
        if "long.mp4: 0:02" in message:  # halfway through the video, some frames chosen and staged
            raise ImportCancelled()

    with pytest.raises(ImportCancelled):
        import_photos(project / "images", project / "import.json", [clip], Settings({**SMALL, "video_frames": 20}),
                      progress)
    assert any("frames chosen" in m and not m.endswith(" 0 of 20 frames chosen") for m in seen)
    assert (project / "import.json").read_bytes() == before
    assert sorted(p.name for p in (project / "images").iterdir()) == ["a.jpg"]
    assert [p.name for p in project.iterdir() if "-import-" in p.name] == []  # no staging folder left
    # and the same video imports afresh afterwards (it was not recorded as imported)
    report, _ = _import(project, [clip], video_frames=20)
    assert len(report.accepted) == 20 and not report.rejected


def test_frames_too_small_for_the_settings_are_refused_with_the_reason(tmp_path):
    clip = make_clip(tmp_path / "tiny.mp4", frames=12, fps=24)
    report, manifest = _import(tmp_path / "project", [clip], min_image_size=200)
    [rejected] = report.rejected
    assert rejected.source == str(clip) and "its frames are too small: 160x96 pixels" in rejected.reason
    assert manifest["accepted"] == [] and list((tmp_path / "project" / "images").iterdir()) == []
