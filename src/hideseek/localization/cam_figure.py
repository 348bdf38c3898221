"""CAM figures of real photos with an ImageNet-pretrained CAM network (offline).

For every photo, :func:`cam_figures` writes a PNG: the photo, then one panel per top-k
predicted ImageNet class with its class activation map over the photo and the box of the
largest connected region of the map at ``threshold`` (the V1 box rule of the public WSOL
benchmark), titled with the class name and its softmax probability.

The photo is resized as a whole (no crop) to ``size`` x ``size`` for the network, as in
WSOL evaluation; the maps are upsampled back to the photo's own resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from hideseek.cam.methods import get_cam_method
from hideseek.cam.model import CAMNet
from hideseek.cam.pretrained import (
    LITE0_BACKBONE,
    camnet_from_imagenet,
    imagenet_class_names,
)
from hideseek.inputs import check_writable_dir
from hideseek.localization.boxes import boxes_at_thresholds
from hideseek.localization.figures import PRED_COLOUR, draw_boxes, overlay

__all__ = ["cam_figures", "explain", "load_photo", "render", "to_input"]

_TITLE_H = 22
_GAP = 6


def load_photo(path: str | Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB, with its EXIF orientation applied."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image not found")
    try:
        with Image.open(path) as img:
            return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    except (UnidentifiedImageError, Image.DecompressionBombError) as error:
        raise ValueError(f"{path}: not an image file Pillow can read ({type(error).__name__})") from None
    except OSError as error:  # truncated or damaged image data
        raise ValueError(f"{path}: cannot decode the image ({error})") from None


def to_input(image: np.ndarray, size: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(1, 3, size, size) normalised float tensor of a uint8 RGB photo (bicubic resize)."""
    resized = Image.fromarray(image).resize((size, size), Image.BICUBIC)
    x = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean_t = torch.tensor(mean, dtype=torch.float32)[:, None, None]
    std_t = torch.tensor(std, dtype=torch.float32)[:, None, None]
    return ((x - mean_t) / std_t)[None]


def explain(
    net: CAMNet,
    image: np.ndarray,
    names: Sequence[str],
    topk: int = 1,
    threshold: float = 0.2,
    size: int = 224,
    method: str = "cam",
) -> list[dict]:
    """Top-k classes of one photo with their CAMs (photo resolution) and boxes.

    ``method`` names the CAM method (:mod:`hideseek.cam.methods`; ``"cam"``: vanilla CAM).

    Each entry: ``{"index", "name", "probability", "cam" (H, W) float32 in [0, 1],
    "box" [x0, y0, x1, y1] inclusive pixel corners}``.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    if topk < 1:
        raise ValueError(f"topk must be >= 1, got {topk}")
    mean = net.pretrained_cfg.get("mean", (0.485, 0.456, 0.406))
    std = net.pretrained_cfg.get("std", (0.229, 0.224, 0.225))
    device = net.classifier.weight.device
    x = to_input(image, size, mean, std).to(device)
    maps, classes, logits = net.cams(x, topk=topk, size=image.shape[:2], method=method)
    probs = logits.float().softmax(dim=1)[0]
    out = []
    for k, c in enumerate(classes[0].tolist()):
        cam = maps[0, k].cpu().numpy().astype(np.float32)
        box = boxes_at_thresholds(cam, [threshold], multi_contour=False)[0][0]
        out.append(
            dict(index=c, name=names[c], probability=float(probs[c]), cam=cam, box=[int(v) for v in box])
        )
    return out


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def _fit(text: str, pen: ImageDraw.ImageDraw, font, width: int) -> str:
    if pen.textlength(text, font=font) <= width:
        return text
    while text and pen.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def render(image: np.ndarray, predictions: Sequence[dict], threshold: float, path: str | Path,
           method: str = "cam") -> Path:
    """Write the figure: the photo, then per prediction its CAM overlay and box, titled; the
    footnote names the CAM method (``"cam"``: vanilla CAM)."""
    h, w = image.shape[:2]
    panels = [("photo", Image.fromarray(image))]
    for p in predictions:
        tile = Image.fromarray(overlay(image, p["cam"], alpha=0.5))
        tile = draw_boxes(tile, [p["box"]], PRED_COLOUR, width=max(2, round(min(h, w) / 120)))
        panels.append((f"{p['name']}  {100 * p['probability']:.1f}%", tile))
    font = _font(14)
    small = _font(11)
    foot_h = 16
    sheet = Image.new("RGB", (len(panels) * w + (len(panels) - 1) * _GAP, _TITLE_H + h + foot_h), "white")
    pen = ImageDraw.Draw(sheet)
    for i, (title, tile) in enumerate(panels):
        x0 = i * (w + _GAP)
        pen.text((x0 + 3, 3), _fit(title, pen, font, w - 6), fill="black", font=font)
        sheet.paste(tile, (x0, _TITLE_H))
    maps = "CAM" if method == "cam" else f"{method} map"
    note = f"{maps} (min-max normalised); red box: largest region at threshold {threshold:g}"
    pen.text((3, _TITLE_H + h + 2), _fit(note, pen, small, sheet.width - 6), fill=(90, 90, 90), font=small)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def cam_figures(
    image_paths: Sequence[str | Path],
    output_dir: str | Path,
    backbone: str = LITE0_BACKBONE,
    pretrained_file: str | Path | None = None,
    topk: int = 1,
    threshold: float = 0.2,
    size: int = 224,
    device: str | torch.device | None = None,
    net: CAMNet | None = None,
    method: str = "cam",
) -> list[dict]:
    """Write one CAM figure ``<output_dir>/<image stem>.png`` per photo.

    The network is :func:`~hideseek.cam.pretrained.camnet_from_imagenet`
    (``backbone``, ``pretrained_file``) unless ``net`` is given. Returns, per photo,
    ``{"image": str, "figure": str, "predictions": [{"index", "name", "probability",
    "box"}, ...]}`` with the top-k classes, best first. ``method``: the CAM method.
    """
    paths = [Path(p) for p in image_paths]
    if not paths:
        raise ValueError("no images given")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size {size!r}: expected an integer >= 1 (pixels)")
    if topk < 1:
        raise ValueError(f"topk {topk!r}: expected an integer >= 1")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold {threshold!r}: expected a number in [0, 1]")
    get_cam_method(method)  # an unknown name fails before the model is loaded
    photos = [load_photo(p) for p in paths]  # fail on a missing file before loading the model
    if net is None:
        net = camnet_from_imagenet(backbone, pretrained_file)
    net.eval()
    if device is not None:
        net.to(device)
    names = imagenet_class_names(net.num_classes)
    if topk > net.num_classes:
        raise ValueError(f"topk {topk}: the network has {net.num_classes} classes")
    output_dir = check_writable_dir(output_dir, "output folder")
    used: dict[str, int] = {}
    results = []
    for path, photo in zip(paths, photos):
        stem = path.stem
        used[stem] = used.get(stem, 0) + 1
        if used[stem] > 1:
            stem = f"{stem}-{used[stem]}"
        predictions = explain(net, photo, names, topk=topk, threshold=threshold, size=size, method=method)
        figure = render(photo, predictions, threshold, output_dir / f"{stem}.png", method)
        results.append(
            dict(
                image=str(path),
                figure=str(figure),
                predictions=[{k: v for k, v in p.items() if k != "cam"} for p in predictions],
            )
        )
    return results
