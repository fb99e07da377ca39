"""The hand edit list (issue 23, item 2): delete, hide, isolate, show all, selection changes and transforms,
undone and redone exactly; saved and read back; a list made on another model, or damaged, refused in words."""

from __future__ import annotations

import base64
import json
import zlib

import numpy as np
import pytest
from _clouds import random_cloud

from splatstudio.model.edits import (
    EditsError,
    EditSession,
    StaleEdits,
    apply_edits,
    decode_mask,
    encode_mask,
    model_fingerprint,
)
from splatstudio.model.transform import Similarity, level_from_up, scale_between


def _mask(n: int, idx) -> np.ndarray:
    m = np.zeros(n, dtype=bool)
    m[list(idx)] = True
    return m


def _state(session: EditSession) -> tuple:
    return (session.deleted.copy(), session.hidden.copy(), session.selection.copy(), session.transform.matrix.copy())


def test_delete_hide_isolate_and_show_all_undo_and_redo_exactly():
    s = EditSession(10)
    assert not s.can_undo and s.undo() is None and s.redo() is None
    states = [_state(s)]
    assert s.select(_mask(10, [1, 2, 3]))
    assert s.selected_count == 3
    states.append(_state(s))
    assert s.delete_selection().describe() == "delete the selection (3 splats)"
    assert s.deleted.tolist() == _mask(10, [1, 2, 3]).tolist() and s.selected_count == 0
    states.append(_state(s))
    s.select(_mask(10, [2, 4, 5]))  # 2 is deleted: not selectable
    assert np.flatnonzero(s.selection).tolist() == [4, 5]
    states.append(_state(s))
    s.hide_selection()
    assert np.flatnonzero(s.hidden).tolist() == [4, 5]
    states.append(_state(s))
    s.select(_mask(10, [0]))
    states.append(_state(s))
    s.isolate()  # everything visible but 0 is hidden; 0 stays selected
    assert np.flatnonzero(s.visible).tolist() == [0] and s.selection.tolist() == _mask(10, [0]).tolist()
    states.append(_state(s))
    s.unhide_all()
    assert not s.hidden.any() and np.flatnonzero(s.visible).tolist() == [0, 4, 5, 6, 7, 8, 9]
    states.append(_state(s))
    for expected in reversed(states[:-1]):
        assert s.undo() is not None
        for got, want in zip(_state(s), expected, strict=True):
            assert np.array_equal(got, want)
    assert not s.can_undo and s.undo() is None
    for expected in states[1:]:
        assert s.redo() is not None
        for got, want in zip(_state(s), expected, strict=True):
            assert np.array_equal(got, want)
    assert not s.can_redo


def test_undoing_a_delete_brings_the_selection_back_and_a_new_step_drops_the_redo():
    s = EditSession(6)
    s.select(_mask(6, [0, 1]))
    s.delete_selection()
    assert s.undo() == "delete the selection (2 splats)"
    assert not s.deleted.any() and np.flatnonzero(s.selection).tolist() == [0, 1]
    assert s.can_redo and s.next_redo() == "delete the selection (2 splats)"
    s.select_none()
    assert not s.can_redo  # a new step after an undo forgets the redo, as every editor does


def test_select_modes_invert_all_and_none():
    s = EditSession(5)
    s.select(_mask(5, [0, 1]))
    s.select(_mask(5, [3]), "add")
    assert np.flatnonzero(s.selection).tolist() == [0, 1, 3]
    s.select(_mask(5, [1]), "subtract")
    assert np.flatnonzero(s.selection).tolist() == [0, 3]
    s.invert()
    assert np.flatnonzero(s.selection).tolist() == [1, 2, 4]
    s.select_all()
    assert s.selected_count == 5
    assert not s.select_all()  # no change: no undo step
    s.select_none()
    assert s.selected_count == 0
    with pytest.raises(ValueError, match="mode"):
        s.select(_mask(5, [0]), "xor")
    with pytest.raises(ValueError, match="for a model of 5"):
        s.select(np.ones(4, dtype=bool))


def test_nothing_to_do_is_no_step():
    s = EditSession(4)
    assert s.delete_selection() is None and s.hide_selection() is None and s.isolate() is None
    assert s.unhide_all() is None and s.apply_transform(Similarity(), "nothing") is None and not s.can_undo


def test_transforms_compose_and_undo_and_the_scale_keeps_its_unit():
    s = EditSession(3)
    level = level_from_up([0.0, 0.0, 1.0])
    s.apply_transform(level, "level from the cameras")
    scale = scale_between([0, 0, 0], [0, 0, 2], 5.0)
    s.apply_transform(scale, "scale", unit="m")
    assert np.allclose(s.transform.matrix, level.then(scale).matrix) and s.unit == "m"
    assert "scaled x2.5" in s.summary() and "(m)" in s.summary()
    s.undo()
    assert np.allclose(s.transform.matrix, level.matrix) and s.unit is None
    s.redo()
    s.reset_transform()
    assert s.transform.is_identity(1e-9)
    s.undo()
    assert np.allclose(s.transform.matrix, level.then(scale).matrix)


def test_the_edit_list_round_trips_through_json_with_its_redo():
    cloud = random_cloud(1000, sh_degree=1, seed=3)
    fingerprint = model_fingerprint(cloud)
    s = EditSession(len(cloud), fingerprint)
    rng = np.random.default_rng(1)
    s.select(rng.random(1000) < 0.3)
    s.delete_selection()
    s.select(rng.random(1000) < 0.2)
    s.hide_selection()
    s.apply_transform(scale_between([0, 0, 0], [1, 0, 0], 2.0), "scale", unit="cm")
    s.apply_transform(level_from_up([1.0, 0.0, 0.0]), "level")
    s.undo()  # the level is undone: saved as redo
    text = json.dumps(s.to_json())
    back = EditSession.from_json(json.loads(text), len(cloud), fingerprint)
    assert np.array_equal(back.deleted, s.deleted) and np.array_equal(back.hidden, s.hidden)
    assert np.allclose(back.transform.matrix, s.transform.matrix) and back.unit == "cm"
    assert [e.describe() for e in back.edits] == [e.describe() for e in s.edits]
    assert back.next_redo() == "level" and back.selected_count == 0  # the selection is not saved
    back.redo()
    assert np.allclose(back.transform.matrix, s.transform.then(level_from_up([1.0, 0.0, 0.0])).matrix)
    back.undo()
    back.undo()
    back.undo()  # the hide
    back.undo()  # the delete
    assert not back.deleted.any() and not back.hidden.any() and not back.can_undo
    # 1,000 splats: the masks stay small in the file
    assert len(text) < 2_000

    edited = apply_edits(cloud, s)
    assert len(edited) == len(cloud) - int(s.deleted.sum())
    assert np.allclose(edited.positions, s.transform.apply(cloud.positions[~s.deleted]), atol=1e-5)


def test_a_mask_encodes_compactly_and_decodes_exactly():
    idx = np.array([0, 7, 8, 999_999])
    text = encode_mask(idx, 1_000_000)
    assert len(text) < 1_000
    assert decode_mask(text, 1_000_000).tolist() == idx.tolist()


def _saved(count: int = 10) -> dict:
    s = EditSession(count, "10:abc")
    s.select(_mask(count, [1]))
    s.delete_selection()
    return s.to_json()


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(format=7), "format 7 is not one this version reads (1); a newer SplatStudio wrote it"),
    (lambda d: d.update(splats="ten"), "does not say how many splats"),
    (lambda d: d.update(applied="delete"), "must be lists"),
    (lambda d: d["applied"][0].update(op="explode"), "unknown edit 'explode'"),
    (lambda d: d["applied"][0].update(mask="%%%"), "not valid packed, deflated, base64"),
    (lambda d: d["applied"][0].update(mask=base64.b64encode(zlib.compress(b"\0" * 9)).decode()), "more bits than"),
    (lambda d: d["applied"][0].update(mask=base64.b64encode(zlib.compress(b"\0")).decode()), "holds 8 bits"),
    (lambda d: d["applied"][0].update(mask=base64.b64encode(zlib.compress(b"\0" * 1 + b"\xff")).decode()),
     "beyond the model's 10"),
    (lambda d: d["applied"].append({"op": "transform", "matrix": [[1, 0], [0, 1]]}), "4x4"),
    (lambda d: d["applied"].append({"op": "transform", "matrix": np.eye(4).tolist(), "unit": "furlong"}),
     "unknown unit 'furlong'"),
])
def test_a_damaged_edit_list_is_refused_in_words(change, message):
    data = _saved()
    change(data)
    with pytest.raises(EditsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        EditSession.from_json(data, 10)


def test_a_deflate_bomb_is_not_inflated():
    bomb = base64.b64encode(zlib.compress(b"\0" * 50_000_000)).decode()
    with pytest.raises(EditsError, match="more bits than a model of 10 splats has"):
        decode_mask(bomb, 10)


def test_edits_of_another_model_are_stale():
    data = _saved()
    with pytest.raises(StaleEdits, match="made on a model of 10 splats; this result has 11"):
        EditSession.from_json(data, 11)
    with pytest.raises(StaleEdits, match="another result"):
        EditSession.from_json(data, 10, "10:def")
    assert EditSession.from_json(data, 10, "10:abc").deleted.tolist() == _mask(10, [1]).tolist()
    with pytest.raises(EditsError, match="cannot apply to one of 3"):
        apply_edits(random_cloud(3), EditSession(10))


def test_an_export_leaves_the_deleted_out_and_crops_in_the_edited_frame():
    from splatstudio.io.export import CropBox, ExportOptions, select_splats

    cloud = random_cloud(400, sh_degree=2, seed=5)
    s = EditSession(len(cloud))
    s.select(cloud.positions[:, 0] < 0)
    s.delete_selection()
    s.apply_transform(scale_between([0, 0, 0], [1, 0, 0], 10.0), "scale", unit="m")
    out = select_splats(cloud, ExportOptions(remove=s.deleted, transform=s.transform))
    assert np.allclose(out.positions, 10.0 * cloud.positions[cloud.positions[:, 0] >= 0], atol=1e-4)
    # the crop box is in metres now: x from 0 to 10 m holds the kept splats with x in [0, 1]
    cropped = select_splats(cloud, ExportOptions(remove=s.deleted, transform=s.transform,
                                                 crop=CropBox.from_min_max((0, -1e3, -1e3), (10, 1e3, 1e3))))
    kept = (cloud.positions[:, 0] >= 0) & (cloud.positions[:, 0] <= 1.0)
    assert len(cropped) == int(kept.sum())
