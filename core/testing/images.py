"""Generated images for tests, the quickstart and experiments, offline.

Each class has a visible identity (a shape, a hue and a fill texture) drawn at a
random place, scale and angle over a cluttered, noisy background, so a small
network can learn it and a wrong pipeline visibly cannot. Everything is
deterministic for a seed: image ``i`` of class ``c`` depends only on
``(seed, c, i)``, not on how many other images are made. The dataset layouts
built from them are in :mod:`corolla.testing.datasets`.
"""
from __future__ import annotations

import colorsys
import math
from pathlib import Path

import attrs
import numpy as np
from PIL import Image, ImageDraw

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "ring", "cross", "diamond", "hexagon")
TEXTURES: tuple[str, ...] = ("solid", "stripes", "dots")


@attrs.frozen
class ClassLook:
    """What makes a class recognisable."""

    name: str
    shape: str
    hue: float
    texture: str


def class_looks(num_classes: int) -> list[ClassLook]:
    """The looks of classes ``0..num_classes-1``: shapes cycle fastest, hues spread by the golden ratio."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    looks = []
    for c in range(num_classes):
        shape = SHAPES[c % len(SHAPES)]
        texture = TEXTURES[(c // len(SHAPES)) % len(TEXTURES)]
        hue = (c * 0.618033988749895) % 1.0
        looks.append(ClassLook(f"c{c:02d}_{shape}", shape, hue, texture))
    return looks


def render_image(look: ClassLook, size: int | tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """One RGB image of a class: background gradient, clutter, the object, sensor noise."""
    width, height = _wh(size)
    image = _background(width, height, rng)
    draw = ImageDraw.Draw(image)
    _clutter(draw, width, height, rng)
    _draw_object(image, look, width, height, rng)
    pixels = np.asarray(image, dtype=np.int16)
    noise = rng.integers(-8, 9, size=pixels.shape, dtype=np.int16)
    return Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8))


def _wh(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    width, height = size
    return int(width), int(height)


def _background(width: int, height: int, rng: np.random.Generator) -> Image.Image:
    # muted tints (saturation below ~0.45) so that the object's colour stands out
    top, bottom = rng.uniform(60, 190, size=(2, 1)) + rng.uniform(-25, 25, size=(2, 3))
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    rows = top * (1 - t) + bottom * t
    return Image.fromarray(np.broadcast_to(rows, (height, width, 3)).astype(np.uint8))


def _clutter(draw: ImageDraw.ImageDraw, width: int, height: int, rng: np.random.Generator) -> None:
    """Distractors in muted greys: lines and small blobs, shared by all classes."""
    scale = min(width, height)
    for _ in range(int(rng.integers(3, 8))):
        grey = int(rng.integers(60, 200))
        x0, x1 = rng.uniform(0, width, 2)
        y0, y1 = rng.uniform(0, height, 2)
        draw.line([(x0, y0), (x1, y1)], fill=(grey, grey, grey), width=max(1, scale // 40))
    for _ in range(int(rng.integers(2, 6))):
        grey = int(rng.integers(60, 200))
        r = rng.uniform(0.02, 0.07) * scale
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=(grey, grey, grey))


def _draw_object(image: Image.Image, look: ClassLook, width: int, height: int, rng: np.random.Generator) -> None:
    scale = min(width, height)
    radius = rng.uniform(0.2, 0.38) * scale
    cx = rng.uniform(radius, width - radius)
    cy = rng.uniform(radius, height - radius)
    angle = rng.uniform(0, 2 * math.pi)
    hue = (look.hue + rng.uniform(-0.03, 0.03)) % 1.0
    rgb = colorsys.hsv_to_rgb(hue, rng.uniform(0.65, 1.0), rng.uniform(0.7, 1.0))
    colour = tuple(int(255 * v) for v in rgb)

    mask = Image.new("L", (width, height), 0)
    pen = ImageDraw.Draw(mask)
    box = [cx - radius, cy - radius, cx + radius, cy + radius]
    if look.shape == "circle":
        pen.ellipse(box, fill=255)
    elif look.shape == "ring":
        pen.ellipse(box, fill=255)
        inner = radius * 0.55
        pen.ellipse([cx - inner, cy - inner, cx + inner, cy + inner], fill=0)
    elif look.shape == "cross":
        arm = radius * 0.3
        for a in (angle, angle + math.pi / 2):
            dx, dy = math.cos(a), math.sin(a)
            nx, ny = -dy * arm, dx * arm
            pen.polygon(
                [(cx - dx * radius + nx, cy - dy * radius + ny), (cx + dx * radius + nx, cy + dy * radius + ny),
                 (cx + dx * radius - nx, cy + dy * radius - ny), (cx - dx * radius - nx, cy - dy * radius - ny)],
                fill=255,
            )
    else:
        pen.polygon(_polygon(look.shape, cx, cy, radius, angle), fill=255)

    fill = Image.new("RGB", (width, height), colour)
    if look.texture != "solid":
        dark = tuple(int(v * 0.35) for v in colour)
        paint = ImageDraw.Draw(fill)
        step = max(3, int(radius / 4))
        if look.texture == "stripes":
            for x in range(-height, width, step * 2):
                paint.polygon([(x, 0), (x + step, 0), (x + step + height, height), (x + height, height)], fill=dark)
        else:
            dot = step / 3
            for y in range(0, height, step):
                for x in range(0, width, step):
                    paint.ellipse([x - dot, y - dot, x + dot, y + dot], fill=dark)
    image.paste(fill, (0, 0), mask)


def _polygon(shape: str, cx: float, cy: float, radius: float, angle: float) -> list[tuple[float, float]]:
    corners = {"square": 4, "triangle": 3, "diamond": 4, "hexagon": 6, "star": 10}[shape]
    points = []
    for k in range(corners):
        a = angle + 2 * math.pi * k / corners
        r = radius
        if shape == "star" and k % 2:
            r = radius * 0.45
        elif shape == "diamond":
            r = radius if k % 2 == 0 else radius * 0.55
        points.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return points


def image_rng(seed: int, *key: int) -> np.random.Generator:
    """The generator of one image, keyed so that each image is independent of the others."""
    return np.random.default_rng([seed, *key])


def save_jpeg(image: Image.Image, path: Path, quality: int) -> None:
    """Write ``image`` as a JPEG, making its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="JPEG", quality=quality)
