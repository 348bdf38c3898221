"""Multi-label CAM training and CAM pseudo-mask scoring: ``hideseek seg train`` / ``predict``.

A run is one :class:`SegConfig` (saved in the checkpoint). The model is the localization
room's :class:`~hideseek.cam.model.CAMNet` with one output per object class
(no background), trained from image-level labels alone with the multi-label soft-margin
loss; Hide-and-Seek (or any image augmentation of the registry) hides patches of the
normalised batch, keyed by each image's index in the training split.

Scoring: per image, the pseudo-mask of :mod:`.pseudo` (CAMs of the image-level classes,
upsampled to the original image size, per-class max-normalised, constant background
score) at every background threshold of a grid at once (:class:`.metrics.ThresholdSweep`).
Every result names its threshold policy: ``oracle`` (best threshold on the split itself,
which peeks at its masks) or ``calibrated`` (the val oracle's threshold, applied to
another split). The pseudo-mask quality of the literature is the score on the CAM's own
training images (VOC ``train``); the synthetic scenes also have a held-out ``test`` split.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from hideseek import engine
from hideseek.cam.model import CAMNet
from hideseek.cam.policies import Calibrated, Fixed, Oracle, ThresholdPolicy, cam_thresholds
from hideseek.cam.recipe import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageRunConfig,
    build_image_model,
    build_optimizer,
    build_scheduler,
    image_step,
    image_transforms,
)
from hideseek.engine.lifecycle import Task, TrainParts, evaluate_run, write_record
from hideseek.segmentation.choices import DATASETS
from hideseek.segmentation.metrics import ThresholdSweep
from hideseek.segmentation.pseudo import class_scores, pseudo_labels
from hideseek.segmentation.scenes import SceneConfig, SyntheticScenes
from hideseek.segmentation.voc import IGNORE_INDEX, VOC_CLASSES, VOCSegmentation, collate_seg, write_label_png

__all__ = ["DATASETS", "SegConfig", "SegTask", "calibrated_policy", "evaluate_checkpoint", "load_run", "open_splits",
           "predict", "score_split", "train", "transforms"]


@dataclass
class SegConfig(ImageRunConfig):
    """Everything that defines a segmentation run (the shared fields are
    :class:`~hideseek.cam.recipe.ImageRunConfig`'s).

    ``dataset`` is ``"synthetic"`` (the scene benchmark; ``scenes`` holds
    :class:`~hideseek.segmentation.scenes.SceneConfig` overrides) or ``"voc"``
    (``data_root`` = ``VOCdevkit/VOC2012``; ``train_split`` may be ``train_aug``).
    ``eval_splits`` are scored after training (default: train, val, and test where the
    dataset has one); thresholds are calibrated on ``calibration_split``.
    """

    DATASETS: ClassVar[tuple[str, ...]] = DATASETS

    feature_stage: int | None = 2
    scenes: dict = field(default_factory=dict)
    train_split: str = "train"
    eval_splits: tuple[str, ...] | None = None
    calibration_split: str = "val"
    threshold_interval: float = 0.01
    include_difficult: bool = True

    def __post_init__(self):
        super().__post_init__()
        if self.dataset == "voc" and not self.data_root:
            raise ValueError("dataset 'voc' needs data_root (VOCdevkit/VOC2012)")
        if self.eval_splits is None:
            self.eval_splits = ("train", "val", "test") if self.dataset == "synthetic" else ("train", "val")
        self.eval_splits = tuple(self.eval_splits)
        cam_thresholds(self.threshold_interval)  # validates the grid

    _tuple_fields = ("mean", "std", "eval_splits")


# --------------------------------------------------------------------------- data


def transforms(config: SegConfig, train: bool, normalize: bool = True):
    """Train: resize, random crop, flip; eval: resize to the crop size (maps are upsampled
    back to each image's own size for scoring). The image-run recipe's transforms
    (``normalize=False``: uint8 out, for a step that normalises the batch)."""
    return image_transforms(config, train, normalize)


def open_splits(config: SegConfig, splits: Sequence[str], progress: bool = True, train_split: bool = False) -> dict:
    """``{split: dataset}`` (eval transform, with masks), ``"train"`` with the training
    transform and no masks when ``train_split`` (as uint8 images: the training step
    normalises the batch), ``"classes"`` (object class names) and ``"config"`` with its
    normalisation resolved."""
    out: dict = {}
    if config.dataset == "synthetic":
        bench = SyntheticScenes(SceneConfig.from_dict(config.scenes), progress=progress)
        if config.mean is None or config.std is None:
            mean, std = bench.pixel_stats()
            config = dataclasses.replace(config, mean=mean, std=std)

        def opener(split, train):
            return bench.open(split, transforms(config, train, normalize=not train), masks=not train)
        out["classes"] = bench.classes
    else:
        if config.mean is None or config.std is None:
            config = dataclasses.replace(config, mean=IMAGENET_MEAN, std=IMAGENET_STD)

        def opener(split, train):
            return VOCSegmentation(config.data_root, split, transforms(config, train, normalize=not train),
                                   masks="none" if train else "auto",
                                   include_difficult=config.include_difficult)
        out["classes"] = VOC_CLASSES[1:]
    if train_split:
        out["fit"] = opener(config.train_split, True)
    for split in splits:
        out[split] = opener(split, False)
    out["config"] = config
    return out


# --------------------------------------------------------------------------- scoring


class _SweepScorer:
    """Per batch: pseudo-mask scores at each image's own size -> ThresholdSweep."""

    def __init__(self, sweep: ThresholdSweep, method: str = "cam"):
        self.sweep, self.method = sweep, method

    def __call__(self, model: CAMNet, batch: dict) -> None:
        images, labels = batch["image"], batch["labels"]
        masks = batch["mask"]
        sizes = [(h, w) for w, h in batch["size"]]
        same = len(set(sizes)) == 1 and sizes[0] == tuple(images.shape[-2:])
        for j, image_id in enumerate(batch["image_id"]):
            if masks[j] is None:
                raise FileNotFoundError(f"image {image_id!r}: no ground-truth mask to score the pseudo-mask against")
        if same:
            scores = class_scores(model, images, labels, method=self.method)
            self.sweep.update(scores.cpu(), torch.from_numpy(np.stack(masks)), name=", ".join(batch["image_id"][:3]))
            return
        for j, scores in enumerate(class_scores(model, images, labels, sizes, method=self.method)):
            self.sweep.update(scores.cpu(), torch.from_numpy(masks[j]), name=batch["image_id"][j])


def score_split(model: CAMNet, config: SegConfig, dataset: VOCSegmentation, *, ctx: engine.RunContext,
                policies: Sequence[ThresholdPolicy] = (Oracle(),), progress: bool = True) -> list[dict]:
    """Pseudo-mask metrics of one split under each policy (one pass over the images)."""
    names = ("background", *dataset.classes)
    sweep = ThresholdSweep(len(names), cam_thresholds(config.threshold_interval), IGNORE_INDEX, names)
    # fp32 always: reduced precision would move the argmax between classes
    stats = engine.evaluate(model, dataset, ctx=ctx, batch_size=config.batch_size,
                            eval_fn=_SweepScorer(sweep, config.cam_method),
                            amp=False, num_workers=config.num_workers, collate_fn=collate_seg, progress=progress,
                            desc=f"pseudo-masks {dataset.split}")
    sweep.sync()
    results = []
    for policy in policies:
        result = sweep.compute(policy)
        result["seconds"] = stats["seconds"]
        results.append(result)
    return results


def calibrated_policy(result: dict, source: str = "val") -> Calibrated:
    """The policy that applies an oracle result's background threshold to another split."""
    if "bg_threshold" not in result:
        raise ValueError("calibration result has no 'bg_threshold' (an oracle pseudo-mask evaluation on val)")
    return Calibrated({"mIoU": float(result["bg_threshold"])}, source=source)


def _record(config: SegConfig, run: str, split: str, result: dict, ctx, wall_time: float, records: Path | None) -> None:
    write_record("seg", config, run=run, split=split, metrics={k: v for k, v in result.items() if k != "policy"},
                 policy=result["policy"], ctx=ctx, wall_time=wall_time, records=records)


def evaluate_splits(model: CAMNet, config: SegConfig, data: dict, *, ctx, run: str, records: Path | None,
                    progress: bool = True) -> dict:
    """The calibration split under the oracle first, then every other split under the
    oracle and under the calibrated threshold (``<split>_calibrated``)."""
    out: dict = {}
    start = time.perf_counter()
    calib = config.calibration_split
    order = [calib] if calib in config.eval_splits else []
    order += [s for s in config.eval_splits if s != calib]
    for split in order:
        policies: list[ThresholdPolicy] = [Oracle()]
        if split != calib and calib in out:
            policies.append(calibrated_policy(out[calib], source=calib))
        results = score_split(model, config, data[split], ctx=ctx, policies=policies, progress=progress)
        out[split] = results[0]
        if len(results) > 1:
            out[f"{split}_calibrated"] = results[1]
        for result in results:
            _record(config, run, split, result, ctx, time.perf_counter() - start, records)
    return out


# --------------------------------------------------------------------------- the task


def _soft_margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Multi-label soft-margin loss, in fp32 whatever the autocast dtype."""
    return F.multilabel_soft_margin_loss(logits.float(), labels)


class SegTask(Task):
    """Segmentation: multi-label CAM training with the soft-margin loss, pseudo-mask scoring."""

    name = "seg"
    config_class = SegConfig
    collate = staticmethod(collate_seg)

    def open_data(self, config: SegConfig, *, train: bool, evaluate: bool, progress: bool) -> dict:
        return open_splits(config, config.eval_splits if evaluate else (), progress=progress, train_split=train)

    def build(self, config: SegConfig, data: Mapping, ctx: engine.RunContext) -> TrainParts:
        classes = list(data["classes"])
        model, augmentation = build_image_model(config, len(classes))
        optimizer = build_optimizer(config, model)
        step = image_step(augmentation, _soft_margin, "labels", mean=config.mean, std=config.std)
        return TrainParts(model, optimizer, step, build_scheduler(config, optimizer, len(data["fit"]), ctx.world_size),
                          augmentation, extra={"classes": classes})

    def model_from_checkpoint(self, config: SegConfig, extra: Mapping) -> CAMNet:
        return build_image_model(config, len(extra["classes"]))[0]

    def evaluate(self, model, config, data, *, ctx, run, records, output_dir, extra, progress) -> dict:
        return evaluate_splits(model, config, data, ctx=ctx, run=run, records=records, progress=progress)


TASK = SegTask()


train = TASK.train
load_run = TASK.load_run


def evaluate_checkpoint(checkpoint: str | Path, *, splits: Sequence[str] | None = None,
                        records: str | Path | None = None, data_root: str | None = None,
                        device: str | None = None, progress: bool = True, cam_method: str | None = None) -> dict:
    """Score a saved run's pseudo-masks on its data (threshold sweep, oracle + calibrated);
    ``cam_method`` makes them with another CAM method than the run's own."""
    overrides = {"data_root": str(data_root) if data_root else None, "device": device,
                 "eval_splits": tuple(splits) if splits else None, "cam_method": cam_method}
    return evaluate_run(TASK, checkpoint, overrides=overrides, records=records, progress=progress)


def predict(checkpoint: str | Path, output_dir: str | Path, *, split: str, threshold: float | None = None,
            calibration: str | Path | None = None, data_root: str | None = None, device: str | None = None,
            batch_size: int | None = None, progress: bool = True, cam_method: str | None = None) -> dict:
    """Write the pseudo-mask of every image of ``split`` as ``<output_dir>/<id>.png`` (VOC
    palette PNG at the image's own size) and ``<output_dir>/predictions.json`` (run,
    split, threshold and its policy). The background threshold is ``threshold`` (policy
    ``fixed``) or the ``bg_threshold`` of a val result JSON ``calibration`` (``calibrated``).
    ``cam_method``: the CAM method of the masks (default: the run's own)."""
    if (threshold is None) == (calibration is None):
        raise ValueError("give exactly one of threshold (e.g. 0.2) or calibration (a val result JSON)")
    if calibration is not None:
        path = Path(calibration)
        try:
            result = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"{path}: cannot read calibration result ({error})") from None
        if "bg_threshold" not in result and isinstance(result.get("val"), dict):
            result = result["val"]  # a {split: result} file of seg train / seg evaluate --checkpoint
        try:
            policy = calibrated_policy(result, source=str(path))
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
        threshold = float(result["bg_threshold"])
    else:
        if not 0.0 <= threshold < 1.0:
            raise ValueError(f"threshold must lie in [0, 1), got {threshold}")
        policy = Fixed(float(threshold))
    config, model, extra = load_run(checkpoint)
    if data_root:
        config = dataclasses.replace(config, data_root=str(data_root))
    if device:
        config = dataclasses.replace(config, device=device)
    if cam_method:
        config = dataclasses.replace(config, cam_method=cam_method)
    ctx = engine.setup(config.device, config.seed)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        model.to(ctx.device).eval()
        data = open_splits(config, (split,), progress=progress)
        dataset = data[split]
        loader = engine.make_loader(dataset, batch_size or config.batch_size, train=False, seed=config.seed,
                                    num_workers=config.num_workers, collate_fn=collate_seg)
        written = 0
        start = time.perf_counter()
        with torch.no_grad():
            for batch in tqdm(loader, desc=f"predict {split}", unit="batch", disable=not progress, leave=False):
                images = batch["image"].to(ctx.device)
                sizes = [(h, w) for w, h in batch["size"]]
                for image_id, scores in zip(batch["image_id"],
                                            class_scores(model, images, batch["labels"].to(ctx.device), sizes,
                                                         method=config.cam_method)):
                    write_label_png(output_dir / f"{image_id}.png", pseudo_labels(scores, threshold).cpu().numpy())
                    written += 1
    finally:
        engine.teardown(ctx)
    manifest = {"run": str(extra.get("run", Path(checkpoint).parent.name)),
                "checkpoint": str(checkpoint), "split": split, "num_images": written, "bg_threshold": threshold,
                "policy": policy.describe(), "cam_method": config.cam_method,
                "classes": ["background", *data["classes"]],
                "seconds": time.perf_counter() - start}
    (output_dir / "predictions.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
