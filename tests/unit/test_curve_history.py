"""The training curves saved beside the logs (issue 25, item 5): a resumed training's points replace the old
ones from where it resumed, a fresh one starts anew, and a torn or foreign line is skipped."""

from __future__ import annotations

from splatstudio.pipeline.train import CurveHistory, add_point, load_curves


def _train(path, start, stop, resume, evals=()):
    history = CurveHistory(path, resume=resume, log=print)
    for iteration in range(start, stop, 10):
        history.add(iteration, loss=1.0 / iteration, psnr=float(iteration), num_gaussians=iteration * 2,
                    sec_per_iter=None)
        if iteration in evals:
            history.add(iteration, eval_psnr=20.0 + iteration / 1000)
    history.close()


def test_a_resumed_training_continues_the_curve_from_its_checkpoint(tmp_path):
    path = tmp_path / "train-curves.jsonl"
    _train(path, 10, 860, resume=False, evals=(500, 800, 850))  # stopped at 850, checkpoint at 834
    _train(path, 834, 1010, resume=True, evals=(1004,))
    series = load_curves(path)
    xs, ys = series["loss"]
    assert xs == sorted(set(xs)) and xs[0] == 10 and xs[-1] == 1004
    assert 830 in xs and 840 not in xs and 844 in xs  # the points after the checkpoint came again (850's
    # evaluation with them)
    assert series["eval_psnr"][0] == [500.0, 800.0, 1004.0]
    assert "sec_per_iter" not in series  # (None is no figure)


def test_a_fresh_training_starts_the_curves_anew(tmp_path):
    path = tmp_path / "train-curves.jsonl"
    _train(path, 10, 500, resume=False, evals=(200,))
    _train(path, 10, 100, resume=False)
    series = load_curves(path)
    assert series["loss"][0] == [float(i) for i in range(10, 100, 10)] and "eval_psnr" not in series


def test_torn_and_foreign_lines_are_skipped_and_a_missing_file_is_empty(tmp_path):
    path = tmp_path / "train-curves.jsonl"
    path.write_text('{"iteration": 10, "loss": 0.5}\n[1, 2]\n{"loss": 3}\nnot json\n{"iteration": 20, "loss": 0.4}\n'
                    '{"iteration": 30, "lo')
    assert load_curves(path) == {"loss": ([10.0, 20.0], [0.5, 0.4])}
    assert load_curves(tmp_path / "absent.jsonl") == {}


def test_a_point_going_back_drops_the_later_points_of_each_series():
    series: dict = {}
    for iteration in (10, 20, 30):
        add_point(series, {"iteration": iteration, "loss": iteration, "psnr": None})
    add_point(series, {"iteration": 30, "eval_psnr": 19.0})
    assert add_point(series, {"iteration": 20, "loss": 99.0})
    assert series["loss"] == ([10.0, 20.0], [10.0, 99.0]) and series["eval_psnr"] == ([], [])
    assert not add_point(series, {"loss": 1.0}) and not add_point(series, {"iteration": 40, "loss": float("nan")})
