"""What the structure-from-motion stages read back from COLMAP's database (``sfm/database.db``): pycolmap,
loaded when first needed (importing it takes a while and the stage modules are imported by every stage
process), and the photos' similarity by global descriptors made from their own features (for choosing
pairs, and for naming the photos that would join two groups); and the numbering that makes SfM repeatable.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from splatstudio.pipeline import pairing


def load_pycolmap():
    """The pycolmap module (imported on first use)."""
    import pycolmap

    return pycolmap


class Descriptors:
    """Each photo's SIFT descriptors (uint8 rows) read from the database when indexed, in ``names`` order
    (photos without features give none)."""

    def __init__(self, db: Any, names: list[str]):
        self.db = db
        self.names = names
        self.ids = {image.name: image.image_id for image in db.read_all_images()}

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> Any:
        import numpy as np

        image_id = self.ids.get(self.names[index])
        if image_id is None or not self.db.exists_descriptors(image_id):
            return np.zeros((0, 128), np.uint8)
        return np.asarray(self.db.read_descriptors(image_id).data)


def photo_similarity(database: Path, names: list[str], progress=None) -> Any:
    """Cosine similarity of the photos' global descriptors (VLAD over the project's own features)."""
    db = load_pycolmap().Database.open(database)
    try:
        return pairing.similarity(pairing.describe_photos(Descriptors(db, names), progress))
    finally:
        db.close()


CAMERA_SENSOR = 0  # COLMAP's SensorType::CAMERA: a frame's or rig's data id is then an image id, its sensor a camera
_SHIFT = 1 << 30  # ids move past every old id first, so no unique index sees two rows with one id mid-way
# Where each kind of id is written: (table, column, kind, the column that must say CAMERA_SENSOR for the row to hold
# that kind, or None). Pairs that are absent (COLMAP before 3.12 has no rigs or frames) are left out.
_ID_COLUMNS = (
    ("images", "image_id", "image", None), ("keypoints", "image_id", "image", None),
    ("descriptors", "image_id", "image", None), ("frame_data", "data_id", "image", "sensor_type"),
    ("pose_priors", "corr_data_id", "image", "corr_sensor_type"), ("pose_priors", "image_id", "image", None),
    ("cameras", "camera_id", "camera", None), ("images", "camera_id", "camera", None),
    ("frame_data", "sensor_id", "camera", "sensor_type"), ("rig_sensors", "sensor_id", "camera", "sensor_type"),
    ("rigs", "ref_sensor_id", "camera", "ref_sensor_type"),
    ("pose_priors", "corr_sensor_id", "camera", "corr_sensor_type"),
    ("frames", "frame_id", "frame", None), ("frame_data", "frame_id", "frame", None),
    ("rigs", "rig_id", "rig", None), ("frames", "rig_id", "rig", None), ("rig_sensors", "rig_id", "rig", None))


def _ranks(order) -> dict[int, int]:
    """``{old id: new id}``, new ids 1, 2, ... in ``order`` (repeats keep their first rank)."""
    ranks: dict[int, int] = {}
    for old in order:
        ranks.setdefault(old, len(ranks) + 1)
    return ranks


def _new_ids(db: sqlite3.Connection, tables: set[str]) -> dict[str, dict[int, int]]:
    """Each kind's ``{old id: new id}``: images by name, cameras, frames and rigs by the first image they hold."""
    images = db.execute("SELECT image_id, camera_id FROM images ORDER BY name").fetchall()
    image = _ranks(old for old, _ in images)
    camera = _ranks([camera for _, camera in images] +
                    [old for (old,) in db.execute("SELECT camera_id FROM cameras ORDER BY camera_id")])
    first_image: dict[int, int] = {}
    if "frame_data" in tables:
        for frame, data, sensor in db.execute("SELECT frame_id, data_id, sensor_type FROM frame_data"):
            if sensor == CAMERA_SENSOR and data in image:
                first_image[frame] = min(first_image.get(frame, len(image) + 1), image[data])
    frames = [old for (old,) in db.execute("SELECT frame_id FROM frames ORDER BY frame_id")] \
        if "frames" in tables else []
    frame = _ranks(sorted(first_image, key=first_image.get) + frames)
    rigs = db.execute("SELECT rig_id, ref_sensor_id, ref_sensor_type FROM rigs").fetchall() if "rigs" in tables else []
    last = len(camera) + 1
    rig = _ranks(old for old, _, _ in sorted(
        rigs, key=lambda r: (camera.get(r[1], last) if r[2] == CAMERA_SENSOR else last, r[0])))
    return {"image": image, "camera": camera, "frame": frame, "rig": rig}


def number_in_name_order(database: Path) -> bool:
    """Renumber a feature database that holds no matches yet so that its images, cameras, frames and rigs are
    numbered in the photos' name order; True when any id changed.

    COLMAP numbers an image when its extraction thread finishes, so the ids change from run to run, and with them
    which photo of a pair comes first in matching and which image the mapper tries first, and the same photos gave
    different sparse models and held-out PSNR (NOTES). In name order, the same photos and settings give the same
    database."""
    with closing(sqlite3.connect(database)) as db, db:  # one transaction: all renumbered, or nothing
        if db.execute("SELECT EXISTS(SELECT 1 FROM matches) OR EXISTS(SELECT 1 FROM two_view_geometries)").fetchone()[0]:
            raise ValueError(f"{database}: holds matches already; only a feature database can be renumbered")
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        new_ids = _new_ids(db, tables)
        if all(old == new for ids in new_ids.values() for old, new in ids.items()):
            return False
        columns = {table: {row[1] for row in db.execute(f"PRAGMA table_info({table})")} for table in tables}
        db.execute("CREATE TEMP TABLE ids (old INTEGER PRIMARY KEY, new INTEGER)")
        for table, column, kind, sensor in _ID_COLUMNS:
            if {column, sensor} - {None} <= columns.get(table, set()):
                db.execute("DELETE FROM temp.ids")
                db.executemany("INSERT INTO temp.ids VALUES (?, ?)", new_ids[kind].items())
                rows = f"{sensor} = {CAMERA_SENSOR}" if sensor else "1"
                db.execute(f"UPDATE {table} SET {column} = (SELECT new FROM temp.ids WHERE old = {column}) + {_SHIFT} "
                           f"WHERE {rows} AND {column} IN (SELECT old FROM temp.ids)")
                db.execute(f"UPDATE {table} SET {column} = {column} - {_SHIFT} WHERE {column} >= {_SHIFT}")
        db.execute("DROP TABLE temp.ids")
    return True
