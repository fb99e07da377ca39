"""The user's hand edits of a trained scene (issue 23, items 2 and 3): an undoable list kept with the project.

An edit is one of

* ``delete`` — splats left out of the view and of every export;
* ``hide`` / ``unhide`` — splats not drawn while editing (still exported: hiding is for seeing behind them);
* ``transform`` — the scene levelled, moved or scaled (`model.transform.Similarity`, applied after the
  transforms before it), carried by every export.

Mask edits name splats by their index in the model they were made on and record only the splats they
changed, so undoing one is exact. An :class:`EditSession` is the edit list of one model with its undo and
redo stacks, the selection (changes of which are undoable too, while the project is open, but not saved) and
the state they add up to. It is saved as JSON (``edits.json``'s ``edit_list``: :meth:`EditSession.to_json`)
with the model's splat count and a fingerprint of its positions, so that edits made on another result of
the project are recognised as such instead of deleting the wrong splats. Pure numpy: the viewer, exports and
``splatstudio edit`` share it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import zlib
from dataclasses import dataclass

import numpy as np

from splatstudio.model.splatcloud import SplatCloud
from splatstudio.model.transform import UNITS, Similarity, TransformError, transform_cloud

FORMAT = 1
MASK_OPS = ("delete", "hide", "unhide")
TRANSFORM = "transform"
MAX_SELECTION_STEPS = 200
"""Selection changes kept for undo (each holds two index lists); older ones are dropped, edits never."""
SELECT_MODES = ("replace", "add", "subtract")


class EditsError(ValueError):
    """An edit list cannot be read or does not fit the model; the message says what to do."""


class StaleEdits(EditsError):
    """The saved edits were made on another model (another result of the project)."""


def model_fingerprint(cloud: SplatCloud) -> str:
    """Splat count and a hash of the positions: which model an edit list was made on."""
    digest = hashlib.blake2b(np.ascontiguousarray(cloud.positions, dtype=np.float32).tobytes(), digest_size=10)
    return f"{len(cloud)}:{digest.hexdigest()}"


def encode_mask(indices: np.ndarray, count: int) -> str:
    """Indices of a mask over ``count`` splats as text: packed bits, deflated, base64."""
    mask = np.zeros(count, dtype=bool)
    mask[indices] = True
    return base64.b64encode(zlib.compress(np.packbits(mask).tobytes(), 6)).decode("ascii")


def decode_mask(text: object, count: int) -> np.ndarray:
    """The sorted indices :func:`encode_mask` wrote (an `EditsError` for anything else)."""
    if not isinstance(text, str):
        raise EditsError("a mask must be text")
    size = (count + 7) // 8
    try:
        packed = base64.b64decode(text.encode("ascii"), validate=True)
        inflate = zlib.decompressobj()
        raw = inflate.decompress(packed, size + 1)  # never more than the mask can hold (a deflate bomb)
    except (binascii.Error, UnicodeEncodeError, ValueError, zlib.error):
        raise EditsError("a mask is not valid packed, deflated, base64 data") from None
    if len(raw) > size or inflate.unconsumed_tail:
        raise EditsError(f"a mask holds more bits than a model of {count:,} splats has")
    if len(raw) < size:
        raise EditsError(f"a mask holds {len(raw) * 8:,} bits for a model of {count:,} splats")
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8))
    if bits[count:].any():
        raise EditsError(f"a mask names splats beyond the model's {count:,}")
    return np.flatnonzero(bits[:count]).astype(np.int32)


@dataclass(frozen=True)
class Edit:
    """One saved edit: ``op`` (see the module's docstring), words for lists, the splats it changed
    (``indices``, for mask edits) or its ``transform`` (with the ``unit`` a scale was typed in)."""

    op: str
    label: str
    indices: np.ndarray | None = None
    transform: Similarity | None = None
    unit: str | None = None

    def describe(self) -> str:
        if self.op == TRANSFORM:
            return self.label + (f" ({self.unit})" if self.unit else "")
        count = 0 if self.indices is None else len(self.indices)
        return f"{self.label} ({count:,} splat{'' if count == 1 else 's'})"

    def to_json(self, count: int) -> dict:
        out: dict = {"op": self.op, "label": self.label}
        if self.op == TRANSFORM:
            assert self.transform is not None
            out["matrix"] = [[float(v) for v in row] for row in self.transform.matrix]
            if self.unit:
                out["unit"] = self.unit
        else:
            assert self.indices is not None
            out["count"] = len(self.indices)
            cached = self.__dict__.get("_encoded")
            if cached is None or cached[0] != count:  # an edit's mask never changes: encoded once, saved often
                cached = (count, encode_mask(self.indices, count))
                object.__setattr__(self, "_encoded", cached)
            out["mask"] = cached[1]
        return out

    @classmethod
    def from_json(cls, data: object, count: int) -> Edit:
        if not isinstance(data, dict):
            raise EditsError("an edit must be a JSON object")
        op, label = data.get("op"), data.get("label", "")
        if not isinstance(label, str):
            raise EditsError("an edit's label must be text")
        if op == TRANSFORM:
            try:
                transform = Similarity.from_matrix(data.get("matrix"))
            except TransformError as exc:
                raise EditsError(str(exc)) from None
            unit = data.get("unit")
            if unit is not None and unit not in UNITS:
                raise EditsError(f"unknown unit {unit!r} (one of {', '.join(UNITS)})")
            return cls(TRANSFORM, label or "transform", transform=transform, unit=unit)
        if op in MASK_OPS:
            return cls(op, label or op, indices=decode_mask(data.get("mask"), count))
        raise EditsError(f"unknown edit {op!r} (one of {', '.join((*MASK_OPS, TRANSFORM))})")


@dataclass(frozen=True)
class SelectionChange:
    """A change of the selection (kept for undo while the project is open, never saved)."""

    label: str
    before: np.ndarray
    after: np.ndarray

    def describe(self) -> str:
        return self.label


@dataclass
class _Entry:
    change: Edit | SelectionChange
    selection_before: np.ndarray | None = None  # an edit's: restored by its undo (None: edits read from a file)
    selection_after: np.ndarray | None = None


def _indices(mask: np.ndarray) -> np.ndarray:
    return np.flatnonzero(mask).astype(np.int32)


class EditSession:
    """The edits of one model of ``count`` splats (identified by ``fingerprint``), undo and redo, and the
    selection. ``edits`` are applied in order; ``undone`` are the edits Redo brings back, the next first."""

    def __init__(self, count: int, fingerprint: str = "", edits: list[Edit] | tuple = (),
                 undone: list[Edit] | tuple = ()):
        self.count = int(count)
        self.fingerprint = fingerprint
        self.deleted = np.zeros(self.count, dtype=bool)
        self.hidden = np.zeros(self.count, dtype=bool)
        self.selection = np.zeros(self.count, dtype=bool)
        self.transform = Similarity()
        self.unit: str | None = None
        self._history: list[_Entry] = []
        self._future: list[_Entry] = []
        for edit in edits:
            edit = self._changed_only(edit)
            self._apply(edit)
            self._history.append(_Entry(edit))
        self._settle_transform()
        self._future = [_Entry(edit) for edit in reversed(list(undone))]

    # ------------------------------------------------------------------------------ state
    @property
    def visible(self) -> np.ndarray:
        """Splats neither deleted nor hidden (what selection tools can reach)."""
        return ~(self.deleted | self.hidden)

    @property
    def selected_count(self) -> int:
        return int(np.count_nonzero(self.selection))

    @property
    def edits(self) -> list[Edit]:
        """The applied edits, in order (what is saved and exported)."""
        return [e.change for e in self._history if isinstance(e.change, Edit)]

    @property
    def undone(self) -> list[Edit]:
        """The edits Redo brings back, the next first."""
        return [e.change for e in reversed(self._future) if isinstance(e.change, Edit)]

    @property
    def can_undo(self) -> bool:
        return bool(self._history)

    @property
    def can_redo(self) -> bool:
        return bool(self._future)

    def next_undo(self) -> str | None:
        return self._history[-1].change.describe() if self._history else None

    def next_redo(self) -> str | None:
        return self._future[-1].change.describe() if self._future else None

    def is_empty(self) -> bool:
        return not self.edits and not self.undone

    def summary(self) -> str:
        """The state in words: "12 of 1,000 splats deleted, 3 hidden; turned 10.00°, scaled x2 (m)"."""
        parts = [f"{int(self.deleted.sum()):,} of {self.count:,} splats deleted"]
        if self.hidden.any():
            parts[0] += f", {int(self.hidden.sum()):,} hidden"
        if not self.transform.is_identity(1e-9):
            parts.append(self.transform.describe() + (f" ({self.unit})" if self.unit else ""))
        return "; ".join(parts)

    # --------------------------------------------------------------------------- selection
    def select(self, mask: np.ndarray, mode: str = "replace", label: str = "select") -> bool:
        """Change the selection by ``mask`` (only visible splats are selected): ``replace`` it, ``add`` to it
        or ``subtract`` from it. False when nothing changed (no undo step)."""
        if mode not in SELECT_MODES:
            raise ValueError(f"a selection mode is one of {', '.join(SELECT_MODES)}, got {mode!r}")
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self.count,):
            raise ValueError(f"a selection of {mask.shape[0]:,} splats for a model of {self.count:,}")
        reach = mask & self.visible
        new = reach if mode == "replace" else (self.selection | reach if mode == "add" else self.selection & ~reach)
        return self._set_selection(new, label)

    def select_all(self) -> bool:
        return self._set_selection(self.visible.copy(), "select all")

    def select_none(self) -> bool:
        return self._set_selection(np.zeros(self.count, dtype=bool), "select none")

    def invert(self) -> bool:
        return self._set_selection(self.visible & ~self.selection, "invert the selection")

    def _set_selection(self, new: np.ndarray, label: str) -> bool:
        if np.array_equal(new, self.selection):
            return False
        change = SelectionChange(label, _indices(self.selection), _indices(new))
        self.selection = new
        self._push(_Entry(change))
        return True

    # ------------------------------------------------------------------------------- edits
    def delete_selection(self) -> Edit | None:
        """Delete the selected splats (None when nothing is selected)."""
        return self.delete(self.selection, "delete the selection")

    def delete(self, mask: np.ndarray, label: str = "delete") -> Edit | None:
        """Delete the splats of ``mask`` not deleted yet (None when there are none); the selection loses them."""
        changed = _indices(np.asarray(mask, dtype=bool) & ~self.deleted)
        if not len(changed):
            return None
        return self._do(Edit("delete", label, indices=changed), self.selection & ~np.asarray(mask, dtype=bool))

    def hide_selection(self) -> Edit | None:
        """Hide the selected splats (drawn no more while editing; exported all the same)."""
        changed = _indices(self.selection & self.visible)
        if not len(changed):
            return None
        return self._do(Edit("hide", "hide the selection", indices=changed), np.zeros(self.count, dtype=bool))

    def isolate(self) -> Edit | None:
        """Show only the selection: hide every other visible splat (None without a selection)."""
        if not self.selection.any():
            return None
        changed = _indices(self.visible & ~self.selection)
        if not len(changed):
            return None
        return self._do(Edit("hide", "isolate the selection", indices=changed), self.selection.copy())

    def unhide_all(self) -> Edit | None:
        """Show every hidden splat again."""
        changed = _indices(self.hidden)
        if not len(changed):
            return None
        return self._do(Edit("unhide", "show all", indices=changed), self.selection.copy())

    def apply_transform(self, transform: Similarity, label: str, unit: str | None = None) -> Edit | None:
        """Level, move or scale the scene (after the transforms before); None when it changes nothing."""
        if transform.is_identity(1e-12):
            return None
        if unit is not None and unit not in UNITS:
            raise ValueError(f"unknown unit {unit!r}")
        return self._do(Edit(TRANSFORM, label, transform=transform, unit=unit), self.selection.copy())

    def reset_transform(self) -> Edit | None:
        """Back to the model's own frame (one undoable step)."""
        return self.apply_transform(self.transform.inverse(), "reset orientation and scale")

    def _do(self, edit: Edit, selection_after: np.ndarray) -> Edit:
        entry = _Entry(edit, _indices(self.selection), _indices(selection_after))
        self._apply(edit)
        self.selection = selection_after & self.visible
        self._push(entry)
        self._settle_transform()
        return edit

    def _push(self, entry: _Entry) -> None:
        self._history.append(entry)
        self._future.clear()
        steps = [i for i, e in enumerate(self._history) if isinstance(e.change, SelectionChange)]
        for i in reversed(steps[:-MAX_SELECTION_STEPS] if len(steps) > MAX_SELECTION_STEPS else []):
            del self._history[i]

    # --------------------------------------------------------------------------- undo/redo
    def undo(self) -> str | None:
        """Undo the last step (an edit or a selection change); its description, or None when there is none."""
        if not self._history:
            return None
        entry = self._history.pop()
        change = entry.change
        if isinstance(change, SelectionChange):
            self.selection = self._mask(change.before)
        else:
            self._unapply(change)
            if entry.selection_before is not None:
                self.selection = self._mask(entry.selection_before)
            self._settle_transform()
        self.selection &= self.visible
        self._future.append(entry)
        return change.describe()

    def redo(self) -> str | None:
        """Redo the last undone step; its description, or None when there is none."""
        if not self._future:
            return None
        entry = self._future.pop()
        change = entry.change
        self._history.append(entry)
        if isinstance(change, SelectionChange):
            self.selection = self._mask(change.after)
        else:
            self._apply(change)
            if entry.selection_after is not None:
                self.selection = self._mask(entry.selection_after)
            self._settle_transform()
        self.selection &= self.visible
        return change.describe()

    def _mask(self, indices: np.ndarray) -> np.ndarray:
        mask = np.zeros(self.count, dtype=bool)
        mask[indices] = True
        return mask

    def _changed_only(self, edit: Edit) -> Edit:
        """An edit read from a file, reduced to the splats it really changes here (so that its undo is exact)."""
        if edit.op == TRANSFORM or edit.indices is None:
            return edit
        idx = edit.indices
        if edit.op == "delete":
            idx = idx[~self.deleted[idx]]
        elif edit.op == "hide":
            idx = idx[~self.hidden[idx]]
        else:
            idx = idx[self.hidden[idx]]
        return Edit(edit.op, edit.label, indices=idx)

    def _apply(self, edit: Edit) -> None:
        if edit.op == "delete":
            self.deleted[edit.indices] = True
        elif edit.op == "hide":
            self.hidden[edit.indices] = True
        elif edit.op == "unhide":
            self.hidden[edit.indices] = False

    def _unapply(self, edit: Edit) -> None:
        if edit.op == "delete":
            self.deleted[edit.indices] = False
        elif edit.op == "hide":
            self.hidden[edit.indices] = False
        elif edit.op == "unhide":
            self.hidden[edit.indices] = True

    def _settle_transform(self) -> None:
        """The total transform and the unit of the last scale, from the applied transform edits."""
        total, unit = Similarity(), None
        for edit in self.edits:
            if edit.op == TRANSFORM and edit.transform is not None:
                total = total.then(edit.transform)
                if edit.unit:
                    unit = edit.unit
                elif not math.isclose(edit.transform.scale, 1.0, rel_tol=1e-12):
                    unit = None  # scaled again without a unit: the old one no longer holds
        self.transform, self.unit = total, unit

    # ----------------------------------------------------------------------- persistence
    def to_json(self) -> dict:
        """The saved form: ``{"format", "splats", "fingerprint", "applied": [...], "undone": [...]}``."""
        return {"format": FORMAT, "splats": self.count, "fingerprint": self.fingerprint,
                "applied": [e.to_json(self.count) for e in self.edits],
                "undone": [e.to_json(self.count) for e in self.undone]}

    @classmethod
    def from_json(cls, data: object, count: int, fingerprint: str | None = None) -> EditSession:
        """The session :meth:`to_json` saved, for a model of ``count`` splats whose fingerprint is
        ``fingerprint`` (None: not checked). A `StaleEdits` when it was made on another model, an `EditsError`
        when it cannot be read."""
        if not isinstance(data, dict):
            raise EditsError("the edit list must be a JSON object")
        version = data.get("format")
        if version != FORMAT:
            raise EditsError(f"edit list format {version!r} is not one this version reads ({FORMAT})"
                             + ("; a newer SplatStudio wrote it" if isinstance(version, int) and version > FORMAT
                                else ""))
        saved_count, saved_print = data.get("splats"), data.get("fingerprint", "")
        if not isinstance(saved_count, int) or isinstance(saved_count, bool) or saved_count < 0:
            raise EditsError("the edit list does not say how many splats its model has")
        if saved_count != count:
            raise StaleEdits(f"the saved edits were made on a model of {saved_count:,} splats; this result has "
                             f"{count:,}")
        if fingerprint is not None and saved_print and saved_print != fingerprint:
            raise StaleEdits(f"the saved edits were made on another result of {count:,} splats (its splats are "
                             "elsewhere)")
        applied, undone = data.get("applied", []), data.get("undone", [])
        if not isinstance(applied, list) or not isinstance(undone, list):
            raise EditsError("the edit list's 'applied' and 'undone' must be lists")
        try:
            return cls(count, fingerprint if fingerprint is not None else str(saved_print),
                       [Edit.from_json(e, count) for e in applied], [Edit.from_json(e, count) for e in undone])
        except EditsError as exc:
            raise EditsError(f"the edit list holds a bad edit: {exc}") from None


def apply_edits(cloud: SplatCloud, session: EditSession) -> SplatCloud:
    """``cloud`` as the edits leave it: the deleted splats left out, the rest transformed."""
    if len(cloud) != session.count:
        raise EditsError(f"edits of a model of {session.count:,} splats cannot apply to one of {len(cloud):,}")
    kept = cloud if not session.deleted.any() else cloud.subset(~session.deleted)
    return transform_cloud(kept, session.transform)
