"""Post-processing stages: outlier filtering of the trained Gaussians, and ``.splat`` conversion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from splatstudio.model.atomic import write_json_atomic
from splatstudio.model.project import RESULT_PLY, trained_iterations
from splatstudio.pipeline.entry import StageContext, StageFailed


def trained_ply(train_dir: Path) -> Path:
    """The PLY of the highest saved iteration in a reference-layout model folder."""
    candidates = trained_iterations(train_dir)
    if not candidates:
        raise StageFailed(f"the training stage left no point_cloud/iteration_N/point_cloud.ply in {train_dir}",
                          "run the training stage again")
    return candidates[-1][1]


def result_ply(project_folder: Path, raw: bool = False) -> Path:
    """The PLY an export starts from: the outlier-filtered result, or the trainer's output when `raw` (or
    when there is no filtered one yet). `StageFailed` if the project has not been trained."""
    filtered = Path(project_folder) / RESULT_PLY
    if not raw and filtered.is_file():
        return filtered
    train = Path(project_folder) / "train"
    if not train.is_dir():
        raise StageFailed(f"{Path(project_folder).name} has no trained result yet", "run the project first")
    return trained_ply(train)


def run_filter(ctx: StageContext) -> dict[str, Any]:
    from splatstudio.model.filters import filter_ply

    settings = ctx.settings
    source = trained_ply(ctx.project.path("train"))
    target = ctx.project.path("output", "point_cloud.ply")
    ctx.log(f"filtering {source}: k={settings.outlier_k_neighbors}, std={settings.outlier_std_threshold}, "
            f"min cluster ratio={settings.outlier_min_cluster_ratio}")
    ctx.progress(0.1, "finding outliers")
    result = filter_ply(source, target, k=settings.outlier_k_neighbors, std_ratio=settings.outlier_std_threshold,
                        min_cluster_ratio=settings.outlier_min_cluster_ratio)
    figures = {"total": result.total, "removed": result.total - result.remaining,
               "removed_statistical": result.removed_statistical, "removed_clusters": result.removed_clusters,
               "remaining": result.remaining, "source": str(source)}
    write_json_atomic(ctx.project.path("output", "filter.json"), figures)
    ctx.log(f"kept {result.remaining} of {result.total} Gaussians ({figures['removed']} outliers removed)")
    return figures


def run_splat(ctx: StageContext) -> dict[str, Any]:
    from splatstudio.io.formats import load_splats, save_splats
    from splatstudio.io.splat import oversized_scale_count

    source = ctx.project.path("output", "point_cloud.ply")
    target = ctx.project.path("output", "scene.splat")
    ctx.progress(0.1, "converting to .splat")
    cloud = load_splats(source)
    save_splats(cloud, target)
    size = target.stat().st_size
    ctx.log(f"wrote {target} ({len(cloud)} splats, {size / 1e6:.1f} MB)")
    oversized = oversized_scale_count(cloud)
    if oversized:  # an opened model may hold any finite log scale; no trainer makes one this large
        ctx.log(f"note: {oversized} splats have a scale too large for .splat's float32; "
                "they were written with the largest it holds")
    return {"splats": len(cloud), "bytes": size}
