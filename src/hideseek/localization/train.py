"""Train and evaluate CAM models: the WSOL task of ``hideseek loc train`` and ``loc evaluate``.

A run is described by one :class:`LocConfig` (saved in the checkpoint, so evaluating a
checkpoint needs nothing else); :class:`LocTask` supplies what the shared run lifecycle
(:mod:`hideseek.engine.lifecycle`) needs. Training hides on the normalised batch (fill 0 =
dataset mean) with the augmentation named in the registry, keyed by each image's index in
the training split, so the hidden cells depend only on ``(seed, epoch, index)``.

Evaluation computes, per image, the CAM of the GT class (for GT-known Loc, MaxBoxAcc and
PxAP) and the top-5 classes (Top-1/Top-5 Cls and Loc), upsampled to the evaluated image
size and min-max normalised; GT boxes are rescaled to that size by truncation, exactly as
the public WSOL benchmark does for its 224 x 224 maps.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from hideseek import engine
from hideseek.cam.maps import nearest_indices
from hideseek.cam.model import CAMNet
from hideseek.cam.recipe import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageRunConfig,
    build_batch_augmentation,
    build_image_model,
    build_optimizer,
    build_scheduler,
    image_transforms,
)
from hideseek.engine.lifecycle import Task, TrainParts, evaluate_run, write_record
from hideseek.localization.choices import BENCHMARK_BACKBONES, DATASETS, is_benchmark_network
from hideseek.localization.data.dataset import SyntheticWSOL, WSOLDataset, collate_wsol
from hideseek.localization.data.synthetic import SyntheticConfig
from hideseek.localization.evaluate import resize_box
from hideseek.localization.metrics import (
    BoxAccuracy,
    Calibrated,
    ClassificationAccuracy,
    Oracle,
    PixelAP,
    ThresholdPolicy,
    cam_thresholds,
)
from hideseek.localization.wsol_methods import get_wsol_method, wsol_step

__all__ = [
    "DATASETS",
    "LocConfig",
    "LocTask",
    "evaluate_benchmark_checkpoint",
    "evaluate_checkpoint",
    "evaluate_model",
    "load_run",
    "open_splits",
    "train",
    "transforms",
]


@dataclass
class LocConfig(ImageRunConfig):
    """Everything that defines a localization run (the shared fields are
    :class:`~hideseek.cam.recipe.ImageRunConfig`'s).

    ``dataset`` is ``"synthetic"`` (the embedded benchmark, ``synthetic`` holds
    :class:`SyntheticConfig` overrides) or ``"wsol"`` (the public WSOL benchmark's layout:
    ``metadata_root/<split>/`` metadata with image ids relative to ``data_root``).
    ``mean``/``std`` default to the dataset's own pixel statistics for the synthetic
    benchmark and to ImageNet's for real data. ``eval_splits`` are scored after training
    (test under the oracle and, when val is scored, under the val-calibrated thresholds).
    ``wsol_method`` is one of the public benchmark's methods
    (:mod:`hideseek.localization.wsol_methods`) with ``method_params`` under the benchmark's
    names; ``mask_root`` holds the masks of mask splits (OpenImages: PxAP); ``backbone`` any
    timm model, or one of the benchmark's own networks
    (``wsol_vgg16``, ``wsol_resnet50``, ``wsol_inception_v3``), which ACoL, SPG and ADL need.
    """

    DATASETS: ClassVar[tuple[str, ...]] = DATASETS

    metadata_root: str | None = None
    synthetic: dict = field(default_factory=dict)
    cam_curve_interval: float = 0.01
    iou_thresholds: tuple[int, ...] = (30, 50, 70)
    eval_splits: tuple[str, ...] = ("val", "test")
    wsol_method: str = "cam"
    method_params: dict = field(default_factory=dict)
    mask_root: str | None = None

    def __post_init__(self):
        if is_benchmark_network(self.backbone):
            import hideseek.localization.benchmark.factory  # noqa: F401  (registers the networks with timm)
        super().__post_init__()
        method = get_wsol_method(self.wsol_method)
        method.resolve(self.method_params)  # unknown parameter names fail before any data is read
        if method.needs_benchmark_network and not is_benchmark_network(self.backbone):
            raise ValueError(f"wsol method {method.name!r} changes the network: it is defined on the public WSOL "
                             f"benchmark's networks ({', '.join(BENCHMARK_BACKBONES)}), not on {self.backbone!r}")
        if self.dataset == "wsol" and not (self.data_root and self.metadata_root):
            raise ValueError("dataset 'wsol' needs data_root (images) and metadata_root (<split>/ folders)")
        self.eval_splits = tuple(self.eval_splits)

    _tuple_fields = ("mean", "std", "iou_thresholds", "eval_splits")


# --------------------------------------------------------------------------- data


def transforms(config: LocConfig, train: bool, normalize: bool = True):
    """The image-run recipe's transforms (:func:`hideseek.cam.recipe.image_transforms`)."""
    return image_transforms(config, train, normalize)


def open_splits(config: LocConfig, splits: Sequence[str] = ("train", "val", "test"), progress: bool = True,
                normalize_train: bool = True) -> dict:
    """``{split: dataset}``, ``"masks"``: ``{split: mask dataset}`` where masks exist, and
    ``"config"``: ``config`` with its normalisation resolved (see :class:`LocConfig`).
    ``normalize_train=False``: the train split yields uint8 images, for a training step that
    normalises the batch (:func:`hideseek.cam.recipe.batch_images`)."""
    out: dict = {"masks": {}}
    if config.dataset == "synthetic":
        bench = SyntheticWSOL(SyntheticConfig.from_dict(config.synthetic), progress=progress)
        if config.mean is None or config.std is None:
            mean, std = bench.pixel_stats()
            config = dataclasses.replace(config, mean=mean, std=std)
        for split in splits:
            normalize = normalize_train or split != "train"
            out[split] = bench.open(split, transforms(config, split == "train", normalize), cache=config.cache_images)
            if split != "train":
                out["masks"][split] = bench.open(split, None, masks=True)
        out["config"] = config
        return out
    if config.mean is None or config.std is None:
        config = dataclasses.replace(config, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    root, meta = Path(config.data_root), Path(config.metadata_root)
    for split in splits:
        if not (meta / split).is_dir():
            raise FileNotFoundError(f"{meta / split}: metadata folder of split {split!r} not found")
        normalize = normalize_train or split != "train"
        out[split] = WSOLDataset(root, meta / split, transforms(config, split == "train", normalize),
                                 cache=config.cache_images)
        if config.mask_root and split != "train" and out[split].metadata.localization_type == "masks":
            out["masks"][split] = WSOLDataset(root, meta / split, None, mask_root=config.mask_root)
    out["config"] = config
    return out


# --------------------------------------------------------------------------- model


def build_model(config: LocConfig, num_classes: int) -> tuple[torch.nn.Module, torch.nn.Module | None]:
    """The run's network and batch augmentation: a :class:`CAMNet` on a timm backbone (the image-run
    recipe), or the benchmark's own network for its method."""
    if not is_benchmark_network(config.backbone):
        return build_image_model(config, num_classes)
    from hideseek.localization.benchmark import benchmark_model

    method = get_wsol_method(config.wsol_method)
    model = benchmark_model(config.backbone.removeprefix("wsol_"), method.name, num_classes=num_classes,
                            large_feature_map=config.large_feature_map, pretrained_file=config.pretrained_file,
                            **method.resolve(config.method_params))
    return model, None if config.augmentation == "none" else build_batch_augmentation(config)


# --------------------------------------------------------------------------- evaluation


class _COCOCollector:
    """COCO GT and results, built image by image, for COCOeval box (and mask) AP.

    GT: every GT box of an image (resized to the evaluated size, inclusive corners ->
    ``[x, y, w, h]`` with ``w = x1 - x0 + 1``) under its class; with a mask dataset and
    one box per image the annotation also carries the object mask (RLE). Results: for the
    top-1 predicted class, the largest CAM region at ``threshold`` (box and mask), scored by
    the class probability times the region's mean CAM.
    """

    def __init__(self, threshold: float, size: int, num_classes: int, with_masks: bool):
        self.threshold, self.size, self.with_masks = threshold, size, with_masks
        self.images, self.annotations = [], []
        self.results: dict[str, list] = {"bbox": [], "segm": []}
        self.categories = [{"id": c, "name": str(c)} for c in range(num_classes)]

    def add(self, index: int, label: int, boxes: np.ndarray, mask: np.ndarray | None, cam: np.ndarray,
            category: int, probability: float) -> None:
        from hideseek.localization.coco import cams_to_results, encode_mask

        self.images.append({"id": index, "width": self.size, "height": self.size})
        for x0, y0, x1, y1 in boxes.tolist():
            ann = {"id": len(self.annotations) + 1, "image_id": index, "category_id": label,
                   "bbox": [x0, y0, x1 - x0 + 1, y1 - y0 + 1], "iscrowd": 0}
            if self.with_masks and mask is not None and len(boxes) == 1:
                ann["segmentation"] = encode_mask((mask == 1).astype(np.uint8))
            self.annotations.append(ann)
        kinds = ("bbox", "segm") if self.with_masks else ("bbox",)
        found = cams_to_results({index: {category: cam}}, self.threshold, iou_type=kinds,
                                class_scores={index: {category: probability}})
        for kind in kinds:
            self.results[kind].extend(found[kind])

    def compute(self) -> dict:
        from hideseek.localization.coco import coco_ap, coco_from_dict

        gt = coco_from_dict({"images": self.images, "annotations": self.annotations,
                             "categories": self.categories}, "<evaluated split>")
        out = {"coco_threshold": self.threshold}
        for kind, label in (("bbox", "box"), ("segm", "mask")):
            if kind == "segm" and not self.with_masks:
                continue
            stats = coco_ap(gt, self.results[kind], kind)
            for name in ("AP", "AP50", "AP75"):
                out[f"COCO {label} {name}"] = stats[name]
        return out


class _Scorer:
    """Per-batch CAMs -> BoxAccuracy, classification, PixelAP and (optionally) COCO updates."""

    def __init__(self, config: LocConfig, dataset: WSOLDataset, masks: WSOLDataset | None,
                 scoremap_dir: Path | None, coco_threshold: float | None = None, num_classes: int = 0):
        thresholds = cam_thresholds(config.cam_curve_interval)
        self.cam_method = config.cam_method
        self.size = config.crop_size
        self.dataset, self.masks = dataset, masks
        # a mask split (OpenImages) has no boxes: PxAP and classification only
        has_boxes = dataset.metadata.localization_type != "masks"
        self.boxes = BoxAccuracy(thresholds, config.iou_thresholds) if has_boxes else None
        self.classification = ClassificationAccuracy((1, 5))
        self.pxap = PixelAP(thresholds) if masks is not None else None
        self.scoremap_dir = scoremap_dir
        self.coco = (_COCOCollector(coco_threshold, self.size, num_classes, masks is not None)
                     if coco_threshold is not None else None)

    def _gt_boxes(self, index: int) -> np.ndarray:
        meta = self.dataset.metadata
        image_id = meta.image_ids[index]
        return np.array([resize_box(b, meta.image_sizes[image_id], self.size) for b in meta.boxes[image_id]],
                        dtype=np.int64)

    def _gt_mask(self, index: int) -> np.ndarray:
        mask, ignore = self.masks.masks(index)
        rows, cols = nearest_indices(mask.shape[0], self.size), nearest_indices(mask.shape[1], self.size)
        mask, ignore = mask[rows][:, cols], ignore[rows][:, cols] & ~mask[rows][:, cols]
        return mask.astype(np.uint8) + 255 * ignore.astype(np.uint8)

    def _classes(self, labels: torch.Tensor):
        """The GT class, and with COCO also the top-1 predicted class, chosen from the logits."""
        if self.coco is None:
            return labels[:, None]
        return lambda logits: torch.stack([labels, logits.float().argmax(dim=1)], dim=1)

    def __call__(self, model: CAMNet, batch: dict) -> None:
        images, labels = batch["image"], batch["label"]
        maps, _, logits = model.cams(images, self._classes(labels), method=self.cam_method)
        logits = logits.float()
        top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
        maps = maps.double().cpu().numpy()
        gt_maps = maps[:, 0]
        indices = batch["index"].tolist()
        top5, labels = top5.cpu(), labels.cpu()
        self.classification.update(top5, labels)
        gt_boxes = None
        if self.boxes is not None:
            gt_boxes = [self._gt_boxes(i) for i in indices]
            self.boxes.update(gt_maps, gt_boxes, top5, labels)
        gt_masks = None
        if self.pxap is not None:
            gt_masks = np.stack([self._gt_mask(i) for i in indices])
            self.pxap.update(gt_maps, gt_masks)
        if self.coco is not None and gt_boxes is not None:
            probabilities = logits.softmax(dim=1).cpu()
            for j, index in enumerate(indices):
                top1 = int(top5[j, 0])
                self.coco.add(index, int(labels[j]), gt_boxes[j], None if gt_masks is None else gt_masks[j],
                              maps[j, 1], top1, float(probabilities[j, top1]))
        if self.scoremap_dir is not None:
            for index, scoremap in zip(indices, gt_maps):
                path = self.scoremap_dir / f"{self.dataset.image_ids[index]}.npy"
                path.parent.mkdir(parents=True, exist_ok=True)
                np.save(path, scoremap)

    def sync(self) -> None:
        for metric in (self.boxes, self.classification, self.pxap):
            if metric is not None:
                metric.sync()

    def compute(self, policy: ThresholdPolicy) -> dict:
        result = self.boxes.compute(policy) if self.boxes is not None else {"policy": policy.describe()}
        curves = result.pop("curves", {})
        result.update(self.classification.compute())
        if self.pxap is not None:
            pixels = self.pxap.compute()
            curves.update(pixels.pop("curves"))
            result.update(pixels)
        if curves:  # BoxAcc(tau) and the PxAP PR curve side by side, after the numbers
            result["curves"] = curves
        return result


def evaluate_model(model: CAMNet, config: LocConfig, dataset: WSOLDataset, *, ctx: engine.RunContext,
                   masks: WSOLDataset | None = None, policies: Sequence[ThresholdPolicy] = (Oracle(),),
                   scoremap_dir: str | Path | None = None, progress: bool = True,
                   coco_threshold: float | None = None) -> list[dict]:
    """Score ``model`` on one split under each policy; returns one result dict per policy.

    With ``coco_threshold`` (single process only: COCO results are not gathered across
    ranks) every result also carries COCOeval box (and mask) AP, AP50, AP75 of the top-1
    class's largest CAM region at that threshold.
    """
    if coco_threshold is not None and ctx.distributed:
        coco_threshold = None
    scorer = _Scorer(config, dataset, masks, Path(scoremap_dir) if scoremap_dir else None, coco_threshold,
                     model.num_classes)
    # CAMs are evaluated in fp32 always: reduced precision would quantise the maps further
    # before the uint8 thresholding of the protocol
    stats = engine.evaluate(model, dataset, ctx=ctx, batch_size=config.batch_size, eval_fn=scorer,
                            amp=False, num_workers=config.num_workers, collate_fn=collate_wsol,
                            progress=progress)
    scorer.sync()
    results = []
    coco = scorer.coco.compute() if scorer.coco is not None else {}
    for policy in policies:
        result = scorer.compute(policy)
        result.update(coco)
        result["seconds"] = stats["seconds"]
        results.append(result)
    return results


def _record(config: LocConfig, run: str, split: str, result: dict, ctx, wall_time: float, records: Path | None) -> None:
    # a record is a table row: the curves (hundreds of numbers, thousands at the 0.001 grid) stay in the JSON
    write_record("loc", config, run=run, split=split,
                 metrics={k: v for k, v in result.items() if k not in ("policy", "curves")},
                 policy=result["policy"], ctx=ctx, wall_time=wall_time, records=records)


def evaluate_splits(model: CAMNet, config: LocConfig, data: dict, *, ctx, run: str, records: Path | None,
                    scoremap_dir: str | Path | None = None, progress: bool = True) -> dict:
    """val under the oracle, then test under the oracle and under the val-calibrated thresholds."""
    out = {}
    start = time.perf_counter()
    if "val" in data:
        (val,) = evaluate_model(model, config, data["val"], ctx=ctx, masks=data["masks"].get("val"), progress=progress)
        out["val"] = val
        _record(config, run, "val", val, ctx, time.perf_counter() - start, records)
    if "test" in data:
        calibrated = "val" in out and "loc_threshold" in out["val"]  # box thresholds to carry over
        policies = [Oracle()] + ([Calibrated.from_result(out["val"], source="val")] if calibrated else [])
        # COCO AP needs one threshold before the pass: the val-calibrated one (none without val)
        coco_tau = out["val"]["loc_threshold"] if calibrated else None
        tests = evaluate_model(model, config, data["test"], ctx=ctx, masks=data["masks"].get("test"),
                               policies=policies, scoremap_dir=scoremap_dir, progress=progress,
                               coco_threshold=coco_tau)
        out["test"] = tests[0]
        if len(tests) > 1:
            out["test_calibrated"] = tests[1]
        for result in tests:
            _record(config, run, "test", result, ctx, time.perf_counter() - start, records)
    return out


# --------------------------------------------------------------------------- the task


class LocTask(Task):
    """WSOL: single-label CAM training with cross-entropy, box and mask scoring."""

    name = "loc"
    config_class = LocConfig
    legacy_keys = ("num_classes",)
    collate = staticmethod(collate_wsol)

    def open_data(self, config: LocConfig, *, train: bool, evaluate: bool, progress: bool) -> dict:
        # training reads every split: the class count is the largest of them
        # the training step normalises uint8 batches (unless train is also scored)
        data = open_splits(config, ("train", "val", "test") if train else config.eval_splits, progress=progress,
                           normalize_train=not train or "train" in config.eval_splits)
        if train:
            data["fit"] = data["train"]
        return data

    def build(self, config: LocConfig, data: Mapping, ctx: engine.RunContext) -> TrainParts:
        num_classes = int(max(data[s].num_classes for s in ("train", "val", "test")))
        method = get_wsol_method(config.wsol_method)
        params = method.resolve(config.method_params)
        model, augmentation = build_model(config, num_classes)
        head = None
        if is_benchmark_network(config.backbone):
            from hideseek.localization.benchmark import head_parameters

            head = head_parameters(model)
        optimizer = build_optimizer(config, model, head)
        step = wsol_step(method, params, seed=config.seed, augmentation=augmentation, mean=config.mean, std=config.std)
        return TrainParts(model, optimizer, step, build_scheduler(config, optimizer, len(data["fit"]), ctx.world_size),
                          augmentation, extra={"num_classes": num_classes})

    def model_from_checkpoint(self, config: LocConfig, extra: Mapping) -> CAMNet:
        return build_model(config, int(extra["num_classes"]))[0]

    def evaluate(self, model, config, data, *, ctx, run, records, output_dir, extra, progress,
                 scoremap_dir: str | Path | None = None) -> dict:
        if self.channels_last and ctx.device.type in ("cuda", "cpu"):
            # the layout the Trainer trains and scores in: a checkpoint loads contiguous, and
            # oneDNN's convolutions round differently per layout (CAMs moved by ~4e-7, PxAP in
            # the 4th decimal), so re-scoring a run must use the training run's layout
            model.to(memory_format=torch.channels_last)
        scored = {"masks": data["masks"], **{split: data[split] for split in config.eval_splits if split in data}}
        return evaluate_splits(model, config, scored, ctx=ctx, run=run, records=records, scoremap_dir=scoremap_dir,
                               progress=progress)


TASK = LocTask()


train = TASK.train
load_run = TASK.load_run


def evaluate_checkpoint(checkpoint: str | Path, *, splits: Sequence[str] = ("val", "test"),
                        records: str | Path | None = None, scoremap_dir: str | Path | None = None,
                        device: str | None = None, progress: bool = True, cam_method: str | None = None) -> dict:
    """Evaluate a saved run on its own data; returns ``{split: result}`` like training does.

    ``cam_method`` scores another CAM method than the run's own (:mod:`hideseek.cam.methods`)."""
    return evaluate_run(TASK, checkpoint, overrides={"device": device, "eval_splits": tuple(splits),
                                                     "cam_method": cam_method},
                        records=records, progress=progress, scoremap_dir=scoremap_dir)


def evaluate_benchmark_checkpoint(checkpoint: str | Path, architecture: str, method: str, *, data_root: str,
                                  metadata_root: str, mask_root: str | None = None, large_feature_map: bool = False,
                                  num_classes: int | None = None, splits: Sequence[str] = ("test",),
                                  cam_curve_interval: float = 0.001, records: str | Path | None = None,
                                  scoremap_dir: str | Path | None = None, device: str = "auto",
                                  batch_size: int = 64, progress: bool = True,
                                  method_params: Mapping | None = None) -> dict:
    """Score a checkpoint written by the public WSOL benchmark's own code (``{'state_dict': ...}``,
    ``module.`` prefixes of DataParallel allowed) on a split of its metadata layout, as its
    evaluation does (224 x 224 inputs, ImageNet normalisation, its CAM and score maps).

    ``architecture`` / ``method`` / ``large_feature_map`` must be the run's (the strides are
    not in the state dict); ``num_classes`` defaults to the largest class label of the
    scored splits + 1. The weights load strictly into
    :func:`~hideseek.localization.benchmark.benchmark_model`.
    """
    from hideseek.localization.benchmark import benchmark_model

    checkpoint = Path(checkpoint)
    saved = engine.read_checkpoint(checkpoint)
    state = saved.get("state_dict", saved) if isinstance(saved, Mapping) else None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{checkpoint}: not a state dict nor a {{'state_dict': ...}} checkpoint of the benchmark")
    config = LocConfig(dataset="wsol", data_root=str(data_root), metadata_root=str(metadata_root),
                       mask_root=str(mask_root) if mask_root else None, backbone=f"wsol_{architecture}",
                       wsol_method=method, method_params=dict(method_params or {}),
                       large_feature_map=large_feature_map, crop_size=224, resize_size=224, batch_size=batch_size,
                       cam_curve_interval=cam_curve_interval, eval_splits=tuple(splits), device=device)
    ctx = engine.setup(config.device, config.seed)
    try:
        data = open_splits(config, config.eval_splits, progress=progress)
        config = data["config"]
        if num_classes is None:
            num_classes = int(max(data[s].num_classes for s in config.eval_splits))
        for split in config.eval_splits:  # a label the model cannot output would count as misclassified
            data[split].metadata.check_labels(num_classes)
        model = benchmark_model(architecture, method, num_classes=num_classes, large_feature_map=large_feature_map,
                                **get_wsol_method(method).resolve(config.method_params))
        state = engine.strip_wrapper_prefixes(state)
        expected = model.state_dict()
        missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
        if missing or unexpected or wrong:
            def some(keys: list[str]) -> str:
                return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")

            problems = [f"{what} {len(keys)} ({some(keys)})" for what, keys in
                        (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
            raise ValueError(f"{checkpoint}: does not fit the benchmark's {architecture} for {method} "
                             f"(num_classes {num_classes}): {'; '.join(problems)}")
        model.load_state_dict(state, strict=True)
        model.to(ctx.device)
        scored = {"masks": data["masks"], **{split: data[split] for split in config.eval_splits}}
        return evaluate_splits(model, config, scored, ctx=ctx, run=checkpoint.stem,
                               records=Path(records) if records else None, scoremap_dir=scoremap_dir,
                               progress=progress)
    finally:
        engine.teardown(ctx)
