"""Which photo pairs to match: every pair for a few photos, otherwise only the pairs mapping needs.

Matching every pair grows with the square of the photos (23 photos: 253 pairs; 150: 11,175) and dominated
the time of structure from motion. Beyond :data:`EXHAUSTIVE_LIMIT` photos each photo is matched only with

* the photos that look most like it (*retrieval*): a global descriptor per photo, VLAD over a small
  vocabulary learned from the project's own SIFT features (nothing to download, nothing shipped), compared
  by cosine similarity; its :data:`RETRIEVAL_NEIGHBOURS` nearest are kept;
* and, for ordered photos (the frames of a video, or photos whose order already follows the walk),
  its :data:`SEQUENCE_OVERLAP` successors (*sequential*), with the nearest :data:`LOOP_NEIGHBOURS` by
  retrieval added to close loops (the walk returning to its start) and to tie videos and photos together.

Either way the pair graph is made connected: while it falls apart, the most similar pair joining two parts
is added. The number of pairs grows linearly with the photos.

Pure numpy: the descriptors come in as arrays, pairs go out as index pairs; the stage reads the COLMAP
database and writes the pair list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

EXHAUSTIVE_LIMIT = 20
"""Up to this many photos every pair is matched (190 pairs): retrieval would save less than half of them."""
EXHAUSTIVE_AFFORDABLE = 150
"""Up to this many photos the mapping ladder's other pairing is every pair (11,175 pairs)."""
RETRIEVAL_NEIGHBOURS = 5
SEQUENCE_OVERLAP = 5
LOOP_NEIGHBOURS = 5
VOCABULARY_WORDS = 64
VOCABULARY_SAMPLE = 32_000
"""Descriptors drawn (evenly over the photos) to learn the vocabulary."""
ORDERED_FRACTION = 0.6
"""Photos count as ordered when this share of them has its successor among its three most similar."""

MATCHERS = ("exhaustive", "retrieval", "sequential")


@dataclass(frozen=True)
class MatcherChoice:
    kind: str
    reason: str


def choose_matcher(setting: str, count: int, sequences: Sequence[Sequence[str]] = (),
                   ordered_photos: bool = False) -> MatcherChoice:
    """The pairing for ``count`` photos, and why, in words a user can read.

    ``setting`` is the ``matcher`` setting: ``auto`` decides; any other value is kept (``sequential`` without
    known sequences treats the photos in name order as one). ``sequences`` are the frames of each video;
    ``ordered_photos`` says that the photos' name order follows the walk (see :func:`looks_ordered`).
    """
    framed = sum(len(sequence) for sequence in sequences)
    if setting != "auto":
        if setting not in MATCHERS:
            raise ValueError(f"unknown matcher {setting!r}")
        return MatcherChoice(setting, f"{setting} matching was chosen in the settings")
    pairs = count * (count - 1) // 2
    if count <= EXHAUSTIVE_LIMIT:
        return MatcherChoice("exhaustive", f"{count} photos: every one of the {pairs} pairs is matched")
    if framed:
        return MatcherChoice("sequential", f"{framed} of the {count} photos are video frames: each frame is matched "
                             f"with the next {SEQUENCE_OVERLAP} and with the {LOOP_NEIGHBOURS} most similar "
                             f"photos (loop closure), not all {pairs} pairs")
    if ordered_photos:
        return MatcherChoice("sequential", f"{count} photos taken in order (each looks most like the next): each "
                             f"is matched with the next {SEQUENCE_OVERLAP} and the {LOOP_NEIGHBOURS} most "
                             f"similar (loop closure), not all {pairs} pairs")
    return MatcherChoice("retrieval", f"{count} photos: each is matched with the {RETRIEVAL_NEIGHBOURS} that look "
                         f"most like it, not all {pairs} pairs")


# --------------------------------------------------------------------------------------- descriptors

def _unit_rows(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float32)
    norms = np.linalg.norm(values, axis=1, keepdims=True)
    return values / np.maximum(norms, 1e-12)


def _nearest(descriptors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (Euclidean) of each descriptor row."""
    return np.argmax(descriptors @ centroids.T - 0.5 * np.einsum("ij,ij->i", centroids, centroids), axis=1)


def sample_descriptors(per_photo: Sequence[np.ndarray], total: int = VOCABULARY_SAMPLE, seed: int = 0,
                       progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Up to ``total`` rows drawn evenly over the photos (unit length, float32)."""
    rng = np.random.default_rng(seed)
    share = max(1, total // max(len(per_photo), 1))
    parts = []
    for index in range(len(per_photo)):
        d = per_photo[index]
        if len(d):
            parts.append(_unit_rows(d[rng.choice(len(d), min(share, len(d)), replace=False)]))
        if progress is not None:
            progress(index + 1, 2 * len(per_photo))
    return np.concatenate(parts) if parts else np.zeros((0, 128), np.float32)


def learn_vocabulary(sample: np.ndarray, words: int = VOCABULARY_WORDS, iterations: int = 10,
                     seed: int = 0) -> np.ndarray:
    """k-means centroids of unit-length descriptors (``words`` x dimension)."""
    sample = _unit_rows(sample)
    if len(sample) == 0:
        raise ValueError("no features to learn a vocabulary from")
    rng = np.random.default_rng(seed)
    words = min(words, len(sample))
    centroids = sample[rng.choice(len(sample), words, replace=False)].copy()
    for _ in range(iterations):
        labels = _nearest(sample, centroids)
        counts = np.bincount(labels, minlength=words)
        sums = np.zeros_like(centroids)
        np.add.at(sums, labels, sample)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
        empty = np.flatnonzero(~filled)
        if len(empty):  # a word nobody chose takes a random descriptor instead
            centroids[empty] = sample[rng.choice(len(sample), len(empty), replace=False)]
    return centroids


def vlad(descriptors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """VLAD vector of one photo: the residuals to each word summed, square-rooted, normalised per word
    and in all (zero for a photo without features)."""
    out = np.zeros_like(centroids)
    if len(descriptors):
        unit = _unit_rows(descriptors)
        labels = _nearest(unit, centroids)
        np.add.at(out, labels, unit - centroids[labels])
        out = np.sign(out) * np.sqrt(np.abs(out))
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    flat = out.ravel()
    norm = np.linalg.norm(flat)
    return flat / norm if norm > 0 else flat


def similarity(vectors: np.ndarray) -> np.ndarray:
    """Cosine similarity of global descriptors after removing their mean (what all photos of a set share,
    the sky of every outdoor photo, says nothing about which overlap). The diagonal is -inf."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if len(vectors) >= 3:
        vectors = vectors - vectors.mean(axis=0)
    vectors = _unit_rows(vectors)
    scores = vectors @ vectors.T
    np.fill_diagonal(scores, -np.inf)
    return scores


def describe_photos(per_photo: Sequence[np.ndarray], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Global descriptors (one row per photo) from each photo's SIFT descriptors.

    ``per_photo`` is read twice, in order, one photo at a time (a sample for the vocabulary, then the VLAD
    vectors): it may read each photo's descriptors from the database when indexed, so memory holds one
    photo's features, not the whole set's. ``progress(done, total)`` counts both passes.
    """
    centroids = learn_vocabulary(sample_descriptors(per_photo, progress=progress))
    count = len(per_photo)
    rows = []
    for index in range(count):
        rows.append(vlad(per_photo[index], centroids))
        if progress is not None:
            progress(count + index + 1, 2 * count)
    return np.stack(rows) if rows else np.zeros((0, centroids.size), np.float32)


# -------------------------------------------------------------------------------------------- pairs

def looks_ordered(scores: np.ndarray) -> bool:
    """True when the photos' order follows the capture: most photos have their successor among their three
    most similar (by chance that happens to about 3 in ``n``)."""
    count = len(scores)
    if count < 8:
        return False
    top = np.argsort(-scores, axis=1)[:, :3]
    hits = sum(i + 1 in top[i] for i in range(count - 1))
    return hits >= ORDERED_FRACTION * (count - 1)


def components(count: int, pairs: Iterable[tuple[int, int]]) -> np.ndarray:
    """The connected part (a label) of each of ``count`` nodes joined by index ``pairs``."""
    parent = list(range(count))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        parent[root(i)] = root(j)
    return np.array([root(i) for i in range(count)])


def connect(scores: np.ndarray, pairs: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """Add the most similar pairs that join separate parts of the pair graph until it is one piece."""
    count = len(scores)
    labels = components(count, pairs)
    if len(set(labels.tolist())) <= 1:
        return pairs
    upper_i, upper_j = np.triu_indices(count, 1)
    order = np.argsort(-scores[upper_i, upper_j], kind="stable")
    parent = {int(label): int(label) for label in set(labels.tolist())}

    def root(label: int) -> int:
        while parent[label] != label:
            label = parent[label]
        return label

    added = set(pairs)
    parts = len(parent)
    for index in order:
        i, j = int(upper_i[index]), int(upper_j[index])
        a, b = root(int(labels[i])), root(int(labels[j]))
        if a != b:
            parent[a] = b
            added.add((i, j))
            parts -= 1
            if parts == 1:
                break
    return added


def select_pairs(scores: np.ndarray, kind: str, sequences: Sequence[Sequence[int]] = (),
                 neighbours: int | None = None) -> list[tuple[int, int]]:
    """Index pairs ``(i, j)``, ``i < j``, to match.

    ``retrieval``: each photo with its ``neighbours`` most similar (:data:`RETRIEVAL_NEIGHBOURS`).
    ``sequential``: each frame of a sequence (indices in time order) with its next :data:`SEQUENCE_OVERLAP`
    and its ``neighbours`` (:data:`LOOP_NEIGHBOURS`) most similar, for loop closure; a photo in no sequence
    gets :data:`RETRIEVAL_NEIGHBOURS`. ``exhaustive``: every pair. The graph is then made connected
    (:func:`connect`).
    """
    count = len(scores)
    if kind == "exhaustive":
        return [(i, j) for i in range(count) for j in range(i + 1, count)]
    if kind not in ("retrieval", "sequential"):
        raise ValueError(f"unknown pairing {kind!r}")
    wanted = np.full(count, RETRIEVAL_NEIGHBOURS if neighbours is None or kind == "sequential" else neighbours)
    if kind == "sequential":
        framed = [i for sequence in sequences for i in sequence]
        wanted[framed] = LOOP_NEIGHBOURS if neighbours is None else neighbours
    wanted = np.minimum(wanted, count - 1)
    pairs: set[tuple[int, int]] = set()
    most = int(wanted.max()) if count > 1 else 0
    if most > 0:
        nearest = np.argsort(-scores, axis=1, kind="stable")[:, :most]  # the diagonal (-inf) comes last
        for i in range(count):
            for j in nearest[i, :wanted[i]]:
                pairs.add((min(i, int(j)), max(i, int(j))))
    if kind == "sequential":
        for sequence in sequences:
            for position, i in enumerate(sequence):
                for j in sequence[position + 1:position + 1 + SEQUENCE_OVERLAP]:
                    pairs.add((min(i, j), max(i, j)))
    return sorted(connect(scores, pairs))
