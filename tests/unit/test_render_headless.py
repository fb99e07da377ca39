"""The ``splatstudio view`` command line, up to the point where it needs a display."""

from __future__ import annotations

import pytest

from splatstudio.io.ply import write_splat_ply
from splatstudio.model.splatcloud import SplatCloud
from splatstudio.render.headless import ViewError, cli_view, parse_size, parse_view_args, read_cloud


def test_parse_size():
    assert parse_size("1280x720") == (1280, 720)
    assert parse_size("64X48") == (64, 48)
    for bad in ("1280", "x720", "0x10", "12.5x3", "axb", "99999x10"):
        with pytest.raises(ValueError):
            parse_size(bad)


def test_parse_view_args():
    options = parse_view_args(["scene.ply", "--screenshot", "o.png", "--size", "320x200", "--camera", "c.json:2",
                               "--cameras", "sparse/0", "--sh-degree", "1"])  # fmt: skip
    assert (str(options.path), str(options.screenshot), options.size) == ("scene.ply", "o.png", (320, 200))
    assert (options.camera, options.cameras, options.sh_degree) == ("c.json:2", "sparse/0", 1)


def test_usage_errors_exit_2(capsys):
    assert cli_view([]) == 2
    assert cli_view(["a.ply", "--size", "huge"]) == 2
    assert cli_view(["a.ply", "--sh-degree", "4"]) == 2
    assert "usage: splatstudio view" in capsys.readouterr().err
    assert cli_view(["--help"]) == 0


def test_file_problems_exit_1_before_any_window(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    assert cli_view([str(tmp_path / "none.ply"), "--screenshot", str(tmp_path / "o.png")]) == 1
    assert "none.ply: no such file" in capsys.readouterr().err
    empty = tmp_path / "empty.ply"
    write_splat_ply(empty, SplatCloud.empty())
    with pytest.raises(ViewError, match="holds no splats"):
        read_cloud(empty)
    (tmp_path / "junk.ply").write_bytes(b"\x00junk")
    assert cli_view([str(tmp_path / "junk.ply")]) == 1
    err = capsys.readouterr().err
    assert "junk.ply: not a PLY file" in err and "Traceback" not in err


def test_view_help_through_the_main_command(capsys):
    """Issue 25, item 4: `splatstudio view --help` failed ("unrecognized arguments: --help")."""
    from splatstudio.cli import main

    assert main(["view", "--help"]) == 0
    assert "usage: splatstudio view" in capsys.readouterr().out
    assert main(["projects", "--bogus"]) == 2  # other commands still refuse what they do not know
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_cameras_beside_a_file_in_our_layouts(tmp_path):
    from splatstudio.render.headless import cameras_beside

    loose = tmp_path / "loose" / "scene.ply"
    trainer = tmp_path / "model" / "point_cloud" / "iteration_30" / "point_cloud.ply"
    project = tmp_path / "project" / "output" / "point_cloud.ply"
    for path in (loose, trainer, project):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"")
    assert cameras_beside(loose) is None
    for cameras in (tmp_path / "model" / "cameras.json", tmp_path / "project" / "train" / "cameras.json",
                    tmp_path / "loose" / "cameras.json"):
        cameras.parent.mkdir(parents=True, exist_ok=True)
        cameras.write_text("[]")
    assert cameras_beside(trainer) == tmp_path / "model" / "cameras.json"
    assert cameras_beside(project) == tmp_path / "project" / "train" / "cameras.json"
    assert cameras_beside(loose) == tmp_path / "loose" / "cameras.json"
