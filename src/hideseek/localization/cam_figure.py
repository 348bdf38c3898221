"""CAM figures of real photos with an ImageNet-pretrained CAM network (offline).

For every photo, :func:`cam_figures` writes a PNG: the photo, then one panel per top-k
predicted ImageNet class with its class activation map over the photo and the box of the
largest connected region of the map at ``threshold`` (the V1 box rule of the public WSOL
benchmark), titled with the class name and its softmax probability.

The photo is resized as a whole (no crop) to ``size`` x ``size`` for the network, as in
WSOL evaluation; the maps are upsampled back to the photo's own resolution.

With several CAM methods (:func:`cam_figures` ``method=[...]``) each photo's figure is a grid:
one row per top-k class, the photo then one panel per method (the classes are the network's,
the same for every method), and ``cam-methods.png`` puts the top-1 rows of all photos on one
sheet, each photo scaled to one height: the side-by-side view of CAM methods on real photos.
"""

from __future__ import annotations

import time
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
from hideseek.inputs import check_writable, check_writable_dir
from hideseek.localization.boxes import boxes_at_thresholds
from hideseek.localization.figures import PRED_COLOUR, draw_boxes, overlay

__all__ = ["SHEET_NAME", "cam_figures", "explain", "load_photo", "render", "render_methods", "to_input"]

SHEET_NAME = "cam-methods.png"  # the all-photos sheet of a several-method run

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
        panels.append((f"{p['name']}  {100 * p['probability']:.1f}%", _tile(image, p, None)))
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


def _tile(image: np.ndarray, prediction: dict, height: int | None) -> Image.Image:
    """The map over the photo with its box, scaled to ``height`` pixels (None: the photo's)."""
    h, w = image.shape[:2]
    tile = Image.fromarray(overlay(image, prediction["cam"], alpha=0.5))
    tile = draw_boxes(tile, [prediction["box"]], PRED_COLOUR, width=max(2, round(min(h, w) / 120)))
    if height is not None and height != h:
        tile = tile.resize((max(1, round(w * height / h)), height), Image.BILINEAR)
    return tile


def _methods_note(threshold: float) -> str:
    return (f"maps of the class in each row's first panel, min-max normalised; red box: largest region at "
            f"threshold {threshold:g}")


def render_methods(image: np.ndarray, per_method: dict[str, Sequence[dict]], threshold: float,
                   path: str | Path | None, rows: int | None = None, height: int | None = None,
                   footnote: bool = True) -> Image.Image:
    """A grid of one photo: a row per class (the first ``rows`` of the top-k), the photo then a
    panel per CAM method (``per_method``: method -> :func:`explain`'s predictions, same classes
    in the same order), titled with the method, the class and its probability in the first
    panel; scaled to ``height`` pixels per row; the footnote says what the maps and boxes are.
    Written to ``path`` when given."""
    methods = list(per_method)
    k = len(per_method[methods[0]]) if rows is None else rows
    photo = Image.fromarray(image)
    if height is not None and height != image.shape[0]:
        photo = photo.resize((max(1, round(image.shape[1] * height / image.shape[0])), height), Image.BILINEAR)
    w, h = photo.size
    font, small = _font(14), _font(11)
    foot_h = 16 if footnote else 0
    sheet = Image.new("RGB", ((1 + len(methods)) * w + len(methods) * _GAP,
                              k * (_TITLE_H + h) + foot_h), "white")
    pen = ImageDraw.Draw(sheet)
    for r in range(k):
        first = per_method[methods[0]][r]
        y0 = r * (_TITLE_H + h)
        title = f"{first['name']}  {100 * first['probability']:.1f}%"
        pen.text((3, y0 + 3), _fit(title, pen, font, w - 6), fill="black", font=font)
        sheet.paste(photo, (0, y0 + _TITLE_H))
        for i, method in enumerate(methods, start=1):
            x0 = i * (w + _GAP)
            pen.text((x0 + 3, y0 + 3), _fit(method, pen, font, w - 6), fill="black", font=font)
            sheet.paste(_tile(image, per_method[method][r], height), (x0, y0 + _TITLE_H))
    if footnote:
        pen.text((3, k * (_TITLE_H + h) + 2), _fit(_methods_note(threshold), pen, small, sheet.width - 6),
                 fill=(90, 90, 90), font=small)
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        sheet.save(path)
    return sheet


def _stack(sheets: Sequence[Image.Image], note: str, path: Path) -> Path:
    """Sheets one under another (left-aligned, white between) over one footnote, written
    through a rename."""
    width = max(s.width for s in sheets)
    foot_h = 16
    out = Image.new("RGB", (width, sum(s.height + _GAP for s in sheets) + foot_h), "white")
    y = 0
    for s in sheets:
        out.paste(s, (0, y))
        y += s.height + _GAP
    pen = ImageDraw.Draw(out)
    small = _font(11)
    pen.text((3, y + 2), _fit(note, pen, small, width - 6), fill=(90, 90, 90), font=small)
    fmt = Image.registered_extensions()[path.suffix.lower()]
    tmp = path.with_name(f".{path.name}.tmp")
    out.save(tmp, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    tmp.replace(path)
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
    method: str | Sequence[str] = "cam",
    sheet: str | Path | None = None,
    sheet_height: int = 192,
) -> list[dict]:
    """Write one CAM figure ``<output_dir>/<image stem>.png`` per photo.

    The network is :func:`~hideseek.cam.pretrained.camnet_from_imagenet`
    (``backbone``, ``pretrained_file``) unless ``net`` is given. Returns, per photo,
    ``{"image": str, "figure": str, "predictions": [{"index", "name", "probability",
    "box"}, ...], "seconds": {method: s}}`` with the top-k classes, best first (with several
    methods ``predictions`` is ``{method: [...]}``). ``method``: the CAM method, or a list of
    them: then each figure is a :func:`render_methods` grid and ``sheet`` (default
    ``<output_dir>/cam-methods.png``; a ``.jpg`` name writes JPEG, quality 90) holds the top-1 row
    of every photo at ``sheet_height`` pixels. ``seconds``: wall time of each method's call on
    the photo (the network's forward included).
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
    methods = [method] if isinstance(method, str) else list(method)
    if not methods:
        raise ValueError("no CAM method given")
    if len(set(methods)) != len(methods):
        raise ValueError(f"CAM methods repeat: {methods}")
    for name in methods:
        get_cam_method(name)  # an unknown name fails before the model is loaded
    if isinstance(sheet_height, bool) or not isinstance(sheet_height, int) or sheet_height < 16:
        raise ValueError(f"sheet height {sheet_height!r}: expected an integer >= 16 (pixels)")
    sheet_path = Path(output_dir) / SHEET_NAME if sheet is None else Path(sheet)
    if len(methods) > 1:
        if sheet_path.suffix.lower() not in Image.registered_extensions():
            raise ValueError(f"{sheet_path}: expected an image file name (.png, .jpg, ...) for the sheet")
        check_writable(sheet_path, "sheet")
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
    results: list[dict] = []
    sheets: list[Image.Image] = []
    for path, photo in zip(paths, photos):
        stem = path.stem
        used[stem] = used.get(stem, 0) + 1
        if used[stem] > 1:
            stem = f"{stem}-{used[stem]}"
        per_method, seconds = {}, {}
        for name in methods:
            start = time.perf_counter()
            per_method[name] = explain(net, photo, names, topk=topk, threshold=threshold, size=size, method=name)
            seconds[name] = time.perf_counter() - start
        figure = output_dir / f"{stem}.png"
        if len(methods) == 1:
            render(photo, per_method[methods[0]], threshold, figure, methods[0])
            predictions = [{k: v for k, v in p.items() if k != "cam"} for p in per_method[methods[0]]]
        else:
            render_methods(photo, per_method, threshold, figure)
            sheets.append(render_methods(photo, per_method, threshold, None, rows=1, height=sheet_height,
                                         footnote=False))
            predictions = {m: [{k: v for k, v in p.items() if k != "cam"} for p in ps] for m, ps in per_method.items()}
        results.append(dict(image=str(path), figure=str(figure), predictions=predictions, seconds=seconds))
    if sheets:
        _stack(sheets, _methods_note(threshold), sheet_path)
    return results
