"""Library page: rows with figures and thumbnails, search, rename, duplicate, delete with confirmation."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtWidgets import QMessageBox

from splatstudio.model.project import Project


def wait_rows(qtbot, page, count: int) -> None:
    page.refresh()
    qtbot.waitUntil(lambda: page.model.rowCount() == count and not page._refreshing, timeout=10_000)


def test_rows_search_rename_duplicate_and_delete(window, qtbot, make_project, library):
    page = window.library_page
    first, second = make_project("Garden"), make_project("Statue")
    wait_rows(qtbot, page, 2)
    row = page.row_for(first)
    assert row["name"] == "Garden" and row["image_count"] == 16 and row["status_text"] == "new"
    qtbot.waitUntil(lambda: {first, second} <= set(page.model.thumbs), timeout=10_000)

    page.search.setText("stat")
    assert page.proxy.rowCount() == 1
    page.search.clear()
    assert page.proxy.rowCount() == 2

    assert page.rename(first, "Rose garden")
    wait_rows(qtbot, page, 2)
    assert page.row_for(first)["name"] == "Rose garden" and Project(first).name == "Rose garden"
    assert not page.rename(first, "statue")  # names are unique, whatever the case

    page.duplicate(second)
    wait_rows(qtbot, page, 3)
    copy = library.get("Statue copy")
    assert copy.id != Project(second).id and len(copy.image_names()) == 16

    messages: list[str] = []
    page.sig_message.connect(messages.append)
    page.select(str(copy.folder))
    page.actions_by_name["delete"].trigger()
    box = page.findChild(QMessageBox, "deleteConfirmation")
    assert box is not None and "Statue copy" in box.text()
    box.button(QMessageBox.StandardButton.Yes).click()
    qtbot.waitUntil(lambda: bool(messages), timeout=10_000)
    wait_rows(qtbot, page, 2)
    assert not copy.folder.exists() and library.find("Statue copy") is None
    assert messages[-1] == "moved 'Statue copy' to the trash"
    assert (Path(os.environ["XDG_DATA_HOME"]) / "Trash" / "files" / "Statue-copy" / "project.json").exists()


def test_double_click_opens_the_project(window, qtbot, make_project):
    page = window.library_page
    folder = make_project("Opened")
    wait_rows(qtbot, page, 1)
    page.select(folder)
    page.actions_by_name["open"].trigger()
    assert window.pages.currentWidget() is window.project_page
    assert window.project_page.folder == folder
    assert [window.project_page.items[s].text(1) for s in window.project_page.items] == ["waiting"] * 7
    assert window.windowTitle() == "Opened — SplatStudio"
