"""Pair selection (pipeline/pairing.py) and the mapping ladder's order (pipeline/sfm.py): pure, no COLMAP."""

from __future__ import annotations

import numpy as np
import pytest

from splatstudio.pipeline import pairing
from splatstudio.pipeline.pairing import (
    EXHAUSTIVE_LIMIT,
    LOOP_NEIGHBOURS,
    RETRIEVAL_NEIGHBOURS,
    SEQUENCE_OVERLAP,
    choose_matcher,
    connect,
    describe_photos,
    looks_ordered,
    select_pairs,
    similarity,
)
from splatstudio.pipeline.sfm import mapping_ladder


def _connected(count: int, pairs) -> bool:
    return len(set(pairing.components(count, pairs).tolist())) == 1


def _chain_scores(count: int, seed: int = 0) -> np.ndarray:
    """Similarity of photos taken along a loop: high for neighbours in time, the ends meeting again."""
    rng = np.random.default_rng(seed)
    index = np.arange(count)
    gap = np.abs(index[:, None] - index[None, :])
    gap = np.minimum(gap, count - gap)  # the walk returns to its start
    scores = np.exp(-gap / 3.0) + 0.01 * rng.random((count, count))
    scores = (scores + scores.T) / 2
    np.fill_diagonal(scores, -np.inf)
    return scores


def test_a_few_photos_match_every_pair_and_more_are_chosen_by_content():
    few = choose_matcher("auto", EXHAUSTIVE_LIMIT)
    assert few.kind == "exhaustive" and f"{EXHAUSTIVE_LIMIT * (EXHAUSTIVE_LIMIT - 1) // 2} pairs" in few.reason
    many = choose_matcher("auto", 60)
    assert many.kind == "retrieval" and "1770 pairs" in many.reason and str(RETRIEVAL_NEIGHBOURS) in many.reason
    ordered = choose_matcher("auto", 60, ordered_photos=True)
    assert ordered.kind == "sequential" and "in order" in ordered.reason
    video = choose_matcher("auto", 60, sequences=[[f"f{i}" for i in range(50)]])
    assert video.kind == "sequential" and "50 of the 60 photos are video frames" in video.reason
    forced = choose_matcher("exhaustive", 500)
    assert forced.kind == "exhaustive" and "settings" in forced.reason
    with pytest.raises(ValueError):
        choose_matcher("vocabtree", 60)


def test_retrieval_pairs_grow_linearly_and_keep_the_graph_connected():
    counts = {}
    for count in (40, 80, 160):
        pairs = select_pairs(similarity(np.random.default_rng(count).normal(size=(count, 32))), "retrieval")
        assert all(i < j for i, j in pairs) and len(set(pairs)) == len(pairs)
        partners = np.zeros(count, int)
        for i, j in pairs:
            partners[i] += 1
            partners[j] += 1
        assert partners.min() >= RETRIEVAL_NEIGHBOURS
        assert _connected(count, pairs)
        counts[count] = len(pairs)
    assert counts[160] <= 160 * RETRIEVAL_NEIGHBOURS < 160 * 159 // 2
    assert counts[160] / counts[40] < 4.5  # linear (x4 photos), not quadratic (x16)


def test_connect_adds_the_most_similar_pair_between_parts():
    scores = np.full((6, 6), 0.1)
    scores[:3, :3] = scores[3:, 3:] = 0.9  # two groups of three
    scores[2, 4] = scores[4, 2] = 0.5  # their most alike pair
    np.fill_diagonal(scores, -np.inf)
    within = {(0, 1), (1, 2), (3, 4), (4, 5)}
    joined = connect(scores, set(within))
    assert joined == within | {(2, 4)}
    assert connect(scores, joined) == joined  # already one piece: nothing added


def test_sequential_pairs_follow_the_sequence_and_close_the_loop():
    count = 60
    scores = _chain_scores(count)
    pairs = set(select_pairs(scores, "sequential", [list(range(count))]))
    for i in range(count - 1):
        for step in range(1, SEQUENCE_OVERLAP + 1):
            if i + step < count:
                assert (i, i + step) in pairs
    assert (0, count - 1) in pairs  # loop closure: the last frame looks like the first
    assert len(pairs) <= count * (SEQUENCE_OVERLAP + LOOP_NEIGHBOURS)


def test_loose_photos_beside_a_video_get_the_full_retrieval_neighbours():
    count = 40
    scores = similarity(np.random.default_rng(1).normal(size=(count, 16)))
    pairs = select_pairs(scores, "sequential", [list(range(30))])  # 30 frames, 10 photos
    partners = {i: 0 for i in range(count)}
    for i, j in pairs:
        partners[i] += 1
        partners[j] += 1
    assert min(partners[i] for i in range(30, 40)) >= RETRIEVAL_NEIGHBOURS


def test_order_is_recognised_only_when_photos_follow_the_walk():
    assert looks_ordered(_chain_scores(30))
    rng = np.random.default_rng(2)
    shuffled = rng.permutation(30)
    assert not looks_ordered(_chain_scores(30)[np.ix_(shuffled, shuffled)])
    assert not looks_ordered(_chain_scores(6))  # too few to tell


def test_global_descriptors_find_photos_of_the_same_place():
    """Photos of one place share most of their features (with noise); retrieval must find them."""
    rng = np.random.default_rng(0)
    places = [rng.integers(0, 256, size=(600, 128)).astype(np.float32) for _ in range(5)]
    photos, place_of = [], []
    for place, pool in enumerate(places):
        for _ in range(4):
            seen = pool[rng.choice(len(pool), 400, replace=False)] + rng.normal(0, 8, size=(400, 128))
            clutter = rng.integers(0, 256, size=(100, 128))
            photos.append(np.clip(np.concatenate([seen, clutter]), 0, 255).astype(np.uint8))
            place_of.append(place)
    photos.append(np.zeros((0, 128), np.uint8))  # a photo without features stays harmless
    scores = similarity(describe_photos(photos))
    for i in range(20):
        best = np.argsort(-scores[i])[:3]
        assert all(place_of[j] == place_of[i] for j in best), (i, best)
    pairs = select_pairs(scores, "retrieval", neighbours=3)
    assert _connected(21, pairs)


def test_the_mapping_ladder_tries_mappers_then_pairs_then_camera_assumptions():
    kinds = [(rung.kind, rung.how.label if rung.how else None) for rung in mapping_ladder("global", "retrieval")]
    assert kinds == [("map", "global mapper"), ("map", "incremental mapper"),
                     ("map", "incremental mapper, relaxed initial pair"), ("more_pairs", None),
                     ("no_distortion", None), ("fixed_focal", None)]
    incremental_first = [rung.how.label for rung in mapping_ladder("incremental", "exhaustive") if rung.how]
    assert incremental_first == ["incremental mapper", "global mapper", "incremental mapper, relaxed initial pair"]
    assert "more_pairs" not in [rung.kind for rung in mapping_ladder("global", "exhaustive")]
    external = mapping_ladder("global", "exhaustive", engine="colmap")
    assert all(rung.how is None or rung.how.mapper == "incremental" for rung in external)
    assert all(rung.why for rung in mapping_ladder("global", "sequential"))
    with pytest.raises(ValueError):
        mapping_ladder("hierarchical", "exhaustive")
