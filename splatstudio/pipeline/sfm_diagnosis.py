"""Why photos could not be placed in 3D, in a photographer's words (`diagnose`): from the features and the
matches in COLMAP's database and from the photos themselves (blur), the mapping stage (`sfm`) says what went
wrong with the set as a whole, why each photo left out was, and what to try.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from splatstudio.pipeline import pairing
from splatstudio.pipeline.sfm_database import load_pycolmap, photo_similarity

FEW_FEATURES = 300
LINKED_INLIERS = 30
"""Two photos with at least this many geometrically consistent matches count as overlapping."""
BLURRED = 0.35
"""A photo whose sharpness (variance of its Laplacian) is below this share of the set's median is blurred."""
ADVICE = ("walk around the subject taking a photo every few steps so that each part appears in 3+ photos "
          "with 60-80% overlap; avoid zoom changes, motion blur, reflective or moving subjects")


def _sharpness(path: Path) -> float:
    import numpy as np

    with Image.open(path) as image:
        image.draft("L", (400, 400))
        grey = image.convert("L")
        grey.thumbnail((400, 400))
        g = np.asarray(grey, dtype=np.float32)
    if g.shape[0] < 3 or g.shape[1] < 3:
        return 0.0
    return float((g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4.0 * g[1:-1, 1:-1]).var())


def _span(names: list[str]) -> str:
    """A group of photos in a few words: all of them when few, else the first and last few."""
    names = sorted(names)
    if len(names) <= 4:
        return ", ".join(names)
    return f"{', '.join(names[:2])} ... {', '.join(names[-2:])} ({len(names)} photos)"


def _groups(names: list[str], links: list[tuple[str, str]]) -> list[list[str]]:
    """Connected groups of photos (largest first); photos without any link are left out."""
    index = {name: i for i, name in enumerate(names)}
    labels = pairing.components(len(names), [(index[a], index[b]) for a, b in links if a in index and b in index])
    linked = {name for pair in links for name in pair}
    groups: dict[int, list[str]] = defaultdict(list)
    for name in names:
        if name in linked:
            groups[int(labels[index[name]])].append(name)
    return sorted(groups.values(), key=len, reverse=True)


@dataclass
class _Evidence:
    """What the database and the photos say: each photo's features, the overlapping pairs, each photo's
    count of overlapping partners, the inlier ratios of well-matched pairs, the groups that overlap among
    themselves, and the blurred photos."""

    features: dict[str, int]
    links: list[tuple[str, str]] = field(default_factory=list)
    degree: dict[str, int] = field(default_factory=dict)
    ratios: list[float] = field(default_factory=list)
    groups: list[list[str]] = field(default_factory=list)
    blurred: set[str] = field(default_factory=set)


def _evidence(database: Path, images_dir: Path, names: list[str]) -> _Evidence:
    pycolmap = load_pycolmap()
    db = pycolmap.Database.open(database)
    try:
        images = {image.image_id: image.name for image in db.read_all_images()}
        features = {name: db.num_keypoints_for_image(image_id) for image_id, name in images.items()}
        pair_ids, inliers = db.read_two_view_geometry_num_inliers()
        match_ids, match_counts = db.read_num_matches()
    finally:
        db.close()
    found = _Evidence(features, degree={name: 0 for name in names})
    raw = dict(zip(match_ids, match_counts, strict=True))
    for pair_id, count in zip(pair_ids, inliers, strict=True):
        id1, id2 = pycolmap.pair_id_to_image_pair(pair_id)
        a, b = images.get(id1), images.get(id2)
        if a is None or b is None:
            continue
        if raw.get(pair_id, 0) >= 50:
            found.ratios.append(count / raw[pair_id])
        if count >= LINKED_INLIERS:
            found.links.append((a, b))
            found.degree[a] = found.degree.get(a, 0) + 1
            found.degree[b] = found.degree.get(b, 0) + 1
    found.groups = [g for g in _groups(names, found.links) if len(g) >= 2]
    sharpness = {name: _sharpness(images_dir / name) for name in names if (images_dir / name).is_file()}
    median_sharpness = sorted(sharpness.values())[len(sharpness) // 2] if sharpness else 0.0
    found.blurred = {name for name, value in sharpness.items() if value < BLURRED * median_sharpness}
    return found


def _photo_reasons(found: _Evidence, names: list[str], placed: set[str], other_models: list[set[str]],
                   few: set[str]) -> dict[str, str]:
    """Each photo left out and why."""
    group_of = {name: index for index, group in enumerate(found.groups) for name in group}
    placed_groups = {group_of[name] for name in placed if name in group_of}
    photos: dict[str, str] = {}
    for name in (name for name in names if name not in placed):
        reasons = []
        if name in found.blurred:
            reasons.append("blurred (far less sharp than the others)")
        if name in few:
            reasons.append(f"too few details ({found.features.get(name, 0)} features): blur, darkness or a plain "
                           "surface")
        if not found.degree.get(name):
            reasons.append("shares no features with any other photo")
        elif placed and group_of.get(name) not in placed_groups:
            size = len(found.groups[group_of[name]])
            reasons.append(f"overlaps only with a separate group of {size} photos, not with the placed ones")
        elif any(name in model for model in other_models):
            reasons.append("was placed in a smaller separate model that could not be joined to the main one")
        else:
            reasons.append(f"overlaps with {found.degree[name]} photo(s), too weakly or from too close a viewpoint "
                           f"to be placed")
        photos[name] = "; ".join(reasons)
    return photos


def _cause_and_advice(found: _Evidence, database: Path, names: list[str], left_out: list[str],
                      few: set[str]) -> tuple[str, str]:
    """The cause, in one sentence, and what to do."""
    groups, count = found.groups, len(names)
    ratio = sorted(found.ratios)[len(found.ratios) // 2] if found.ratios else 1.0
    advice = ADVICE
    if len(groups) > 1:
        sizes = " and ".join(f"[{_span(group)}]" for group in groups[:3])
        cause = (f"the photos fall into {len(groups)} groups that share no features with each other: {sizes}"
                 if len(groups) <= 3 else f"the photos fall into {len(groups)} groups that share no features "
                 f"with each other (the largest: [{_span(groups[0])}])")
        bridge = _bridge(database, names, groups)
        advice = (f"take more photos between {bridge[0]} and {bridge[1]} (the most alike photos of the two "
                  f"largest groups) so the groups overlap, or reconstruct each group as its own project")
    elif len(found.blurred & set(left_out)) > len(left_out) / 2:
        cause = f"{len(found.blurred & set(left_out))} of the photos left out are blurred"
        advice = "retake the blurred photos holding the camera still (or in more light); " + advice
    elif len(few) > count / 3:
        cause = (f"{len(few)} photos have too few distinctive details (e.g. {', '.join(sorted(few)[:3])}): "
                 "plain walls, sky, blur or darkness")
        advice = "photograph a textured subject in good light, or move closer to it; " + advice
    elif len(found.links) < count - 1:
        cause = (f"too little overlap: only {len(found.links)} photo pairs share enough features, a connected set "
                 f"needs at least {count - 1}")
    elif ratio < 0.3:
        cause = ("most matches between photos are inconsistent: repeated patterns, symmetric or reflective "
                 "surfaces, or moving things")
        advice = ("include distinctive, non-repeating parts of the scene in every photo and avoid moving "
                  "subjects; " + advice)
    else:
        cause = ("the photos overlap but not from different enough positions (too little parallax: photos "
                 "taken from one spot, or a flat scene)")
        advice = "take the photos while walking around the subject, not turning on the spot; " + advice
    return cause, advice


def diagnose(database: Path, images_dir: Path, names: list[str], placed: set[str],
             other_models: list[set[str]]) -> dict[str, Any]:
    """Why photos could not be placed, in a photographer's words, from the features, the matches and the
    photos themselves.

    Returns ``cause`` (one sentence), ``photos`` (each photo left out and why), ``groups`` (the sets of
    photos that overlap among themselves but not with each other, when the photos fall apart) and
    ``advice`` (what to do). ``placed`` are the photos in the kept model (empty when none was built),
    ``other_models`` the photos of the models that were smaller.
    """
    found = _evidence(database, images_dir, names)
    left_out = [name for name in names if name not in placed]
    few = {name for name in names if found.features.get(name, 0) < FEW_FEATURES}
    photos = _photo_reasons(found, names, placed, other_models, few)
    cause, advice = _cause_and_advice(found, database, names, left_out, few)
    if photos and not placed:
        photos = {}  # nothing was placed: the cause speaks for all photos
    groups = found.groups
    return {"cause": cause, "photos": photos, "groups": [sorted(group) for group in groups if len(groups) > 1],
            "advice": advice}


def _bridge(database: Path, names: list[str], groups: list[list[str]]) -> tuple[str, str]:
    """The most alike pair of photos of the two largest groups (by their global descriptors)."""
    a, b = sorted(groups[0]), sorted(groups[1])
    try:
        scores = photo_similarity(database, names)
    except ValueError:  # no features at all
        return a[-1], b[0]
    index = {name: i for i, name in enumerate(names)}
    return max(((x, y) for x in a for y in b), key=lambda pair: scores[index[pair[0]], index[pair[1]]])
