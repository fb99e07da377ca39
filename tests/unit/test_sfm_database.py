"""The feature database numbered in the photos' name order (`sfm_database.number_in_name_order`), on databases
pycolmap wrote itself: COLMAP numbers an image when its extraction thread finishes, so without it the same photos
gave different matches and models from run to run."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pycolmap
import pytest
from PIL import Image

from splatstudio.model.sample import generate_sample
from splatstudio.pipeline.sfm_database import number_in_name_order


def _photos(folder: Path) -> list[str]:
    """Four photos of the sample scene, each cropped to its own width, so each has a camera of its own."""
    sample = generate_sample(folder, 4, 200, 150, seed=1)
    names = sorted(camera.name for camera in sample.cameras)
    for index, name in enumerate(names):
        with Image.open(folder / name) as photo:
            photo.crop((0, 0, 200 - 8 * index, 150)).save(folder / name, quality=95)
    return names


def _extract(database: Path, folder: Path, names: list[str]) -> None:
    """Features of ``names`` one photo at a time, in that order (so the ids follow it), a camera each."""
    for name in names:
        pycolmap.extract_features(database, folder, image_names=[name], camera_mode=pycolmap.CameraMode.PER_IMAGE,
                                  device=pycolmap.Device.cpu)


def _contents(database: Path) -> dict[str, tuple]:
    """Each photo's keypoints, descriptors, camera size, and the frame and rig that hold it, by name."""
    db = pycolmap.Database.open(database)
    try:
        frames = {data.id: frame for frame in db.read_all_frames() for data in frame.data_ids}
        rigs = {rig.rig_id: rig for rig in db.read_all_rigs()}
        contents = {}
        for image in db.read_all_images():
            camera = db.read_camera(image.camera_id)
            frame = frames[image.image_id]
            assert rigs[frame.rig_id].ref_sensor_id.id == image.camera_id  # the rig's camera is the photo's
            contents[image.name] = (np.asarray(db.read_keypoints(image.image_id)).tobytes(),
                                    np.asarray(db.read_descriptors(image.image_id).data).tobytes(),
                                    (camera.width, camera.height), image.image_id, image.camera_id, frame.frame_id,
                                    frame.rig_id)
        return contents
    finally:
        db.close()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> tuple[Path, list[str]]:
    folder = tmp_path_factory.mktemp("photos")
    return folder, _photos(folder)


def test_a_database_numbered_out_of_order_is_renumbered_by_name_and_each_photo_keeps_its_data(photos, tmp_path):
    folder, names = photos
    database = tmp_path / "database.db"
    _extract(database, folder, names[::-1])
    before = _contents(database)
    assert [before[name][3] for name in names] == [4, 3, 2, 1]  # ids in extraction order

    assert number_in_name_order(database)

    after = _contents(database)
    assert [after[name][3:] for name in names] == [(i, i, i, i) for i in (1, 2, 3, 4)]  # image, camera, frame, rig
    for name in names:  # each photo keeps its features and its own camera
        assert after[name][:3] == before[name][:3]
    assert [after[name][2][0] for name in names] == [200, 192, 184, 176]
    # and COLMAP matches and maps from it as from any database it wrote
    pycolmap.match_exhaustive(database, device=pycolmap.Device.cpu)
    db = pycolmap.Database.open(database)
    try:
        assert db.num_matched_image_pairs() == 6
    finally:
        db.close()


def test_the_same_photos_in_any_extraction_order_give_the_same_database(photos, tmp_path):
    folder, names = photos
    orders = (names, names[::-1], [names[2], names[0], names[3], names[1]])
    databases = [tmp_path / f"{index}.db" for index in range(len(orders))]
    for database, order in zip(databases, orders, strict=True):
        _extract(database, folder, order)
        number_in_name_order(database)
    tables = ("images", "cameras", "keypoints", "descriptors", "frames", "frame_data", "rigs", "rig_sensors")

    def rows(database: Path) -> dict[str, list]:
        with sqlite3.connect(database) as db:
            return {table: db.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall() for table in tables}

    first = rows(databases[0])
    assert all(rows(database) == first for database in databases[1:])


def test_a_database_in_name_order_is_left_as_it_is_and_one_with_matches_is_refused(photos, tmp_path):
    folder, names = photos
    database = tmp_path / "database.db"
    _extract(database, folder, names)
    written = database.read_bytes()
    assert not number_in_name_order(database)
    assert database.read_bytes() == written

    matched = tmp_path / "matched.db"
    _extract(matched, folder, names[::-1])
    pycolmap.match_exhaustive(matched, device=pycolmap.Device.cpu)
    kept = tmp_path / "kept.db"
    shutil.copyfile(matched, kept)
    with pytest.raises(ValueError, match="holds matches already"):
        number_in_name_order(matched)
    assert matched.read_bytes() == kept.read_bytes()


def test_a_database_of_colmap_before_rigs_and_frames_is_renumbered_too(tmp_path):
    """An external COLMAP older than 3.12 (Debian's, say) writes no rigs or frames, and its pose priors name the
    image; its tables as that COLMAP creates them."""
    database = tmp_path / "old.db"
    with sqlite3.connect(database) as db:
        db.executescript("""
            CREATE TABLE cameras (camera_id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, model INTEGER NOT NULL,
                width INTEGER NOT NULL, height INTEGER NOT NULL, params BLOB, prior_focal_length INTEGER NOT NULL);
            CREATE TABLE images (image_id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, name TEXT NOT NULL UNIQUE,
                camera_id INTEGER NOT NULL, CONSTRAINT image_id_check CHECK(image_id >= 0 and image_id < 2147483647));
            CREATE TABLE keypoints (image_id INTEGER PRIMARY KEY NOT NULL, rows INTEGER NOT NULL, cols INTEGER NOT NULL,
                data BLOB);
            CREATE TABLE descriptors (image_id INTEGER PRIMARY KEY NOT NULL, rows INTEGER NOT NULL,
                cols INTEGER NOT NULL, data BLOB);
            CREATE TABLE pose_priors (image_id INTEGER PRIMARY KEY NOT NULL, position BLOB,
                coordinate_system INTEGER NOT NULL);
            CREATE TABLE matches (pair_id INTEGER PRIMARY KEY NOT NULL, rows INTEGER NOT NULL, cols INTEGER NOT NULL,
                data BLOB);
            CREATE TABLE two_view_geometries (pair_id INTEGER PRIMARY KEY NOT NULL, rows INTEGER NOT NULL,
                cols INTEGER NOT NULL, data BLOB, config INTEGER NOT NULL);
            INSERT INTO cameras VALUES (1, 2, 640, 480, NULL, 0), (2, 2, 800, 600, NULL, 0);
            INSERT INTO images VALUES (1, 'c.jpg', 1), (2, 'a.jpg', 2), (3, 'b.jpg', 1);
            INSERT INTO keypoints VALUES (1, 1, 2, x'0c'), (2, 1, 2, x'0a'), (3, 1, 2, x'0b');
            INSERT INTO descriptors VALUES (1, 1, 128, x'1c'), (2, 1, 128, x'1a'), (3, 1, 128, x'1b');
            INSERT INTO pose_priors VALUES (3, x'2b', 0);
        """)
    assert number_in_name_order(database)
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT image_id, name, camera_id FROM images ORDER BY image_id").fetchall() == \
            [(1, "a.jpg", 1), (2, "b.jpg", 2), (3, "c.jpg", 2)]
        assert db.execute("SELECT camera_id, width FROM cameras ORDER BY 1").fetchall() == [(1, 800), (2, 640)]
        assert db.execute("SELECT image_id, data FROM keypoints ORDER BY 1").fetchall() == \
            [(1, b"\x0a"), (2, b"\x0b"), (3, b"\x0c")]
        assert db.execute("SELECT image_id, data FROM descriptors ORDER BY 1").fetchall() == \
            [(1, b"\x1a"), (2, b"\x1b"), (3, b"\x1c")]
        assert db.execute("SELECT image_id, position FROM pose_priors").fetchall() == [(2, b"\x2b")]
