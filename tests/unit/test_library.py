"""Library: projects round-trip through the folders and the SQLite index; the index rebuilds from folders."""

from __future__ import annotations

import sqlite3

import pytest

from splatstudio.model.library import Library, LibraryError
from splatstudio.model.project import DONE, FAILED, RUNNING, Project, ProjectError, StageRecord, now_iso
from splatstudio.model.settings import Settings


def _finish(project: Project, stage: str, run_id: str, status=DONE, figures=None, error=None, duration=1.5):
    record = StageRecord(stage, status, started=now_iso(), ended=now_iso(), duration=duration, run_id=run_id,
                         fingerprint=project.settings.fingerprint(stage), figures=figures or {}, error=error)
    project.write_stage_record(record)
    project.add_attempt(run_id, record)


def test_create_list_and_figures(tmp_path):
    library = Library(tmp_path / "lib")
    project = library.create_project("Tree", Settings().updated({"iterations": 77}))
    assert Project(project.folder).settings.iterations == 77
    run = project.new_run(["features", "train", "filter"])
    _finish(project, "features", run, figures={"images": 3})
    _finish(project, "train", run, figures={"num_gaussians": 5000}, duration=10)
    _finish(project, "filter", run, figures={"remaining": 4900, "total": 5000})
    (project.folder / "output" / "point_cloud.ply").write_bytes(b"x" * 1234)
    library.sync(project)
    rows = library.list_projects()
    assert len(rows) == 1
    row = rows[0]
    assert row["name"] == "Tree" and row["gaussian_count"] == 4900 and row["file_size"] == 1234
    assert row["processing_seconds"] == pytest.approx(13.0)
    assert [s["stage"] for s in library.stage_runs(project)] == ["features", "train", "filter"]
    assert library.stage_runs(project)[1]["figures"] == {"num_gaussians": 5000}


def test_names_are_unique_and_folders_never_clash(tmp_path):
    library = Library(tmp_path / "lib")
    a = library.create_project("My Tree", Settings())
    with pytest.raises(LibraryError, match="already exists"):
        library.create_project("my tree", Settings())
    b = library.create_project("My/Tree", Settings())
    assert a.folder != b.folder
    library.rename(b, "Oak")
    assert library.get("oak").folder == b.folder
    with pytest.raises(LibraryError, match="no project named"):
        library.get("Birch")


def test_error_log_and_rebuild_from_folders(tmp_path):
    library = Library(tmp_path / "lib")
    project = library.create_project("Broken", Settings())
    run = project.new_run(["features", "matching"])
    _finish(project, "features", run)
    error = {"type": "StageFailed", "message": "no two photos overlap", "traceback": "tb", "hint": "more photos"}
    _finish(project, "matching", run, status=FAILED, error=error)
    project.finish_run(run, FAILED)
    library.sync(project)
    assert library.list_projects()[0]["status"] == FAILED
    assert library.list_projects()[0]["error_stage"] == "matching"
    errors = library.errors(project)
    assert [(e["stage"], e["error_type"], e["message"]) for e in errors] == [
        ("matching", "StageFailed", "no two photos overlap")]

    before = (library.list_projects(), library.stage_runs(project), library.errors(project))
    library.index_path.unlink()
    for suffix in ("-wal", "-shm"):
        (tmp_path / "lib" / f"library.sqlite3{suffix}").unlink(missing_ok=True)
    rebuilt = Library(tmp_path / "lib")
    assert rebuilt.list_projects() == []  # a fresh index knows nothing until it looks at the folders
    assert rebuilt.rebuild() == 1
    after = (rebuilt.list_projects(), rebuilt.stage_runs(project), rebuilt.errors(project))
    strip = lambda rows: [{k: v for k, v in r.items() if k != "id"} for r in rows]  # noqa: E731
    assert after[0] == before[0]
    assert strip(after[1]) == strip(before[1]) and strip(after[2]) == strip(before[2])


def test_corrupt_index_is_rebuilt_not_fatal(tmp_path):
    library = Library(tmp_path / "lib")
    library.create_project("Kept", Settings())
    library.index_path.write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        (tmp_path / "lib" / f"library.sqlite3{suffix}").unlink(missing_ok=True)
    again = Library(tmp_path / "lib")
    assert [r["name"] for r in again.list_projects()] == ["Kept"]
    with sqlite3.connect(again.index_path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_refresh_picks_up_new_and_vanished_folders(tmp_path):
    library = Library(tmp_path / "lib")
    a = library.create_project("A", Settings())
    other = Library(tmp_path / "lib")
    other.create_project("B", Settings())
    import shutil

    shutil.rmtree(a.folder)
    assert [r["name"] for r in library.refresh()] == ["B"]


def test_running_record_without_lock_reads_as_interrupted(tmp_path):
    library = Library(tmp_path / "lib")
    project = library.create_project("Crash", Settings())
    (project.folder / "import.json").write_text('{"accepted": [{"name": "a.jpg"}]}')
    project.write_stage_record(StageRecord("features", RUNNING, started=now_iso(), pid=999999, run_id="r"))
    assert project.status() == ("interrupted", "features")
    fd = project.acquire_lock()
    try:
        assert project.status() == ("running", "features")
        with pytest.raises(ProjectError, match="busy"):
            project.acquire_lock()
        with pytest.raises(LibraryError, match="running"):
            library.delete(project)
    finally:
        import os

        os.close(fd)
    assert project.describe_status() == "interrupted at Feature extraction"


def test_damaged_project_json_is_a_clear_error(tmp_path):
    folder = tmp_path / "lib" / "bad"
    folder.mkdir(parents=True)
    (folder / "project.json").write_text("{ half written")
    with pytest.raises(ProjectError, match="project.json"):
        Project(folder)
    library = Library(tmp_path / "lib")
    assert library.refresh() == []  # a damaged folder is skipped, not fatal


def test_delete_removes_folder_and_rows(tmp_path):
    library = Library(tmp_path / "lib")
    project = library.create_project("Gone", Settings())
    library.delete(project)
    assert not project.folder.exists() and library.list_projects() == []


def test_duplicate_copies_under_a_new_id_and_a_free_name_and_never_shows_half_a_copy(tmp_path, monkeypatch):
    library = Library(tmp_path / "lib")
    original = library.create_project("Garden", Settings())
    (original.images_dir / "a.jpg").write_bytes(b"x" * 100)
    first = library.duplicate(original)
    second = library.duplicate(original)
    assert (first.name, second.name) == ("Garden copy", "Garden copy 2")
    assert len({original.id, first.id, second.id}) == 3 and (first.images_dir / "a.jpg").read_bytes() == b"x" * 100
    assert {row["name"] for row in library.refresh()} == {"Garden", "Garden copy", "Garden copy 2"}

    seen = {}

    def look_then_fail(copy):  # the copy is on disk: the library as another process sees it now
        seen["names"] = {row["name"] for row in library.refresh()}
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Project, "new_id", look_then_fail)
    with pytest.raises(OSError):
        library.duplicate(original)
    assert seen["names"] == {"Garden", "Garden copy", "Garden copy 2"}  # the half-made copy is not listed
    assert not [p for p in library.folder.iterdir() if p.name.endswith(".copying")]  # and was removed


def test_duplicate_takes_a_project_folder_too_and_the_copy_is_listed_at_once(tmp_path):
    """The window asks for a copy by folder (from its worker); a project of another library is copied in."""
    library = Library(tmp_path / "lib")
    elsewhere = Library(tmp_path / "other").create_project("Shed", Settings())
    (elsewhere.images_dir / "b.jpg").write_bytes(b"y" * 10)
    (elsewhere.folder / ".lock").write_text("held")
    copy = library.duplicate(str(elsewhere.folder))
    assert copy.name == "Shed copy" and copy.folder.parent == library.folder and copy.id != elsewhere.id
    assert (copy.images_dir / "b.jpg").read_bytes() == b"y" * 10 and not (copy.folder / ".lock").exists()
    assert library.get("Shed copy").folder == copy.folder
    assert [row["name"] for row in library.list_projects()] == ["Shed copy"]
    assert library.duplicate(copy.folder).name == "Shed copy copy"  # a path-like folder, of this library
