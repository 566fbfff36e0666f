"""Synthetic JPEG images for data sets whose raw format is a folder of JPEGs (ImageNet, OpenImages).

The images are not meant to look like photographs; they are meant to exercise the same code paths
as real ones: varied sizes and aspect ratios (so the resize and crop arithmetic sees odd sizes),
three JPEG colour modes (RGB, greyscale and CMYK, which OpenCV decodes to 3-channel BGR in three
different ways), and content with both smooth regions and edges, so that a model's predictions on
them vary from image to image. Everything is seeded: image i depends only on (seed, i), so a set is
reproducible and can be written in parallel.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from mlperf_trt.errors import DataError
from mlperf_trt.progress import Progress

__all__ = ["ImageSpec", "image_spec", "render_image", "write_jpeg", "write_images"]

log = logging.getLogger(__name__)

MIN_SIDE = 64
MAX_SIDE = 700
ASPECT = (0.4, 2.5)  # width / height


@dataclass(frozen=True)
class ImageSpec:
    height: int
    width: int
    mode: str  # Pillow mode of the JPEG: "RGB", "L" or "CMYK"
    quality: int


def colour_mode(index: int) -> str:
    """Exactly 10% greyscale and 5% CMYK, spread so that any 8 consecutive images hold all three."""
    if index % 20 == 7:
        return "CMYK"
    if index % 10 == 3:
        return "L"
    return "RGB"


def _rng(seed: int, index: int) -> np.random.Generator:
    if seed < 0:
        raise DataError(f"seed {seed} is negative: expected an integer >= 0")
    return np.random.default_rng([seed, index])


def image_spec(seed: int, index: int) -> ImageSpec:
    """Size (sides in 64..700, aspect 0.4..2.5, log-uniform), colour mode and JPEG quality."""
    rng = _rng(seed, index)
    aspect = float(np.exp(rng.uniform(np.log(ASPECT[0]), np.log(ASPECT[1]))))
    lo = max(MIN_SIDE, MIN_SIDE / aspect)
    hi = min(MAX_SIDE, MAX_SIDE / aspect)
    height = int(round(rng.uniform(lo, hi)))
    width = int(round(height * aspect))
    height = min(max(height, MIN_SIDE), MAX_SIDE)
    width = min(max(width, MIN_SIDE), MAX_SIDE)
    return ImageSpec(height, width, colour_mode(index), int(rng.integers(75, 96)))


def render_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """An RGB uint8 image: a smooth colour field, a gradient, random shapes and some texture."""
    f32 = np.float32
    # Smooth colour field: a coarse grid of random colours, upsampled.
    grid = rng.uniform(0, 255, (int(rng.integers(2, 7)), int(rng.integers(2, 7)), 3)).astype(f32)
    field = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    # Linear gradient in a random direction, one colour per channel, blended in.
    theta = rng.uniform(0, 2 * np.pi)
    xs = np.arange(width, dtype=f32) * f32(np.cos(theta) / width)
    ys = np.arange(height, dtype=f32) * f32(np.sin(theta) / height)
    ramp = np.add.outer(ys, xs)
    ramp_colour = rng.uniform(-120, 120, 3).astype(f32)
    field += ramp[..., None] * ramp_colour
    img: np.ndarray = np.clip(field, 0, 255, out=field).astype(np.uint8)
    # Random shapes with hard edges.
    scale = max(height, width)
    for _ in range(int(rng.integers(2, 13))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        thickness = -1 if rng.random() < 0.6 else int(rng.integers(1, 8))
        cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
        kind = int(rng.integers(0, 4))
        if kind == 0:
            r = int(rng.integers(4, max(5, scale // 3)))
            cv2.circle(img, (cx, cy), r, colour, thickness, cv2.LINE_AA)
        elif kind == 1:
            x2, y2 = int(rng.integers(0, width)), int(rng.integers(0, height))
            cv2.rectangle(img, (cx, cy), (x2, y2), colour, thickness)
        elif kind == 2:
            axes = (
                int(rng.integers(4, max(5, width // 2))),
                int(rng.integers(4, max(5, height // 2))),
            )
            angle = float(rng.uniform(0, 180))
            cv2.ellipse(img, (cx, cy), axes, angle, 0, 360, colour, thickness, cv2.LINE_AA)
        else:
            xy = [rng.integers(0, width, 5), rng.integers(0, height, 5)]
            pts = np.stack(xy, axis=1).astype(np.int32)
            if thickness < 0:
                cv2.fillPoly(img, [pts], colour, cv2.LINE_AA)
            else:
                cv2.polylines(img, [pts], True, colour, thickness, cv2.LINE_AA)
    # Texture: stripes or noise, of random strength.
    texture = rng.integers(0, 3)
    if texture == 1:
        freq = rng.uniform(0.02, 0.4)
        phi = rng.uniform(0, 2 * np.pi)
        sx = np.arange(width, dtype=f32) * f32(freq * np.cos(phi))
        sy = np.arange(height, dtype=f32) * f32(freq * np.sin(phi))
        stripes = np.sin(np.add.outer(sy, sx)) * f32(rng.uniform(5, 40))
        out = img.astype(f32) + stripes[..., None]
        img = np.clip(out, 0, 255, out=out).astype(np.uint8)
    elif texture == 2:
        channels = 1 if rng.random() < 0.5 else 3
        noise = rng.standard_normal((height, width, channels), dtype=f32)
        noise *= f32(rng.uniform(2, 25))
        out = img.astype(f32) + noise
        img = np.clip(out, 0, 255, out=out).astype(np.uint8)
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.5, 2.5)))
    return np.ascontiguousarray(img)


def write_jpeg(path: Path, rgb: np.ndarray, mode: str = "RGB", quality: int = 90) -> None:
    """Save an RGB uint8 image as a JPEG in Pillow colour mode `mode` ("RGB", "L" or "CMYK")."""
    if mode not in ("RGB", "L", "CMYK"):
        raise DataError(f"unknown JPEG colour mode {mode!r}: expected 'RGB', 'L' or 'CMYK'")
    image = Image.fromarray(rgb, mode="RGB")
    if mode != "RGB":
        image = image.convert(mode)
    tmp = path.with_name(f".{path.name}.tmp")
    image.save(tmp, format="JPEG", quality=quality)
    os.replace(tmp, path)


def write_images(
    out_dir: Path,
    names: Sequence[str],
    seed: int,
    *,
    threads: int | None = None,
    show_progress: bool = True,
    label: str = "synthesize images",
) -> list[ImageSpec]:
    """Write names[i] as synthetic image i of set `seed` into out_dir; returns each image's spec."""
    out_dir.mkdir(parents=True, exist_ok=True)

    def one(index: int) -> ImageSpec:
        spec = image_spec(seed, index)
        rgb = render_image(_rng(seed, index + (1 << 40)), spec.height, spec.width)
        write_jpeg(out_dir / names[index], rgb, spec.mode, spec.quality)
        return spec

    progress = Progress(label, total=len(names), unit="images") if show_progress else None
    specs: list[ImageSpec] = []
    with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 1) as pool:
        for spec in pool.map(one, range(len(names))):
            specs.append(spec)
            if progress is not None:
                progress.update(len(specs))
    if progress is not None:
        progress.update(len(specs), force=True)
        progress.close()
    log.info("wrote %d synthetic images to %s", len(names), out_dir)
    return specs
