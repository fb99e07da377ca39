"""Qt-service tests: real QProcess stage runs on a tiny generated scene (pytest-qt, under Xvfb)."""

from __future__ import annotations

import shutil

import pytest

from splatstudio.model.images import import_photos
from splatstudio.model.library import Library
from splatstudio.model.sample import generate_sample
from splatstudio.model.settings import Settings

SETTINGS = Settings({"min_image_size": 200, "max_features": 2048})


@pytest.fixture(scope="session")
def tiny_photos(tmp_path_factory):
    return generate_sample(tmp_path_factory.mktemp("tiny") / "photos", 16, 320, 240, seed=1).directory


@pytest.fixture(scope="session")
def imported_template(tiny_photos, tmp_path_factory):
    """A project with the tiny photos imported (copied per test: importing once saves time)."""
    library = Library(tmp_path_factory.mktemp("template-lib"))
    project = library.create_project("Template", SETTINGS)
    import_photos(project.images_dir, project.path("import.json"), [tiny_photos], SETTINGS)
    return project


@pytest.fixture
def make_project(imported_template, tmp_path):
    library = Library(tmp_path / "lib")

    def make(name: str):
        target = library.folder / name
        shutil.copytree(imported_template.folder, target)
        project = library.find(str(target))
        project.rename(name)
        return project

    return make
