"""Train and evaluate CAM models: what ``hideseek loc train`` and ``loc evaluate`` run.

A run is described by one :class:`LocConfig` (saved in the checkpoint, so evaluating a
checkpoint needs nothing else). Training hides on the normalised batch (fill 0 = dataset
mean) with the augmentation named in the registry, keyed by each image's index in the
training split, so the hidden cells depend only on ``(seed, epoch, index)``.

Evaluation computes, per image, the CAM of the GT class (for GT-known Loc, MaxBoxAcc and
PxAP) and the top-5 classes (Top-1/Top-5 Cls and Loc), upsampled to the evaluated image
size and min-max normalised; GT boxes are rescaled to that size by truncation, exactly as
the public WSOL benchmark does for its 224 x 224 maps.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from hideseek import engine
from hideseek.augment import available as available_augmentations
from hideseek.augment import create as create_augmentation
from hideseek.augment import insert_feature_hide, set_epoch, using_sample_ids
from hideseek.engine import ConfigDict
from hideseek.localization.cam import nearest_indices
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
from hideseek.localization.models import POOLS, CAMNet, backbone_error
from hideseek.results.records import append_record, make_record

__all__ = ["LocConfig", "build_model", "open_splits", "train", "evaluate_checkpoint", "evaluate_model"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DATASETS = ("synthetic", "wsol")
SCHEDULES = ("onecycle", "cosine", "step", "constant")


@dataclass
class LocConfig(ConfigDict):
    """Everything that defines a localization run.

    ``dataset`` is ``"synthetic"`` (the embedded benchmark, ``synthetic`` holds
    :class:`SyntheticConfig` overrides) or ``"wsol"`` (the public WSOL benchmark's layout:
    ``metadata_root/<split>/`` metadata with image ids relative to ``data_root``).
    ``mean``/``std`` default to the dataset's own pixel statistics for the synthetic
    benchmark and to ImageNet's for real data; either way Hide-and-Seek's fill 0 is the
    normalisation mean. The resolved values are stored with the run.
    """

    dataset: str = "synthetic"
    data_root: str | None = None
    metadata_root: str | None = None
    synthetic: dict = field(default_factory=dict)
    backbone: str = "resnet18"
    pool: str = "avg"
    feature_stage: int | None = None
    large_feature_map: bool = False
    pretrained_file: str | None = None
    augmentation: str = "none"
    aug_params: dict = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adamw"
    lr: float = 2e-3
    weight_decay: float = 1e-4
    schedule: str = "onecycle"
    lr_step: int = 30
    classifier_lr_ratio: float = 1.0
    resize_size: int = 96
    crop_size: int = 96
    hflip: bool = True
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    seed: int = 0
    num_workers: int = 0
    device: str = "auto"
    amp: bool = True
    cam_curve_interval: float = 0.01
    iou_thresholds: tuple[int, ...] = (30, 50, 70)

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; valid choices: {', '.join(DATASETS)}")
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"unknown optimizer {self.optimizer!r}; valid choices: sgd, adamw")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; valid choices: {', '.join(SCHEDULES)}")
        if self.dataset == "wsol" and not (self.data_root and self.metadata_root):
            raise ValueError("dataset 'wsol' needs data_root (images) and metadata_root (<split>/ folders)")
        # names are checked before any data is generated or read
        if not timm.is_model(self.backbone):
            raise backbone_error(self.backbone)
        if self.pool not in POOLS:
            raise ValueError(f"unknown pool {self.pool!r}; valid choices: {', '.join(POOLS)}")
        if self.augmentation not in available_augmentations():
            raise ValueError(
                f"unknown augmentation {self.augmentation!r}; available: {', '.join(available_augmentations())}"
            )

    _tuple_fields = ("mean", "std", "iou_thresholds")


# --------------------------------------------------------------------------- data


def transforms(config: LocConfig, train: bool) -> v2.Compose:
    """WSOL-benchmark style: train resize + random crop + flip, eval resize to the crop."""
    if config.mean is None or config.std is None:
        raise ValueError("normalisation is not resolved yet: open the data with open_splits() first")
    steps: list = [v2.ToImage()]
    if train:
        steps += [v2.Resize((config.resize_size, config.resize_size), antialias=True), v2.RandomCrop(config.crop_size)]
        if config.hflip:
            steps.append(v2.RandomHorizontalFlip())
    else:
        steps += [v2.Resize((config.crop_size, config.crop_size), antialias=True)]
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(config.mean, config.std)]
    return v2.Compose(steps)


def open_splits(config: LocConfig, splits: Sequence[str] = ("train", "val", "test"), progress: bool = True) -> dict:
    """``{split: dataset}``, ``"masks"``: ``{split: mask dataset}`` where masks exist, and
    ``"config"``: ``config`` with its normalisation resolved (see :class:`LocConfig`)."""
    out: dict = {"masks": {}}
    if config.dataset == "synthetic":
        bench = SyntheticWSOL(SyntheticConfig.from_dict(config.synthetic), progress=progress)
        if config.mean is None or config.std is None:
            mean, std = bench.pixel_stats()
            config = dataclasses.replace(config, mean=mean, std=std)
        for split in splits:
            out[split] = bench.open(split, transforms(config, split == "train"))
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
        out[split] = WSOLDataset(root, meta / split, transforms(config, split == "train"))
    out["config"] = config
    return out


def _open_main_first(config: LocConfig, splits: Sequence[str], ctx: engine.RunContext, progress: bool) -> dict:
    """Rank 0 opens (and, for the synthetic benchmark, generates) the data before the others."""
    data = open_splits(config, splits, progress=progress and ctx.is_main) if ctx.is_main else None
    engine.barrier()
    return data if data is not None else open_splits(config, splits, progress=False)


# --------------------------------------------------------------------------- model


def build_model(config: LocConfig, num_classes: int) -> tuple[CAMNet, torch.nn.Module | None]:
    """The CAM model and, for image augmentations, the batch augmentation module.

    ``feature-has`` goes inside the model: after the backbone submodule named by the
    ``after`` parameter (e.g. ``layer1``), or on the last feature maps when not given.
    """
    params = dict(config.aug_params)
    params.setdefault("seed", config.seed)
    augmentation = feature_hide = after = None
    if config.augmentation == "feature-has":
        after = params.pop("after", None)
        if after is None:
            feature_hide = create_augmentation("feature-has", **params)
    else:
        augmentation = create_augmentation(config.augmentation, **params)
        if augmentation.kind != "image":
            raise ValueError(f"augmentation {config.augmentation!r} is for {augmentation.kind} input, not image batches")
    model = CAMNet(config.backbone, num_classes, pool=config.pool, pretrained_file=config.pretrained_file,
                   large_feature_map=config.large_feature_map, feature_stage=config.feature_stage,
                   feature_hide=feature_hide)
    if after is not None:
        insert_feature_hide(model.backbone, after, **params)
    return model, augmentation


def _optimizer(config: LocConfig, model: CAMNet) -> torch.optim.Optimizer:
    """SGD (momentum 0.9) or AdamW; the classifier's lr is ``classifier_lr_ratio`` x ``lr``
    (the WSOL benchmark trains its new head 10x faster than the pretrained backbone)."""
    head = list(model.classifier.parameters())
    head_ids = {id(p) for p in head}
    groups = [{"params": [p for p in model.parameters() if id(p) not in head_ids], "lr": config.lr},
              {"params": head, "lr": config.lr * config.classifier_lr_ratio}]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)


def _scheduler(config: LocConfig, optimizer: torch.optim.Optimizer, samples: int, world_size: int):
    """Per-step LR schedule: one-cycle (peak = each group's lr), cosine decay, x0.1 every
    ``lr_step`` epochs (the WSOL benchmark's), or constant (None)."""
    if config.schedule == "constant":
        return None
    per_rank = math.ceil(samples / world_size)  # DistributedSampler pads to equal shards
    steps_per_epoch = math.ceil(per_rank / config.batch_size)
    total = config.epochs * steps_per_epoch
    if config.schedule == "onecycle":
        peaks = [group["lr"] for group in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peaks, total_steps=max(total, 1))
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(config.lr_step * steps_per_epoch, 1), gamma=0.1)
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total, 1))


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
        self.size = config.crop_size
        self.dataset, self.masks = dataset, masks
        self.boxes = BoxAccuracy(thresholds, config.iou_thresholds)
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

    def __call__(self, model: CAMNet, batch: dict) -> None:
        images, labels = batch["image"], batch["label"]
        features = model.features(images)
        logits = model.classifier(model.pool(features)).float()
        top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
        classes = torch.stack([labels, top5[:, 0]], dim=1) if self.coco is not None else labels[:, None]
        maps = model.maps(features, classes, tuple(images.shape[-2:])).double().cpu().numpy()
        gt_maps = maps[:, 0]
        indices = batch["index"].tolist()
        top5, labels = top5.cpu(), labels.cpu()
        gt_boxes = [self._gt_boxes(i) for i in indices]
        self.classification.update(top5, labels)
        self.boxes.update(gt_maps, gt_boxes, top5, labels)
        gt_masks = None
        if self.pxap is not None:
            gt_masks = np.stack([self._gt_mask(i) for i in indices])
            self.pxap.update(gt_maps, gt_masks)
        if self.coco is not None:
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
        result = self.boxes.compute(policy)
        result.update(self.classification.compute())
        if self.pxap is not None:
            result.update(self.pxap.compute())
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


def _record(config: LocConfig, run: str, split: str, result: dict, ctx, wall_time: float, records: Path) -> None:
    if not ctx.is_main:
        return
    metrics = {k: v for k, v in result.items() if k != "policy"}
    append_record(records, make_record(task="loc", dataset=config.dataset, split=split, metrics=metrics,
                                       config=config.to_dict(), policy=result["policy"], seed=config.seed,
                                       device=str(ctx.device), wall_time=wall_time, run=run))


def evaluate_splits(model: CAMNet, config: LocConfig, data: dict, *, ctx, run: str, records: Path | None,
                    scoremap_dir: str | Path | None = None, progress: bool = True) -> dict:
    """val under the oracle, then test under the oracle and under the val-calibrated thresholds."""
    out = {}
    start = time.perf_counter()
    if "val" in data:
        (val,) = evaluate_model(model, config, data["val"], ctx=ctx, masks=data["masks"].get("val"), progress=progress)
        out["val"] = val
        if records:
            _record(config, run, "val", val, ctx, time.perf_counter() - start, records)
    if "test" in data:
        policies = [Oracle()] + ([Calibrated.from_result(out["val"], source="val")] if "val" in out else [])
        # COCO AP needs one threshold before the pass: the val-calibrated one (none without val)
        coco_tau = out["val"]["loc_threshold"] if "val" in out else None
        tests = evaluate_model(model, config, data["test"], ctx=ctx, masks=data["masks"].get("test"),
                               policies=policies, scoremap_dir=scoremap_dir, progress=progress,
                               coco_threshold=coco_tau)
        out["test"] = tests[0]
        if len(tests) > 1:
            out["test_calibrated"] = tests[1]
        if records:
            for result in tests:
                _record(config, run, "test", result, ctx, time.perf_counter() - start, records)
    return out


# --------------------------------------------------------------------------- training


def train(config: LocConfig, output_dir: str | Path, *, records: str | Path | None = None, resume: bool = False,
          progress: bool = True, evaluate: bool = True, run: str | None = None) -> dict:
    """Train a CAM model, then (optionally) evaluate val and test and append records.

    Returns ``{"run", "output_dir", "checkpoint", "fit", "results"}``.
    """
    output_dir = Path(output_dir)
    run = run or output_dir.name
    ctx = engine.setup(config.device, config.seed)
    try:
        start = time.perf_counter()
        data = _open_main_first(config, ("train", "val", "test"), ctx, progress)
        config = data["config"]
        num_classes = int(max(data[s].num_classes for s in ("train", "val", "test")))
        model, augmentation = build_model(config, num_classes)
        optimizer = _optimizer(config, model)
        trainer = engine.Trainer(model, optimizer, ctx=ctx, output_dir=output_dir, amp=config.amp, progress=progress,
                                 scheduler=_scheduler(config, optimizer, len(data["train"]), ctx.world_size),
                                 scheduler_interval="step")

        def step(model, batch, epoch):
            images, labels, ids = batch["image"], batch["label"], batch["index"]
            if augmentation is not None:
                augmentation.train()
                images = augmentation(images, sample_ids=ids)
            with using_sample_ids(model, ids):
                logits = model(images)
            return F.cross_entropy(logits, labels)

        def on_epoch_start(epoch: int) -> None:
            if augmentation is not None:
                augmentation.set_epoch(epoch)
            set_epoch(trainer.model, epoch)

        fit = trainer.fit(data["train"], epochs=config.epochs, batch_size=config.batch_size, step_fn=step,
                          num_workers=config.num_workers, collate_fn=collate_wsol, resume=resume,
                          extra={"config": config.to_dict(), "num_classes": num_classes, "run": run},
                          on_epoch_start=on_epoch_start)
        train_seconds = time.perf_counter() - start
        results = {}
        if evaluate:
            results = evaluate_splits(trainer.model, config, data, ctx=ctx, run=run,
                                      records=Path(records) if records else None, progress=progress)
        return {"run": run, "output_dir": str(output_dir), "checkpoint": fit["checkpoint"], "fit": fit,
                "results": results, "train_seconds": train_seconds}
    finally:
        engine.teardown(ctx)


def load_run(checkpoint: str | Path) -> tuple[LocConfig, CAMNet, dict]:
    """Config, model with trained weights, and checkpoint info of a training run."""
    checkpoint = Path(checkpoint)
    extra = engine.read_checkpoint(checkpoint).get("extra") or {}
    if "config" not in extra:
        raise ValueError(f"{checkpoint}: not a 'hideseek loc train' checkpoint (no run config inside)")
    config = LocConfig.from_dict(extra["config"])
    model, _ = build_model(config, int(extra["num_classes"]))
    info = engine.load_checkpoint_weights(checkpoint, model)
    return config, model, info


def evaluate_checkpoint(checkpoint: str | Path, *, splits: Sequence[str] = ("val", "test"),
                        records: str | Path | None = None, scoremap_dir: str | Path | None = None,
                        device: str | None = None, progress: bool = True) -> dict:
    """Evaluate a saved run on its own data; returns ``{split: result}`` like training does."""
    config, model, info = load_run(checkpoint)
    if device:
        config.device = device
    ctx = engine.setup(config.device, config.seed)
    try:
        model.to(ctx.device)
        data = _open_main_first(config, splits, ctx, progress)
        run = str((info.get("extra") or {}).get("run", Path(checkpoint).parent.name))
        return evaluate_splits(model, config, data, ctx=ctx, run=run, records=Path(records) if records else None,
                               scoremap_dir=scoremap_dir, progress=progress)
    finally:
        engine.teardown(ctx)
