"""Datasets in: detection, the import of each kind (stage records that make the plan skip what is
there), the nerfstudio convention round trip, and clear errors that leave nothing behind."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from dataset_builders import (
    nerfstudio_applied_transform,
    nerfstudio_c2w,
    render_photos,
    write_colmap_folder,
    write_nerfstudio,
    write_trainer_output,
)
from PIL import Image

from splatstudio.cli import main as cli
from splatstudio.ingest import dataset_readers, datasets
from splatstudio.ingest.datasets import (
    COLMAP,
    NERFSTUDIO,
    TRAINER_OUTPUT,
    DatasetError,
    dataset_report,
    detect_dataset,
    import_dataset,
    read_cfg_args,
)
from splatstudio.io import colmap
from splatstudio.io.nerfstudio import colmap_pose_from_transform, read_transforms, transform_from_colmap_pose
from splatstudio.io.ply import read_points_ply, write_points_ply
from splatstudio.model.geometry import quaternion_to_matrix
from splatstudio.model.library import Library, LibraryError
from splatstudio.model.project import DONE, STAGES, ProjectError
from splatstudio.model.settings import Settings
from splatstudio.pipeline.plan import PlanError, plan_run

COUNT, WIDTH, HEIGHT = 8, 160, 120


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return render_photos(tmp_path_factory.mktemp("sample") / "photos", COUNT, WIDTH, HEIGHT)


@pytest.fixture
def library(tmp_path):
    return Library(tmp_path / "lib")


def _open(library, path, name=None, settings=None):
    return import_dataset(library, path, name, settings or Settings())


def _assert_poses(model: colmap.ColmapModel, photos, tolerance=1e-5):
    known = photos.poses()
    assert sorted(image.name for image in model.images.values()) == sorted(known)
    for image in model.images.values():
        rotation, translation = known[image.name]
        assert np.abs(image.rotation_matrix() - rotation).max() < tolerance, image.name
        assert np.abs(image.tvec - translation).max() < tolerance, image.name


def _assert_nothing_left(library: Library):
    leftovers = [p.name for p in library.folder.iterdir() if not p.name.startswith("library.sqlite3")]
    assert leftovers == []
    assert library.list_projects() == []


# ------------------------------------------------------------------------------------------ detection

def test_detects_each_kind_and_nothing_else(photos, tmp_path):
    write_colmap_folder(tmp_path / "bin", photos)
    write_colmap_folder(tmp_path / "txt", photos, binary=False)
    write_nerfstudio(tmp_path / "ns", photos)
    write_trainer_output(tmp_path / "out", photos, tmp_path / "bin")
    assert detect_dataset(tmp_path / "bin").kind == COLMAP
    assert "binary model in sparse/0" in detect_dataset(tmp_path / "bin").description
    assert "text model" in detect_dataset(tmp_path / "txt").description
    ns = detect_dataset(tmp_path / "ns")
    assert ns.kind == NERFSTUDIO and ns.description == f"nerfstudio dataset: {COUNT} frames, with sparse points"
    assert detect_dataset(tmp_path / "ns" / "transforms.json").kind == NERFSTUDIO
    out = detect_dataset(tmp_path / "out")
    assert out.kind == TRAINER_OUTPUT and "iteration 30000" in out.description and "bin" in out.description
    assert out.title == "reference-trainer output"
    assert detect_dataset(photos.folder) is None  # plain photos: the photo import's job
    assert detect_dataset(tmp_path / "nothing") is None
    assert detect_dataset(photos.folder / "IMG_0001.jpg") is None


# ------------------------------------------------------------------------------------------ COLMAP

@pytest.mark.parametrize("binary", [True, False], ids=["binary", "text"])
def test_colmap_folder_skips_to_training(photos, tmp_path, library, binary):
    source = write_colmap_folder(tmp_path / "colmap", photos, binary=binary)
    project = _open(library, source, "Toy")
    assert project.name == "Toy" and project.folder == library.folder / "Toy"
    assert plan_run(project).stages == ("train", "filter", "splat")

    records = project.stage_records()
    assert list(records) == ["features", "matching", "mapping", "undistort"]
    for stage, record in records.items():
        assert record.status == DONE and record.fingerprint == project.settings.fingerprint(stage)
        assert record.figures["imported_from"] == str(source) and record.message.startswith("imported from COLMAP")
    mapping = records["mapping"].figures
    assert mapping["registered"] == mapping["total"] == COUNT and mapping["points"] == 3000
    assert mapping["mean_reprojection_error"] == 0.5 and mapping["strategy"] == "imported"
    assert json.loads(project.path("sfm", "report.json").read_text())["registered"] == COUNT
    assert records["undistort"].figures["camera_models"] == ["PINHOLE"]

    model = colmap.read_model(project.path("sfm", "sparse", "0"))
    assert colmap.model_extension(project.path("sfm", "sparse", "0")) == ".bin"
    _assert_poses(model, photos, 1e-12)
    assert len(read_points_ply(project.path("output", "sparse_points.ply")).xyz) == 3000
    dataset = colmap.read_model(project.path("dataset", "sparse", "0"))
    assert dataset.cameras[1].model == "PINHOLE" and len(dataset.images) == COUNT
    assert sorted(p.name for p in project.path("dataset", "images").iterdir()) == sorted(photos.poses())

    assert sorted(project.image_names()) == sorted(photos.poses())
    for name in project.image_names():  # stored as they are: same bytes, no re-encoding
        assert (project.images_dir / name).read_bytes() == (photos.folder / name).read_bytes()
    runs = project.runs()
    assert len(runs) == 1 and runs[0]["status"] == DONE and len(runs[0]["attempts"]) == 4
    row = library.list_projects()[0]
    assert row["status"] == "incomplete" and row["stage"] == "train" and row["image_count"] == COUNT
    assert dataset_report(project)["kind"] == COLMAP
    assert not (library.folder / datasets.STAGING).exists()


def test_distorted_cameras_leave_undistortion_to_run(photos, tmp_path, library):
    source = write_colmap_folder(tmp_path / "colmap", photos, model="OPENCV", k1=0.01)
    project = _open(library, source)
    assert plan_run(project).stages == ("undistort", "train", "filter", "splat")
    assert not project.path("dataset").exists()
    assert colmap.read_model(project.path("sfm", "sparse", "0")).cameras[1].model == "OPENCV"
    assert any("undistort stage will run" in note for note in dataset_report(project)["notes"])


def test_cameras_without_distortion_are_stored_as_pinholes(photos, tmp_path, library):
    source = write_colmap_folder(tmp_path / "colmap", photos, model="SIMPLE_RADIAL")  # k = 0
    project = _open(library, source)
    camera = colmap.read_model(project.path("sfm", "sparse", "0")).cameras[1]
    assert camera.model == "SIMPLE_PINHOLE" and np.allclose(camera.params, [photos.intrinsics.fx, 80, 60])
    assert plan_run(project).stages == ("train", "filter", "splat")
    assert any("SIMPLE_RADIAL with no distortion stored as SIMPLE_PINHOLE" in n for n in dataset_report(project)["notes"])


def test_images_in_subfolders_get_flat_names_and_extra_files_are_listed(photos, tmp_path, library):
    source = write_colmap_folder(tmp_path / "colmap", photos)
    model = colmap.read_model(source / "sparse" / "0")
    for image in model.images.values():  # two "rigs" sharing file names
        folder = "left" if image.id % 2 else "right"
        new_name = f"{folder}/{'IMG_0001.jpg' if image.id <= 2 else image.name}"
        (source / "images" / folder).mkdir(exist_ok=True)
        (source / "images" / image.name).replace(source / "images" / new_name)
        image.name = new_name
    colmap.write_model(model, source / "sparse" / "0")
    (source / "images" / "unused.jpg").write_bytes((source / "images" / "left" / "IMG_0001.jpg").read_bytes())
    project = _open(library, source)
    names = sorted(project.image_names())
    assert "left_IMG_0001.jpg" in names and "right_IMG_0001.jpg" in names and len(names) == COUNT
    stored = colmap.read_model(project.path("sfm", "sparse", "0"))
    assert sorted(image.name for image in stored.images.values()) == names
    manifest = json.loads(project.path("import.json").read_text())
    assert [Path(r["source"]).name for r in manifest["rejected"]] == ["unused.jpg"]
    assert "not in the COLMAP model" in manifest["rejected"][0]["reason"]


def test_exif_rotation_is_noted_never_applied(photos, tmp_path, library):
    source = write_colmap_folder(tmp_path / "colmap", photos)
    target = source / "images" / "IMG_0002.jpg"
    with Image.open(target) as image:
        pixels = image.copy()
    exif = Image.Exif()
    exif[datasets.EXIF_ORIENTATION] = 6
    pixels.save(target, exif=exif.tobytes(), quality=92)
    project = _open(library, source)
    assert (project.images_dir / "IMG_0002.jpg").read_bytes() == target.read_bytes()
    accepted = {item["name"]: item for item in json.loads(project.path("import.json").read_text())["accepted"]}
    assert (accepted["IMG_0002.jpg"]["width"], accepted["IMG_0002.jpg"]["height"]) == (WIDTH, HEIGHT)
    assert any("EXIF orientation 6 ignored" in note for note in accepted["IMG_0002.jpg"]["notes"])


# ------------------------------------------------------------------------------------------ nerfstudio

def test_nerfstudio_conventions_match_colmap_to_json():
    rng = np.random.default_rng(3)
    for _ in range(20):
        rotation = quaternion_to_matrix(rng.normal(size=4))
        translation = rng.normal(size=3)
        for applied in (False, True):
            written = nerfstudio_c2w(rotation, translation, applied)  # nerfstudio's own code
            transform = nerfstudio_applied_transform() if applied else None
            assert np.allclose(transform_from_colmap_pose(rotation, translation, transform), written, atol=1e-12)
            back_r, back_t = colmap_pose_from_transform(written, transform)
            assert np.allclose(back_r, rotation, atol=1e-12) and np.allclose(back_t, translation, atol=1e-12)
    # camera looking along -z in OpenGL = +z in OpenCV: the identity c2w is a camera looking down world -z
    rotation, _ = colmap_pose_from_transform(np.eye(4))
    assert np.allclose(rotation @ [0.0, 0.0, -1.0], [0.0, 0.0, 1.0])


@pytest.mark.parametrize("applied", [True, False], ids=["applied_transform", "original_world"])
def test_nerfstudio_dataset_round_trips_to_the_known_cameras(photos, tmp_path, library, applied):
    source = write_nerfstudio(tmp_path / "ns", photos, applied=applied)
    project = _open(library, source)
    assert plan_run(project).stages == ("train", "filter", "splat")
    model = colmap.read_model(project.path("sfm", "sparse", "0"))
    _assert_poses(model, photos, 1e-5)
    k = photos.intrinsics
    assert len(model.cameras) == 1 and model.cameras[1].model == "PINHOLE"
    assert np.allclose(model.cameras[1].params, [k.fx, k.fy, k.cx, k.cy])
    assert np.abs(model.points.xyz - photos.points_xyz).max() < 1e-5  # applied_transform undone
    assert np.array_equal(model.points.rgb, photos.points_rgb)
    assert project.stage_record("mapping").figures["random_points"] is False
    assert ("applied_transform undone" in " ".join(dataset_report(project)["notes"])) == applied


def test_nerfstudio_without_points_starts_from_random_points(photos, tmp_path, library, monkeypatch):
    monkeypatch.setattr(dataset_readers, "RANDOM_POINTS", 2000)
    source = write_nerfstudio(tmp_path / "ns", photos, ply=False)
    assert detect_dataset(source).description.endswith("no sparse points")
    project = _open(library, source)
    report = dataset_report(project)
    assert report["random_points"] is True
    assert any("no sparse points" in note and "random points" in note for note in report["notes"])
    mapping = project.stage_record("mapping").figures
    assert mapping["points"] == 2000 and mapping["random_points"] is True
    xyz = read_points_ply(project.path("output", "sparse_points.ply")).xyz
    # a cube around the toy the cameras look at (LOOK_AT z=0.55), inside the orbit (radius 4.4)
    assert len(xyz) == 2000 and np.allclose(xyz.mean(axis=0), [0.0, 0.0, 0.55], atol=0.2)
    assert np.abs(xyz[:, :2]).max() < 2.3 and xyz[:, 2].min() < 0.0


def test_nerfstudio_distortion_and_per_frame_intrinsics(photos, tmp_path, library):
    source = write_nerfstudio(tmp_path / "ns", photos, distortion={"k1": 0.02, "p2": 0.001})
    meta = json.loads((source / "transforms.json").read_text())
    meta["frames"][3]["fl_x"] = meta["fl_x"] * 1.01
    (source / "transforms.json").write_text(json.dumps(meta))
    project = _open(library, source)
    model = colmap.read_model(project.path("sfm", "sparse", "0"))
    assert {c.model for c in model.cameras.values()} == {"OPENCV"} and len(model.cameras) == 2
    camera = model.cameras[model.images[4].camera_id]
    assert camera.params[0] == pytest.approx(photos.intrinsics.fx * 1.01)
    assert list(camera.params[4:]) == [0.02, 0.0, 0.0, 0.001]
    assert plan_run(project).stages == ("undistort", "train", "filter", "splat")


def test_nerfstudio_fisheye_and_missing_size(photos, tmp_path):
    source = write_nerfstudio(tmp_path / "ns", photos, distortion={"camera_model": "OPENCV_FISHEYE", "k1": 0.1,
                                                                   "k4": 0.01, "k2": 0.0, "p1": 0.0, "p2": 0.0})
    meta = json.loads((source / "transforms.json").read_text())
    del meta["w"], meta["h"]
    (source / "transforms.json").write_text(json.dumps(meta))
    scene = read_transforms(source)
    camera = scene.cameras[1]
    assert (camera.model, camera.width, camera.height) == ("OPENCV_FISHEYE", WIDTH, HEIGHT)
    assert camera.params[4] == 0.1 and camera.params[7] == 0.01


# ------------------------------------------------------------------------------------------ trainer output

def test_trainer_output_with_its_source_skips_to_filtering(photos, tmp_path, library):
    source = write_colmap_folder(tmp_path / "colmap", photos)
    output = write_trainer_output(tmp_path / "output" / "abc123", photos, source)
    assert _open(library, output).name == "colmap"  # named after its source, not the output's random id
    project = _open(library, output, "Trained")
    assert plan_run(project).stages == ("filter", "splat")
    train = project.stage_record("train")
    assert train.status == DONE and train.figures["num_gaussians"] == 500 and train.figures["iterations"] == 30000
    assert train.fingerprint == project.settings.fingerprint("train")
    assert project.settings.iterations == 30000 and project.settings.sh_degree == 3
    plys = sorted(p.relative_to(project.path("train")).as_posix() for p in project.path("train").rglob("*.ply"))
    assert plys == ["point_cloud/iteration_30000/point_cloud.ply"]
    assert project.path("train", "cameras.json").read_text() == (output / "cameras.json").read_text()
    assert project.path("train", "cfg_args").is_file()
    assert len(project.image_names()) == COUNT
    assert project.stage_record("mapping").figures["imported_from"] == str(source)
    _assert_poses(colmap.read_model(project.path("dataset", "sparse", "0")), photos, 1e-12)


def test_trainer_output_alone_has_no_photos_but_runs_its_post_processing(photos, tmp_path, library):
    output = write_trainer_output(tmp_path / "output", photos, tmp_path / "moved-away", sh_degree=1)
    project = _open(library, output)
    assert project.image_names() == [] and project.settings.sh_degree == 1
    assert plan_run(project).stages == ("filter", "splat")
    assert all(project.stage_record(s).status == DONE for s in STAGES[:5])
    assert "without its photos" in project.stage_record("features").message
    assert any("not reachable" in note for note in dataset_report(project)["notes"])
    assert dataset_report(project)["imported"] == ["train"]  # the stages before it are done but empty
    with pytest.raises(PlanError, match="no photos"):
        plan_run(project, from_stage="train")


def test_cfg_args_is_parsed_without_running_it(tmp_path):
    cfg = tmp_path / "cfg_args"
    cfg.write_text("Namespace(sh_degree=3, source_path='/data/x', eval=True, weird=__import__('os').getcwd())")
    assert read_cfg_args(cfg) == {"sh_degree": 3, "source_path": "/data/x", "eval": True}
    cfg.write_text("print('hello')")
    with pytest.raises(DatasetError, match="cfg_args"):
        read_cfg_args(cfg)


# ------------------------------------------------------------------------------------------ errors

def _break_missing_image(root, photos):
    source = write_colmap_folder(root / "colmap", photos)
    (source / "images" / "IMG_0003.jpg").unlink()
    return source, r"IMG_0003\.jpg: missing .* is in the model"


def _break_size(root, photos):
    source = write_colmap_folder(root / "colmap", photos)
    with Image.open(source / "images" / "IMG_0005.jpg") as image:
        image.resize((80, 60)).save(source / "images" / "IMG_0005.jpg")
    return source, r"IMG_0005\.jpg: the image is 80x60 but its camera 1 .* is 160x120"


def _break_unknown_model_text(root, photos):
    source = write_colmap_folder(root / "colmap", photos, binary=False)
    cameras = source / "sparse" / "0" / "cameras.txt"
    cameras.write_text(cameras.read_text().replace(" PINHOLE ", " FISHEYE "))
    return source, r"cameras\.txt: line \d+: .*camera model 'FISHEYE' is not one COLMAP knows"


def _break_truncated_binary(root, photos):
    source = write_colmap_folder(root / "colmap", photos)
    images = source / "sparse" / "0" / "images.bin"
    images.write_bytes(images.read_bytes()[:-10])
    return source, r"sparse/0/images\.bin: (unterminated|truncated|header claims)"


def _break_json(root, photos):
    source = write_nerfstudio(root / "ns", photos)
    (source / "transforms.json").write_text('{"frames": [')
    return source, r"transforms\.json: not valid JSON \(line 1"


def _break_matrix(root, photos):
    source = write_nerfstudio(root / "ns", photos)
    meta = json.loads((source / "transforms.json").read_text())
    matrix = np.array(meta["frames"][2]["transform_matrix"])
    matrix[:3, :3] *= 2  # a scaled camera: not a rigid motion
    meta["frames"][2]["transform_matrix"] = matrix.tolist()
    (source / "transforms.json").write_text(json.dumps(meta))
    return source, r"transforms\.json: frame 2 \(images/IMG_0003\.jpg\): transform_matrix .*not a rotation"


def _break_camera_model(root, photos):
    source = write_nerfstudio(root / "ns", photos, distortion={"camera_model": "EQUIRECTANGULAR"})
    return source, r"transforms\.json: frame 0 .*unsupported camera model 'EQUIRECTANGULAR'"


def _break_frame_image(root, photos):
    source = write_nerfstudio(root / "ns", photos)
    (source / "images" / "IMG_0008.jpg").unlink()
    return source, r"transforms\.json: frame 7 \(images/IMG_0008\.jpg\): the image .* does not exist"


def _break_ply(root, photos):
    source = write_nerfstudio(root / "ns", photos)
    (source / "sparse_pc.ply").write_text("ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nend_header\n1\n")
    return source, r"sparse_pc\.ply: "


def _break_trained_ply(root, photos):
    output = write_trainer_output(root / "out", photos, None)
    write_points_ply(output / "point_cloud" / "iteration_30000" / "point_cloud.ply", np.zeros((3, 3)),
                     np.zeros((3, 3), dtype=np.uint8))
    return output, r"iteration_30000/point_cloud\.ply: not a Gaussian-splat PLY \(missing f_dc_0"


def _break_cameras_json(root, photos):
    output = write_trainer_output(root / "out", photos, None)
    (output / "cameras.json").write_text("[{]")
    return output, r"cameras\.json: not valid JSON"


def _not_a_dataset(root, photos):
    return photos.folder, r"not a dataset SplatStudio can open"


BROKEN = [_break_missing_image, _break_size, _break_unknown_model_text, _break_truncated_binary, _break_json,
          _break_matrix, _break_camera_model, _break_frame_image, _break_ply, _break_trained_ply,
          _break_cameras_json, _not_a_dataset]


@pytest.mark.parametrize("breaker", BROKEN, ids=[b.__name__.lstrip("_") for b in BROKEN])
def test_bad_datasets_fail_clearly_and_leave_nothing(photos, tmp_path, library, breaker):
    source, message = breaker(tmp_path, photos)
    with pytest.raises(ProjectError, match=message):
        _open(library, source)
    _assert_nothing_left(library)


def test_a_failure_while_writing_leaves_nothing(photos, tmp_path, library, monkeypatch):
    source = write_colmap_folder(tmp_path / "colmap", photos)

    def explode(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(datasets, "_store_model", explode)
    with pytest.raises(OSError, match="No space"):
        _open(library, source)
    _assert_nothing_left(library)


def test_name_clash_and_target_folders(photos, tmp_path, library):
    source = write_colmap_folder(tmp_path / "colmap", photos)
    assert _open(library, source).name == "colmap"
    with pytest.raises(LibraryError, match="already exists"):
        _open(library, source, "COLMAP")  # a name given must be free
    assert len(library.list_projects()) == 1 and len(list(library.folder.glob("*/project.json"))) == 1
    again = _open(library, source)  # a default one is made unique
    assert again.name == "colmap (2)" and again.folder.name == "colmap-2"
    library.delete(again)
    project = import_dataset(tmp_path / "elsewhere" / "proj", source, "Loose", Settings())
    assert project.folder == tmp_path / "elsewhere" / "proj" and project.image_names()
    with pytest.raises(DatasetError, match="not an empty folder"):
        import_dataset(tmp_path / "elsewhere" / "proj", source, "Again", Settings())
    assert [p.name for p in (tmp_path / "elsewhere").iterdir()] == ["proj"]


def test_progress_is_reported(photos, tmp_path, library):
    source = write_nerfstudio(tmp_path / "ns", photos)
    seen = []
    import_dataset(library, source, None, Settings(), progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0


def test_cli_open(photos, tmp_path, capsys):
    source = write_nerfstudio(tmp_path / "ns", photos)
    lib = str(tmp_path / "lib")
    assert cli(["--library", lib, "open", str(source), "--name", "Scene", "--preset", "fast"]) == 0
    out = capsys.readouterr().out
    assert "created project 'Scene'" in out and "nerfstudio dataset: 8 frames" in out
    assert "imported: features, matching, mapping, undistort; left to run: train, filter, splat" in out
    project = Library(lib).get("Scene")
    assert project.settings.iterations == 2000 and project.stage_record("mapping").status == DONE
    shutil.rmtree(source / "images")
    assert cli(["--library", lib, "open", str(source), "--name", "Broken"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "transforms.json: frame 0" in err and "does not exist" in err
    assert cli(["--library", lib, "open", str(tmp_path / "nope")]) == 1
    assert "no such file or folder" in capsys.readouterr().err


def test_import_never_loads_pycolmap(photos, tmp_path):
    """The window imports in its own process: pycolmap's glog would take over SIGTERM there (NOTES.md)."""
    source = write_nerfstudio(tmp_path / "ns", photos)
    code = ("import sys; from splatstudio.ingest.datasets import import_dataset; "
            "from splatstudio.model.library import Library; from splatstudio.model.settings import Settings; "
            f"import_dataset(Library({str(tmp_path / 'lib')!r}), {str(source)!r}, None, Settings()); "
            "print('pycolmap' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "False"
