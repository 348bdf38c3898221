"""CAM figures with PIL alone: heat-map overlays with GT (green) and predicted (red) boxes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["colorize", "overlay", "draw_boxes", "cam_grid"]

GT_COLOUR = (40, 220, 60)
PRED_COLOUR = (235, 40, 40)


def colorize(cam: np.ndarray) -> np.ndarray:
    """Map a [0, 1] map to RGB uint8 with a blue-cyan-yellow-red ramp (jet-like)."""
    v = np.clip(np.asarray(cam, dtype=np.float64), 0.0, 1.0)
    r = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return (np.stack([r, g, b], axis=-1) * 255).astype(np.uint8)


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the coloured map over an (H, W, 3) uint8 image of the same size."""
    heat = colorize(cam).astype(np.float64)
    return (image.astype(np.float64) * (1 - alpha) + heat * alpha).round().astype(np.uint8)


def draw_boxes(image: Image.Image, boxes: Sequence[Sequence[float]], colour, width: int = 2) -> Image.Image:
    """Draw inclusive-corner boxes ``(x0, y0, x1, y1)`` on a copy of ``image``."""
    out = image.copy()
    pen = ImageDraw.Draw(out)
    for x0, y0, x1, y1 in boxes:
        pen.rectangle([x0, y0, x1, y1], outline=colour, width=width)
    return out


def cam_grid(rows: Sequence[dict], columns: Sequence[str], path: str | Path, scale: int = 2) -> Path:
    """Write a PNG grid: one row per image, first column the image with its GT boxes,
    then one column per model with the CAM overlay, GT boxes and the predicted box.

    Each row is ``{"image": (H, W, 3) uint8, "gt": [[x0, y0, x1, y1], ...],
    "cams": [(cam (H, W), pred_box or None), ...]}`` with one CAM per entry of
    ``columns[1:]``; ``columns`` are the column titles.
    """
    font = ImageFont.load_default()
    h, w = rows[0]["image"].shape[:2]
    cell_w, cell_h = w * scale, h * scale
    title_h = 16
    sheet = Image.new("RGB", (cell_w * len(columns), title_h + cell_h * len(rows)), "white")
    pen = ImageDraw.Draw(sheet)
    for c, title in enumerate(columns):
        pen.text((c * cell_w + 4, 2), title, fill="black", font=font)
    for r, row in enumerate(rows):
        tiles = [(row["image"], None)] + [(overlay(row["image"], cam), box) for cam, box in row["cams"]]
        for c, (pixels, box) in enumerate(tiles):
            tile = Image.fromarray(pixels).resize((cell_w, cell_h), Image.NEAREST)
            gt = [[v * scale for v in b] for b in row["gt"]]
            tile = draw_boxes(tile, gt, GT_COLOUR)
            if box is not None:
                tile = draw_boxes(tile, [[v * scale for v in box]], PRED_COLOUR)
            sheet.paste(tile, (c * cell_w, title_h + r * cell_h))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
