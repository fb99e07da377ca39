"""Findings file (../shared/findings/reliability-2026-12.md), defect 3: two processes creating one name made
two projects with that name, and a project folder copied in (from this library or another) broke
`projects`, `projects --rebuild` and `show` with an IntegrityError traceback."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil

import pytest

from splatstudio.cli import main as cli
from splatstudio.model.library import Library, LibraryError
from splatstudio.model.settings import Settings

ROUNDS = 20


def _create(folder: str, barrier, results, k: int) -> None:
    for round_ in range(ROUNDS):
        barrier.wait()
        try:
            Library(folder).create_project(f"Race{round_}", Settings())
            results.put((round_, k, "created"))
        except LibraryError as exc:
            results.put((round_, k, "refused" if "already exists" in str(exc) else f"other: {exc}"))
        except Exception as exc:  # noqa: BLE001 - the point is that there is none
            results.put((round_, k, f"{type(exc).__name__}: {exc}"))


def test_two_processes_creating_one_name_make_one_project(tmp_path):
    folder = str(tmp_path / "lib")
    Library(folder)
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    workers = [ctx.Process(target=_create, args=(folder, barrier, results, k)) for k in range(2)]
    for w in workers:
        w.start()
    outcomes = [results.get(timeout=120) for _ in range(2 * ROUNDS)]
    for w in workers:
        w.join(30)
    for round_ in range(ROUNDS):
        kinds = sorted(o for r, _, o in outcomes if r == round_)
        assert kinds == ["created", "refused"], (round_, kinds)
    names = [p["name"] for p in Library(folder).refresh()]
    assert sorted(names) == sorted(f"Race{r}" for r in range(ROUNDS))


@pytest.mark.parametrize("origin", ["this library", "another library"])
def test_a_copied_project_folder_is_indexed_under_a_name_of_its_own(tmp_path, capsys, origin):
    lib = os.environ["SPLATSTUDIO_LIBRARY"]
    other = str(tmp_path / "other")
    assert cli(["--library", lib, "new", "Dup"]) == 0
    source = Library(lib if origin == "this library" else other)
    if origin == "another library":
        assert cli(["--library", other, "new", "Dup"]) == 0
    shutil.copytree(source.get("Dup").folder, os.path.join(lib, "Dup-from-laptop"))
    capsys.readouterr()
    notes = []
    for argv in (["projects"], ["projects", "--rebuild"], ["projects", "--json"]):
        assert cli(["--library", lib, *argv]) == 0
        out, err = capsys.readouterr()
        assert "Traceback" not in err and "IntegrityError" not in err
        notes.append(err)
    assert "another project is named 'Dup'; this one is now 'Dup (2)'" in notes[0]
    rows = json.loads(out)
    assert sorted(r["name"] for r in rows) == ["Dup", "Dup (2)"] and len({r["id"] for r in rows}) == 2
    assert cli(["--library", lib, "projects"]) == 0
    for name in ("Dup", "Dup (2)"):
        assert cli(["--library", lib, "show", name]) == 0
    copy = Library(lib).get("Dup (2)")
    assert copy.folder.name == "Dup-from-laptop"


def test_a_damaged_index_page_is_noticed_and_rebuilt_from_the_folders(capsys):
    lib = os.environ["SPLATSTUDIO_LIBRARY"]
    for name in ("A", "B", "C"):
        assert cli(["--library", lib, "new", name]) == 0
    index = os.path.join(lib, "library.sqlite3")
    assert os.path.getsize(index) > 9300
    with open(index, "r+b") as f:  # the finding's repro: 1 KB of garbage at offset 8200
        f.seek(8200)
        f.write(b"GARBAGE!" * 128)
    capsys.readouterr()
    assert cli(["--library", lib, "projects"]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "index was damaged" in err and "rebuilt" in err
    assert all(name in out for name in ("A", "B", "C"))
    for argv in (["projects", "--rebuild"], ["show", "A"], ["new", "D"], ["delete", "B", "--yes"]):
        assert cli(["--library", lib, *argv]) == 0, argv
    assert sorted(p["name"] for p in Library(lib).list_projects()) == ["A", "C", "D"]
    assert [n for n in os.listdir(lib) if n.startswith("library.sqlite3.broken-")]
