"""Post-processing stages: outlier filtering of the trained Gaussians (by the clean-up's detectors,
``model.cleanup``), and ``.splat`` conversion."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from splatstudio.io.ply import read_splat_ply, write_splat_ply
from splatstudio.model.atomic import write_json_atomic
from splatstudio.model.project import ProjectError, trained_ply
from splatstudio.pipeline.context import StageContext, StageFailed

if TYPE_CHECKING:
    from splatstudio.model.cleanup import FilterResult


def filter_ply(in_path: str | os.PathLike[str], out_path: str | os.PathLike[str], **detectors: Any) -> FilterResult:
    """Filter the Gaussians of a 3DGS PLY with the clean-up's stage detectors (statistical, detached:
    ``model.cleanup.filter_outliers``, whose keywords ``detectors`` are; what is not given is the settings'
    default, which only the settings declare) and write the survivors atomically."""
    from splatstudio.model.cleanup import filter_outliers

    cloud = read_splat_ply(in_path)
    result = filter_outliers(cloud.positions, **detectors)
    write_splat_ply(out_path, cloud.subset(result.keep_mask))
    return result


def run_filter(ctx: StageContext) -> dict[str, Any]:
    settings = ctx.settings
    try:
        source = trained_ply(ctx.project.path("train"))
    except ProjectError as exc:
        raise StageFailed(str(exc), "run the training stage again") from None
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
    from splatstudio.model.cleanup import describe_filter

    ctx.log(describe_filter(result))
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
