"""What the structure-from-motion stages read back from COLMAP's database (``sfm/database.db``): pycolmap,
loaded when first needed (importing it takes a while and the stage modules are imported by every stage
process), and the photos' similarity by global descriptors made from their own features (for choosing
pairs, and for naming the photos that would join two groups).
"""

from __future__ import annotations

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
