"""Procedural textures of the sample scene (`sample`): fractal noise, colour ramps, the objects' styles, and
the three textures baked once per scene (a solid texture of the objects, the ground mat, the sky dome), each
a `Grid` looked up with linear interpolation. Deterministic for a random generator's seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

OBJECT_CELL = 0.014
OBJECT_LOWER = np.array([-1.12, -1.12, -0.03])
OBJECT_UPPER = np.array([1.12, 1.12, 1.44])
GROUND_TEXELS = 1536
DOME_TEXELS = (1024, 512)




def fast_size(n: int) -> int:
    """Smallest integer >= n whose prime factors are 2, 3 and 5 (fast FFT length)."""
    m = n
    while True:
        rest = m
        for prime in (2, 3, 5):
            while rest % prime == 0:
                rest //= prime
        if rest == 1:
            return m
        m += 1


def fractal_noise(rng: np.random.Generator, shape: tuple[int, ...], exponent: float) -> np.ndarray:
    """Fractal noise: white noise filtered by ``|k|^-exponent``, unit variance.

    Computed on an FFT-friendly grid and cropped to ``shape``; periodic along
    axes whose length is already FFT-friendly.
    """
    full = tuple(fast_size(n) for n in shape)
    spectrum = np.fft.rfftn(rng.standard_normal(full))
    freqs = [np.fft.fftfreq(n) for n in full[:-1]] + [np.fft.rfftfreq(full[-1])]
    k2 = sum(np.meshgrid(*[f * f for f in freqs], indexing="ij", sparse=True))
    k2.flat[0] = np.inf
    field = np.fft.irfftn(spectrum * k2 ** (-exponent / 2.0), s=full, axes=range(len(full)))
    field = field[tuple(slice(0, n) for n in shape)]
    return ((field - field.mean()) / field.std()).astype(np.float32)


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def ramp(t: np.ndarray, colors: Sequence[Sequence[float]]) -> np.ndarray:
    """Piecewise-linear colour ramp: ``t`` in [0, 1] -> (N, 3)."""
    stops = np.linspace(0.0, 1.0, len(colors))
    table = np.asarray(colors, dtype=np.float32)
    return np.stack([np.interp(t, stops, table[:, c]) for c in range(3)], axis=-1).astype(np.float32)


def mix(base: np.ndarray, color: Sequence[float], weight: np.ndarray) -> np.ndarray:
    return base + (np.asarray(color, dtype=np.float32) - base) * weight[..., None]


@dataclass(frozen=True)
class Style:
    """Colour recipe of one object surface (see :func:`stylise`)."""

    palette: tuple[tuple[float, float, float], ...]
    blob_color: tuple[float, float, float]
    spot_color: tuple[float, float, float]
    stripe_color: tuple[float, float, float] | None = None
    stripe_axis: tuple[float, float, float] = (0.0, 0.0, 1.0)
    stripe_frequency: float = 0.0
    stripe_warp: float = 2.0


STYLES = (
    Style(
        palette=((0.50, 0.16, 0.09), (0.84, 0.40, 0.17), (0.98, 0.78, 0.46)),  # box
        blob_color=(0.96, 0.92, 0.78),
        spot_color=(0.25, 0.10, 0.06),
        stripe_color=(0.28, 0.10, 0.06),
        stripe_axis=(0.35, 0.25, 1.0),
        stripe_frequency=6.0,
    ),
    Style(
        palette=((0.04, 0.22, 0.33), (0.08, 0.48, 0.55), (0.55, 0.82, 0.76)),  # big sphere
        blob_color=(0.99, 0.80, 0.18),
        spot_color=(0.03, 0.06, 0.20),
    ),
    Style(
        palette=((0.10, 0.28, 0.08), (0.33, 0.58, 0.18), (0.80, 0.86, 0.40)),  # cylinder
        blob_color=(0.85, 0.15, 0.12),
        spot_color=(0.05, 0.12, 0.04),
        stripe_color=(0.96, 0.95, 0.84),
        stripe_axis=(0.0, 0.0, 1.0),
        stripe_frequency=8.0,
        stripe_warp=1.2,
    ),
    Style(
        palette=((0.42, 0.12, 0.48), (0.82, 0.36, 0.66), (1.00, 0.82, 0.90)),  # small sphere
        blob_color=(0.30, 0.85, 0.95),
        spot_color=(0.12, 0.02, 0.16),
        stripe_color=(0.22, 0.05, 0.30),
        stripe_axis=(1.0, 0.3, 0.2),
        stripe_frequency=5.0,
        stripe_warp=3.0,
    ),
)


def stylise(style: Style, points: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Colour (N, 3) of surface points (N, 3) from four noise channels (N, 4).

    Channels: 0 smooth (palette), 1 rough (luminance detail), 2 blobs/spots,
    3 warp (stripe jitter).
    """
    broad, fine, blob, warp = noise.T
    color = ramp(0.5 + 0.5 * np.tanh(0.9 * broad), style.palette)
    if style.stripe_color is not None:
        axis = np.asarray(style.stripe_axis) / np.linalg.norm(style.stripe_axis)
        phase = 2.0 * math.pi * style.stripe_frequency * (points @ axis) + style.stripe_warp * warp
        color = mix(color, style.stripe_color, 0.85 * smoothstep(0.35, 0.6, np.sin(phase)))
    color = mix(color, style.blob_color, smoothstep(0.95, 1.1, blob))
    color = mix(color, style.spot_color, smoothstep(-1.05, -1.2, blob))
    return detail(color, fine, 0.30)


def detail(color: np.ndarray, rough: np.ndarray, strength: float) -> np.ndarray:
    """Modulate brightness by rough noise so that no area is flat."""
    return color * np.clip(1.0 + strength * rough, 0.45, 1.55)[:, None]


def noise_channels(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Four fractal noise channels with different roughness, stacked last."""
    return np.stack([fractal_noise(rng, shape, e) for e in (2.2, 1.0, 1.6, 2.0)], axis=-1)


@dataclass(frozen=True)
class Grid:
    """Axis-aligned sampling grid carrying an RGB texture (..., 3) for linear lookup."""

    lower: np.ndarray
    cell: float
    rgb: np.ndarray

    def lookup(self, coords: np.ndarray) -> np.ndarray:
        """(Bi/tri)linear interpolation of the texture at coords (N, dim)."""
        dims = self.rgb.shape[:-1]
        grid = (coords - self.lower) / self.cell
        base = np.clip(np.floor(grid), 0, np.asarray(dims) - 2).astype(np.intp)
        frac = np.clip(grid - base, 0.0, 1.0).astype(np.float32).T
        weights = (1.0 - frac, frac)
        strides = np.cumprod((1,) + dims[:0:-1])[::-1]
        flat = self.rgb.reshape(-1, 3)
        index = base @ strides
        result = np.zeros((len(coords), 3), dtype=np.float32)
        for corner in np.ndindex(*(2,) * len(dims)):
            weight = weights[corner[0]][0]
            for axis in range(1, len(dims)):
                weight = weight * weights[corner[axis]][axis]
            result += flat[index + int(np.dot(corner, strides))] * weight[:, None]
        return result


def grid_points(lower: np.ndarray, cell: float, dims: tuple[int, ...]) -> np.ndarray:
    axes = [lower[i] + cell * np.arange(n) for i, n in enumerate(dims)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(dims))


def object_texture(rng: np.random.Generator, objects: Sequence[Any]) -> Grid:
    """Solid texture of the objects: each voxel near a surface takes the style of
    the nearest object; voxels too far from every surface to be sampled stay black."""
    dims = tuple(int(n) for n in np.ceil((OBJECT_UPPER - OBJECT_LOWER) / OBJECT_CELL) + 1)
    noise = noise_channels(rng, dims).reshape(-1, 4)
    points = grid_points(OBJECT_LOWER, OBJECT_CELL, dims).astype(np.float32)
    distances = np.stack([shape.distance(points) for shape in objects])
    label = np.argmin(np.abs(distances), axis=0)
    near = np.abs(np.take_along_axis(distances, label[None], axis=0)[0]) < 2.0 * OBJECT_CELL
    rgb = np.zeros((len(points), 3), dtype=np.float32)
    for index, style in enumerate(STYLES):
        mine = np.flatnonzero(near & (label == index))
        rgb[mine] = stylise(style, points[mine], noise[mine])
    return Grid(OBJECT_LOWER, OBJECT_CELL, rgb.reshape(*dims, 3))


def ground_texture(rng: np.random.Generator, mat_radius: float) -> Grid:
    """Stone-like mat of `mat_radius`: sandy fractal noise, dark veins, colourful pebbles, a dark rim."""
    n = GROUND_TEXELS
    cell = 2.0 * mat_radius / (n - 1)
    lower = np.array([-mat_radius, -mat_radius])
    broad, fine, blob, warp = np.moveaxis(noise_channels(rng, (n, n)), -1, 0)
    hue = fractal_noise(rng, (n, n), 1.8).ravel()
    color = ramp(0.5 + 0.5 * np.tanh(broad.ravel()), ((0.30, 0.26, 0.22), (0.60, 0.53, 0.43), (0.90, 0.84, 0.72)))
    color = mix(color, (0.16, 0.12, 0.10), 0.8 * smoothstep(0.06, 0.0, np.abs(warp.ravel())))
    pebbles = ramp(
        0.5 + 0.5 * np.tanh(1.5 * hue), ((0.75, 0.20, 0.15), (0.95, 0.70, 0.20), (0.25, 0.55, 0.35), (0.20, 0.35, 0.75))
    )
    color = color + (pebbles - color) * smoothstep(1.3, 1.45, blob.ravel())[:, None]
    color = detail(color, fine.ravel(), 0.32)
    radius = np.linalg.norm(grid_points(lower, cell, (n, n)), axis=1)
    color = mix(color, (0.22, 0.14, 0.10), smoothstep(mat_radius - 0.12, mat_radius - 0.10, radius))
    return Grid(lower, cell, color.reshape(n, n, 3))


def dome_texture(rng: np.random.Generator) -> Grid:
    """Equirectangular (azimuth, elevation) background: sky, clouds, hills, meadow."""
    n_az, n_el = DOME_TEXELS
    broad, fine, blob, warp = (c.ravel() for c in np.moveaxis(noise_channels(rng, (n_az, n_el)), -1, 0))
    cell = 2.0 * math.pi / n_az
    lower = np.array([-math.pi, -math.pi / 2])
    coords = grid_points(lower, cell, (n_az, n_el))
    elevation = coords[:, 1]
    sky = ramp(np.clip(elevation / 1.2, 0.0, 1.0), ((0.86, 0.90, 0.93), (0.45, 0.65, 0.90), (0.25, 0.45, 0.80)))
    sky = mix(sky, (0.98, 0.98, 0.97), 0.85 * smoothstep(0.3, 1.3, broad + 0.3 * fine))
    ridge = 0.10 + 0.06 * np.tanh(warp)
    land = ramp(0.5 + 0.5 * np.tanh(broad), ((0.14, 0.24, 0.10), (0.36, 0.48, 0.18), (0.62, 0.58, 0.32)))
    land = detail(mix(land, (0.08, 0.14, 0.06), smoothstep(0.9, 1.1, blob)), fine, 0.4)
    hills = mix(land * 0.7, (0.30, 0.36, 0.42), smoothstep(-0.05, ridge, elevation) * 0.6)
    color = hills + (sky - hills) * smoothstep(ridge - 0.005, ridge + 0.005, elevation)[:, None]
    return Grid(lower, cell, color.reshape(n_az, n_el, 3).astype(np.float32))
