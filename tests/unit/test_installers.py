"""Desktop integration files and the bundle's command dispatch, checked without building the bundle.

The bundle itself is built and exercised by installers/build_bundle.sh and installers/smoke_test.sh.
"""

from __future__ import annotations

import configparser
import os
import shutil
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from splatstudio import launch
from splatstudio.bundle_main import dispatch
from splatstudio.launch import APP_ID, RUN_SCRIPT, RUN_STAGE, icon_files
from splatstudio.model.settings import Settings
from splatstudio.pipeline.plan import stage_argv
from splatstudio.pipeline.train import bundled_trainer, trainer_command

ROOT = Path(__file__).resolve().parents[2]
LINUX = ROOT / "installers" / "linux"
DESKTOP = LINUX / f"{APP_ID}.desktop"
VIEWER = LINUX / f"{APP_ID}.Viewer.desktop"
METAINFO = LINUX / f"{APP_ID}.metainfo.xml"
MIME = LINUX / f"{APP_ID}.mime.xml"
ICONS = ROOT / "resources" / "icons"
SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)
MIME_NS = "{http://www.freedesktop.org/standards/shared-mime-info}"
PYTHON = sys.executable  # the real interpreter (the `bundle` fixture replaces sys.executable)


def _entry(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive
    parser.read(path, encoding="utf-8")
    return parser["Desktop Entry"]


def _mime_types() -> dict[str, ET.Element]:
    root = ET.parse(MIME).getroot()
    assert root.tag == f"{MIME_NS}mime-info"
    return {node.get("type"): node for node in root.findall(f"{MIME_NS}mime-type")}


# ------------------------------------------------------------------------------------------ desktop files

@pytest.mark.parametrize("path", [DESKTOP, VIEWER], ids=["app", "viewer"])
def test_desktop_files_are_valid(path):
    tool = shutil.which("desktop-file-validate")
    if tool:
        result = subprocess.run([tool, str(path)], capture_output=True, text=True)
        assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr
    entry = _entry(path)
    for key in ("Type", "Name", "Comment", "Exec", "Icon", "Categories"):
        assert entry.get(key), f"{path.name} has no {key}"
    assert entry["Type"] == "Application" and entry["Icon"] == APP_ID
    assert entry["Exec"].split()[0] == "splatstudio"  # install_linux.sh puts the full path there


def test_menu_entry_opens_the_library_and_the_viewer_entry_opens_files():
    app, viewer = _entry(DESKTOP), _entry(VIEWER)
    assert app["Exec"] == "splatstudio" and "MimeType" not in app and app.get("NoDisplay", "false") == "false"
    assert viewer["Exec"] == "splatstudio view %f" and viewer["NoDisplay"] == "true"
    handled = [t for t in viewer["MimeType"].split(";") if t]
    assert {"application/x-gaussian-splat", "application/x-spz", "model/x-ply"} <= set(handled)
    defined = _mime_types()
    aliases = {a.get("type") for node in defined.values() for a in node.findall(f"{MIME_NS}alias")}
    assert set(handled) <= set(defined) | aliases


# ------------------------------------------------------------------------------------------ MIME types

def test_mime_xml_defines_splat_and_ply():
    types = _mime_types()
    globs = {g.get("pattern"): t for t, node in types.items() for g in node.findall(f"{MIME_NS}glob")}
    assert globs == {"*.splat": "application/x-gaussian-splat", "*.spz": "application/x-spz", "*.ply": "model/x-ply"}
    assert all(node.find(f"{MIME_NS}comment") is not None for node in types.values())


def test_mime_xml_compiles_with_update_mime_database(tmp_path):
    tool = shutil.which("update-mime-database")
    if tool is None:
        pytest.skip("update-mime-database is not installed (Debian: shared-mime-info)")
    (tmp_path / "packages").mkdir()
    shutil.copy(MIME, tmp_path / "packages" / f"{APP_ID}.xml")
    subprocess.run([tool, str(tmp_path)], check=True, capture_output=True)
    globs = (tmp_path / "globs2").read_text()
    assert "application/x-gaussian-splat:*.splat" in globs and "model/x-ply:*.ply" in globs


# ------------------------------------------------------------------------------------------ AppStream

def test_metainfo_is_valid_appstream():
    tool = shutil.which("appstreamcli")
    if tool is None:
        pytest.skip("appstreamcli is not installed (Debian: appstream)")
    result = subprocess.run([tool, "validate", "--no-net", str(METAINFO)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_metainfo_names_the_desktop_file_and_the_file_types():
    root = ET.parse(METAINFO).getroot()
    assert root.get("type") == "desktop-application" and root.findtext("id") == APP_ID
    assert root.findtext("launchable") == DESKTOP.name
    provided = {node.text for node in root.iter("mediatype")}
    assert provided <= set(_mime_types())
    assert root.findtext("provides/binary") == "splatstudio"


# ------------------------------------------------------------------------------------------ icons

def test_icon_svg_and_png_sizes():
    svg = ET.parse(ICONS / f"{APP_ID}.svg").getroot()
    assert svg.tag.endswith("svg") and svg.get("viewBox") == "0 0 256 256"
    for size in SIZES:
        with Image.open(ICONS / "hicolor" / f"{size}x{size}" / "apps" / f"{APP_ID}.png") as image:
            assert image.format == "PNG" and image.size == (size, size) and image.mode == "RGBA"
            assert image.getpixel((0, 0))[3] == 0 and image.getpixel((size // 2, size // 2))[3] == 255
    with Image.open(ICONS / "splatstudio.ico") as ico:
        assert (256, 256) in ico.info["sizes"] and (16, 16) in ico.info["sizes"]
    assert [int(p.parent.parent.name.split("x")[0]) for p in icon_files()] == list(SIZES)


# ------------------------------------------------------------------------------------------ frozen dispatch

@pytest.fixture
def bundle(monkeypatch, tmp_path):
    """This process as if it were the bundle's executable."""
    exe = tmp_path / "SplatStudio" / "splatstudio"
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(exe))
    return exe


def test_commands_from_a_source_install_are_unchanged(tmp_path):
    assert not launch.is_frozen()
    assert stage_argv("features", tmp_path, "run1") == [sys.executable, "-m", "splatstudio.stages", "features",
                                                         "--project", str(tmp_path), "--run-id", "run1"]
    argv = trainer_command(Settings(), tmp_path / "dataset", tmp_path / "train", None, ours=True)
    assert argv[:4] == [sys.executable, str(bundled_trainer()), "-s", str(tmp_path / "dataset")]
    assert argv[argv.index("--sparse") + 1] == "auto"
    off = trainer_command(Settings({"sparse_regularization": "off"}), tmp_path, tmp_path, None, ours=True)
    assert off[off.index("--sparse") + 1] == "off"
    assert argv[argv.index("--exposure") + 1] == "on"
    no_exp = trainer_command(Settings({"exposure_compensation": False}), tmp_path, tmp_path, None, ours=True)
    assert no_exp[no_exp.index("--exposure") + 1] == "off"
    # a reference checkout gets only the reference's flags
    reference = trainer_command(Settings(), tmp_path, tmp_path, None, ours=False)
    assert "--sparse" not in reference and "--exposure" not in reference


def test_commands_in_a_bundle_go_through_its_executable(bundle, tmp_path):
    assert launch.is_frozen()
    assert stage_argv("train", tmp_path, "r2") == [str(bundle), RUN_STAGE, "train", "--project", str(tmp_path),
                                                   "--run-id", "r2"]
    argv = trainer_command(Settings(), tmp_path / "dataset", tmp_path / "train", None, ours=True)
    assert argv[:5] == [str(bundle), RUN_SCRIPT, str(bundled_trainer()), "-s", str(tmp_path / "dataset")]
    # an interpreter the user chose is still used as one
    assert stage_argv("train", tmp_path, python="/usr/bin/python3")[:3] == ["/usr/bin/python3", "-m",
                                                                          "splatstudio.stages"]
    chosen = Settings({"trainer_python": "/opt/py/bin/python"})
    assert trainer_command(chosen, tmp_path, tmp_path, None, ours=True)[:2] == ["/opt/py/bin/python",
                                                                               str(bundled_trainer())]


def test_dispatch_runs_stages_scripts_and_the_cli(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(sys, "argv", ["splatstudio"])
    monkeypatch.setattr(sys, "path", list(sys.path))
    # the stage entry: an unknown stage is a usage error (2), a missing project a failure (1)
    assert dispatch([RUN_STAGE, "dance", "--project", str(tmp_path)]) == 2
    assert dispatch(["-m", "splatstudio.stages", "dance", "--project", str(tmp_path)]) == 2
    assert dispatch([RUN_STAGE, "features", "--project", str(tmp_path / "nothing")]) == 1
    assert "project" in capsys.readouterr().err
    # a script runs as __main__ with its argv and its folder on sys.path; its exit status comes back
    script = tmp_path / "tool" / "job.py"
    script.parent.mkdir()
    (script.parent / "helper.py").write_text("VALUE = 'helped'\n")
    script.write_text("import sys\nimport helper\n"
                      "if __name__ == '__main__':\n"
                      "    print(helper.VALUE, sys.argv[1:], sys.argv[0].endswith('job.py'))\n"
                      "    sys.exit(3)\n")
    assert dispatch([RUN_SCRIPT, str(script), "-s", "x y"]) == 3
    assert capsys.readouterr().out.strip() == "helped ['-s', 'x y'] True"
    # everything else is the splatstudio command line (`-m splatstudio` too)
    assert dispatch(["--version"]) == 0
    assert dispatch(["-m", "splatstudio", "--version"]) == 0
    assert capsys.readouterr().out.count("SplatStudio") == 2


def test_a_bundle_command_line_round_trips_through_a_real_process(bundle, tmp_path):
    """A stand-in for the bundle's executable (this interpreter running `dispatch`) runs the stage command."""
    bundle.parent.mkdir(parents=True)
    bundle.write_text(f"#!/bin/sh\nexec {PYTHON} -c "
                      "'import sys; from splatstudio.bundle_main import dispatch; sys.exit(dispatch())' \"$@\"\n")
    bundle.chmod(bundle.stat().st_mode | stat.S_IXUSR)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    missing = subprocess.run(stage_argv("features", tmp_path / "nothing"), capture_output=True, text=True, env=env)
    assert missing.returncode == 1 and missing.stderr.startswith("error:") and "project" in missing.stderr
    script = tmp_path / "echo.py"
    script.write_text("import sys\nprint(' '.join(sys.argv[1:]))\n")
    done = subprocess.run(launch.script_command(script) + ["a", "b"], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and done.stdout == "a b\n"


# ------------------------------------------------------------------------------------------ install script

def test_install_and_uninstall_for_the_user(tmp_path):
    """install_linux.sh on a stand-in bundle: files in place, Exec made absolute, then removed again."""
    bundle = tmp_path / "dist" / "SplatStudio"
    internal = bundle / "_internal"
    shutil.copytree(LINUX, internal / "linux")
    shutil.copytree(ROOT / "resources", internal / "resources")
    (bundle / "splatstudio").write_text("#!/bin/sh\necho SplatStudio\n")
    (bundle / "splatstudio").chmod(0o755)
    home = tmp_path / "home"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
    script = ROOT / "installers" / "install_linux.sh"
    result = subprocess.run(["bash", str(script), str(bundle)], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    data = home / ".local" / "share"
    exe = data / "splatstudio" / "splatstudio"
    assert exe.is_file() and (home / ".local" / "bin" / "splatstudio").resolve() == exe
    viewer = _entry(data / "applications" / VIEWER.name)
    assert viewer["Exec"] == f"{exe} view %f" and viewer["TryExec"] == str(exe)
    assert _entry(data / "applications" / DESKTOP.name)["Exec"] == str(exe)
    assert (data / "icons" / "hicolor" / "48x48" / "apps" / f"{APP_ID}.png").is_file()
    assert (data / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg").is_file()
    assert (data / "mime" / "packages" / f"{APP_ID}.xml").is_file()
    assert (data / "metainfo" / METAINFO.name).is_file()
    if shutil.which("update-mime-database"):
        assert "application/x-gaussian-splat:*.splat" in (data / "mime" / "globs2").read_text()

    result = subprocess.run(["bash", str(script), "--uninstall"], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (data / "splatstudio").exists() and not (home / ".local" / "bin" / "splatstudio").exists()
    assert not (data / "applications" / DESKTOP.name).exists()
    assert not list((data / "icons").rglob(f"{APP_ID}.*")) and not (data / "mime" / "packages" / f"{APP_ID}.xml").exists()


def test_spec_and_scripts_parse():
    compile((ROOT / "installers" / "splatstudio.spec").read_text(), "splatstudio.spec", "exec")
    for name in ("build_bundle.sh", "smoke_test.sh", "install_linux.sh"):
        subprocess.run(["bash", "-n", str(ROOT / "installers" / name)], check=True)
