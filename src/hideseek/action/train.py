"""Train and evaluate temporal CAM models: what ``hideseek action train`` / ``evaluate`` run.

A run is described by one :class:`ActionConfig` (saved in the checkpoint with the class
list and the feature normalisation, so evaluating a checkpoint needs nothing else).

Data: the embedded synthetic video benchmark (:mod:`hideseek.action.synthetic`, default)
or snippet features on disk in the simple layout ``<features_dir>/<video>.npy`` (``T x D``)
with an ActivityNet-style ``gt.json`` whose ``subset`` names the training and test
videos (THUMOS14: ``validation`` / ``test``) and a fixed ``stride_s`` between snippets.

Training hides snippets with the registry's ``frame-has`` (fixed-length segments hidden
with probability ``p_hide``, filled with the video's mean feature) keyed by each video's
index in the training set, so the hidden segments depend only on ``(seed, epoch,
index)``. Padded snippets of a batch are set to the video's mean over its real snippets
before hiding, which makes the fill the mean of the real snippets exactly, then zeroed
again; the model masks them everywhere. The loss is multi-label binary cross-entropy of
the pooled video scores.

Evaluation runs the model on the test videos, turns temporal CAMs into segments
(:mod:`hideseek.action.detect`), writes the predictions as ActivityNet-style JSON (each
detection with its snippet range, and the grid's snippets per second: :func:`snippet_rate`)
and scores them under each configured protocol (:func:`hideseek.action.protocols.evaluate`:
``wtalc`` on the snippet ranges, as W-TALC, the others on the seconds);
one record per protocol is appended to the record store. No model selection happens on
the test set: the checkpoint scored is the last one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from hideseek import engine
from hideseek.action.choices import AUGMENTATIONS, DATASETS, SCHEDULES
from hideseek.action.dataset import FeatureDataset, Segment, VideoFeatures, check_features
from hideseek.action.detect import DetectConfig, detect_video, to_results_json, write_predictions
from hideseek.action.features import FEATURE_SOURCES, MANIFEST, load_feature_source
from hideseek.action.model import POOLS, TemporalCAM, normalize_temporal_cams, video_loss
from hideseek.action.protocols import DEFAULT_TIOU, PROTOCOLS, get_protocol
from hideseek.action.protocols import evaluate as evaluate_protocol
from hideseek.augment import available as available_augmentations
from hideseek.augment import create as create_augmentation
from hideseek.engine import ConfigDict
from hideseek.engine.lifecycle import Task, TrainParts, evaluate_run, write_record
from hideseek.inputs import read_json

__all__ = ["ActionConfig", "build_model", "evaluate_checkpoint", "evaluate_model", "load_feature_folder",
           "load_run", "open_data", "snippet_rate", "train", "video_map"]


@dataclass
class ActionConfig(ConfigDict):
    """Everything that defines a temporal CAM run (see the module docstring).

    ``threads`` is the number of torch CPU threads during the run (``None``: leave
    torch's setting); ``standardize`` (``None``: yes for the synthetic benchmark, no for
    features on disk) normalises every feature dimension by the training set's mean and
    std, stored in the checkpoint.
    """

    dataset: str = "synthetic"
    synthetic: dict = field(default_factory=dict)
    features_dir: str | None = None
    ground_truth: str | None = None
    stride_s: float | None = None
    snippet_s: float | None = None
    train_subset: str = "train"
    test_subset: str = "test"
    ambiguous: str | None = None
    modality: str = "both"
    standardize: bool | None = None
    hidden: int = 128
    layers: int = 2
    kernel_size: int = 1
    dropout: float = 0.5
    pool: str = "topk"
    topk_ratio: float = 8.0
    augmentation: str = "none"
    aug_params: dict = field(default_factory=dict)
    epochs: int = 40
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    seed: int = 0
    num_workers: int = 0
    device: str = "auto"
    # the temporal CAM's ops are tiny: thread synchronisation costs more than it saves (busy
    # 2-core machine: 5 epochs of the demo's baseline took 2.0 s on 1 thread, 18.0 s on 2)
    threads: int | None = 1
    amp: bool = False
    detect: dict = field(default_factory=dict)
    protocols: tuple[str, ...] = PROTOCOLS
    tiou: tuple[float, ...] = DEFAULT_TIOU

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; valid choices: {', '.join(DATASETS)}")
        if self.dataset == "features" and not (self.features_dir and self.ground_truth and self.stride_s):
            raise ValueError("dataset 'features' needs features_dir (<video>.npy files), ground_truth (gt.json) "
                             "and stride_s (seconds between snippet starts)")
        if self.dataset in FEATURE_SOURCES and not self.features_dir:
            raise ValueError(f"dataset {self.dataset!r} needs features_dir (the layout's root folder)")
        if self.pool not in POOLS:
            raise ValueError(f"unknown pool {self.pool!r}; valid choices: {', '.join(POOLS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; valid choices: {', '.join(SCHEDULES)}")
        if self.augmentation not in available_augmentations():
            raise ValueError(
                f"unknown augmentation {self.augmentation!r}; available: {', '.join(available_augmentations())}")
        if self.augmentation not in AUGMENTATIONS:
            probe = create_augmentation(self.augmentation, **self.aug_params)
            if probe.kind != "video":
                raise ValueError(f"augmentation {self.augmentation!r} is for {probe.kind} input, not snippet "
                                 "features; use 'frame-has' (or 'none')")
        for name, low in (("epochs", 1), ("batch_size", 1), ("hidden", 1), ("layers", 0), ("kernel_size", 1),
                          ("num_workers", 0), ("seed", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} (--{name.replace('_', '-')}) must be an integer >= {low}, got {value!r}")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size (--kernel-size) must be odd, got {self.kernel_size}")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise ValueError(f"threads (--threads) must be an integer >= 1 (or none), got {self.threads!r}")
        for name, ok, expected in (("lr", lambda v: v > 0, "> 0"), ("weight_decay", lambda v: v >= 0, ">= 0"),
                                   ("dropout", lambda v: 0 <= v < 1, "in [0, 1)"),
                                   ("topk_ratio", lambda v: v > 0, "> 0")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not ok(value):
                raise ValueError(f"{name} (--{name.replace('_', '-')}) must be a number {expected}, got {value!r}")
        if self.stride_s is not None and not (math.isfinite(self.stride_s) and self.stride_s > 0):
            raise ValueError(f"stride_s (--stride-s) must be a positive number, got {self.stride_s!r}")
        if self.snippet_s is not None and not (math.isfinite(self.snippet_s) and self.snippet_s > 0):
            raise ValueError(f"snippet_s (--snippet-s) must be a positive number, got {self.snippet_s!r}")
        unknown = sorted(set(self.protocols) - set(PROTOCOLS))
        if unknown:
            raise ValueError(f"unknown protocols {unknown}; valid choices: {', '.join(PROTOCOLS)}")
        self.protocols = tuple(self.protocols)
        self.tiou = tuple(float(t) for t in self.tiou)
        DetectConfig.from_dict(self.detect)  # fail now on a bad detection key

    @property
    def detect_config(self) -> DetectConfig:
        return DetectConfig.from_dict(self.detect)

    _tuple_fields = ("protocols", "tiou")


# --------------------------------------------------------------------------- data


def load_feature_folder(features_dir: str | Path, ground_truth: str | Path | dict, subset: str, *, stride_s: float,
                        snippet_s: float | None = None) -> list[VideoFeatures]:
    """Videos of ``subset`` from ``<features_dir>/<video>.npy`` (``T x D``) and a GT JSON.

    Every GT video of the subset needs its feature file; a missing or malformed one stops
    with its path named. ``snippet_s`` (default ``stride_s``) is recorded in ``extra``.
    """
    features_dir = Path(features_dir)
    where = "<dict>" if isinstance(ground_truth, dict) else str(ground_truth)
    if isinstance(ground_truth, dict):
        data = ground_truth
    else:
        if not Path(ground_truth).exists():
            raise FileNotFoundError(f"{ground_truth}: ground-truth file not found")
        data = read_json(ground_truth, expect=dict, what="ground-truth file")
    if not isinstance(data.get("database"), dict):
        raise ValueError(f"{where}: ground truth has no 'database' object (expected {{'database': {{video: ...}}}})")
    if not features_dir.is_dir():
        raise FileNotFoundError(f"{features_dir}: features folder not found")
    videos = []
    present: dict[str, None] = {}
    for vid, entry in data["database"].items():
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: video {vid!r}: expected an object, found {type(entry).__name__}")
        present[str(entry.get("subset"))] = None
        if entry.get("subset") != subset:
            continue
        path = features_dir / f"{vid}.npy"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: feature file of video {vid!r} (subset {subset!r} of {where}) not found")
        try:
            feats = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as error:
            raise ValueError(f"{path}: not a readable .npy array ({error})") from None
        if feats.ndim == 2 and feats.shape[0] and np.issubdtype(feats.dtype, np.floating):
            check_features(str(path), str(vid), feats, float(stride_s), entry.get("duration"))
        try:
            segs = tuple(Segment(float(a["segment"][0]), float(a["segment"][1]), str(a["label"]))
                         for a in entry.get("annotations") or [])
            videos.append(VideoFeatures(video=str(vid), features=feats, stride_s=float(stride_s), segments=segs,
                                        subset=subset, duration_s=entry.get("duration"), fps=entry.get("fps"),
                                        extra={"snippet_s": float(snippet_s or stride_s)}))
        except (KeyError, TypeError, IndexError, ValueError) as error:
            raise ValueError(f"{path} / {where}: video {vid!r}: {error}") from None
    if not videos:
        raise ValueError(f"{where}: no video has subset {subset!r} (subsets present: "
                         f"{', '.join(repr(x) for x in present) or 'none'})")
    return videos


def open_data(config: ActionConfig, progress: bool = True) -> dict:
    """``{"train": FeatureDataset, "test": FeatureDataset, "classes", "snippet_s", "ambiguous",
    "snippets_per_second"}`` (the test videos' snippet grid, :func:`snippet_rate`)."""
    if config.dataset == "synthetic":
        from hideseek.action.synthetic import SyntheticVideo, SyntheticVideoConfig

        bench = SyntheticVideo(SyntheticVideoConfig.from_dict(config.synthetic), progress=progress)
        train_v, test_v = bench.videos("train"), bench.videos("test")
        snippet_s = bench.config.stride_s
        rate = snippet_rate(test_v, fps=bench.config.fps, frames=bench.config.snippet)
    elif config.dataset == "features":
        train_v = load_feature_folder(config.features_dir, config.ground_truth, config.train_subset,
                                      stride_s=config.stride_s, snippet_s=config.snippet_s)
        test_v = load_feature_folder(config.features_dir, config.ground_truth, config.test_subset,
                                     stride_s=config.stride_s, snippet_s=config.snippet_s)
        snippet_s = config.snippet_s or config.stride_s
        rate = snippet_rate(test_v)  # only the stride is known
    else:
        return _open_feature_source(config)
    classes = sorted({lab for v in train_v + test_v for lab in v.labels})
    return {"train": FeatureDataset(train_v, classes), "test": FeatureDataset(test_v, classes),
            "classes": classes, "snippet_s": float(snippet_s), "ambiguous": None, "snippets_per_second": rate}


def snippet_rate(videos: Sequence[VideoFeatures], *, fps: float | None = None,
                 frames: int | None = None) -> float | None:
    """Snippets per second of the videos' common snippet grid (W-TALC's ``factor``), or
    ``None`` when they do not share one (then no snippet units are written).

    Per video it is ``fps / frames`` when the features say their frame rate (``fps``;
    ``None``: each video's own ``fps``) and frames per snippet (``frames``), the exact
    fraction rounded once (I3D: 25 / 16 = 1.5625, W-TALC's literal ``25.0/16.0``), else
    ``1 / stride_s``, which rounds twice and is often one ulp off the fraction (16 frames at
    30000/1001 fps: 1.8731268731268729 against 1.873126873126873; 7 frames at 25 fps; I3D's
    16 at 25 and the synthetic benchmark's 4 at 8 happen to agree). A fraction that does not
    describe the video's stride (to 1e-9) is not used for it.
    """
    rates = set()
    for v in videos:
        rate = 1.0 / v.stride_s
        video_fps = fps if fps is not None else v.fps
        if frames and video_fps and math.isclose(float(video_fps) / frames * v.stride_s, 1.0, rel_tol=1e-9):
            rate = float(video_fps) / frames
        rates.add(rate)
    return rates.pop() if len(rates) == 1 else None


def _open_feature_source(config: ActionConfig) -> dict:
    """A public layout through :func:`hideseek.action.features.load_feature_source`.

    The source's own class list is kept (all 20 THUMOS14 classes even if a subset lacks
    one); test videos are relabelled with ``config.test_subset`` so the protocols keep them
    whatever the layout calls its subsets; the layout's Ambiguous segments are used unless
    ``config.ambiguous`` names a file.
    """
    kwargs = {"modality": config.modality} if config.dataset == "i3d-split" else {}
    if config.dataset == "extracted":
        kwargs["ground_truth"] = config.ground_truth
    if config.stride_s is not None and config.dataset != "extracted":
        kwargs["stride_s"] = config.stride_s
    train = load_feature_source(config.dataset, config.features_dir, config.train_subset, **kwargs)
    test = load_feature_source(config.dataset, config.features_dir, config.test_subset,
                               ambiguous=config.ambiguous, **kwargs)
    classes = list(train.classes) if train.classes else sorted({lab for v in train.videos for lab in v.labels})
    test_v = [dataclasses.replace(v, subset=config.test_subset) for v in test.videos]
    snippet_s = config.snippet_s or test_v[0].extra.get("snippet_s", test_v[0].stride_s)
    if config.dataset == "extracted":  # the manifest says the frame rate (None: each video's own) and frames
        manifest = read_json(Path(config.features_dir) / MANIFEST, expect=dict, what="feature manifest")
        settings = manifest.get("settings") if isinstance(manifest.get("settings"), dict) else {}
        rate = snippet_rate(test_v, fps=settings.get("fps"), frames=settings.get("snippet"))
    else:  # the public I3D features: 16-frame snippets at 25 fps (unless --stride-s says otherwise)
        rate = snippet_rate(test_v, fps=25.0, frames=16)
    return {"train": FeatureDataset(train.videos, classes), "test": FeatureDataset(test_v, classes),
            "classes": classes, "snippet_s": float(snippet_s), "ambiguous": test.ambiguous or None,
            "snippets_per_second": rate}


def _feature_stats(dataset: FeatureDataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and std over every training snippet (std floored at 1e-6)."""
    feats = np.concatenate([v.features for v in dataset.videos]).astype(np.float64)
    return torch.from_numpy(feats.mean(0)).float(), torch.from_numpy(np.maximum(feats.std(0), 1e-6)).float()


class _Standardized(torch.utils.data.Dataset):
    """A :class:`FeatureDataset` whose features are ``(x - mean) / std``."""

    def __init__(self, base: FeatureDataset, mean: torch.Tensor | None, std: torch.Tensor | None):
        self.base, self.mean, self.std = base, mean, std

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        item = self.base[i]
        if self.mean is not None:
            item = dict(item, features=(item["features"] - self.mean) / self.std)
        return item


# --------------------------------------------------------------------------- model


def build_model(config: ActionConfig, in_dim: int, num_classes: int) -> TemporalCAM:
    return TemporalCAM(in_dim, num_classes, hidden=config.hidden, layers=config.layers,
                       kernel_size=config.kernel_size, dropout=config.dropout, pool=config.pool,
                       topk_ratio=config.topk_ratio)


def _augmentation(config: ActionConfig) -> torch.nn.Module | None:
    if config.augmentation == "none":
        return None
    params = dict(config.aug_params)
    params.setdefault("seed", config.seed)
    return create_augmentation(config.augmentation, **params)


def hide_padded(augmentation: torch.nn.Module, features: torch.Tensor, mask: torch.Tensor,
                sample_ids: torch.Tensor) -> torch.Tensor:
    """Apply a video augmentation to a padded batch as if every video were alone.

    Padded snippets take the mean of the video's real snippets first, so a mean fill over
    all ``T`` equals the mean over the real ones; they are zeroed again afterwards.
    """
    keep = mask[..., None].to(features.dtype)
    mean = (features * keep).sum(1, keepdim=True) / keep.sum(1, keepdim=True)
    hidden = augmentation(torch.where(mask[..., None], features, mean), sample_ids=sample_ids)
    return hidden * keep


# --------------------------------------------------------------------------- evaluation


def video_map(scores: np.ndarray, labels: np.ndarray) -> float:
    """Video-level classification mAP (percent): non-interpolated AP per class with at
    least one positive video, averaged."""
    aps = []
    for c in range(labels.shape[1]):
        y = labels[:, c] > 0.5
        if not y.any():
            continue
        order = np.argsort(-scores[:, c], kind="stable")
        hits = y[order]
        precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        aps.append(float(precision[hits].mean()))
    return 100.0 * float(np.mean(aps)) if aps else float("nan")


class _Detector:
    """Per batch: model outputs -> per-video detections (and video scores for video mAP)."""

    def __init__(self, dataset: FeatureDataset, classes: Sequence[str], snippet_s: float, detect: DetectConfig):
        self.dataset, self.classes, self.snippet_s, self.detect = dataset, list(classes), snippet_s, detect
        self.detections: dict[str, list[dict]] = {}
        self.scores: dict[int, np.ndarray] = {}
        self.cams: dict[str, np.ndarray] = {}

    def __call__(self, model: TemporalCAM, batch: dict) -> None:
        feats, mask = batch["features"], batch["mask"]
        logits, cas = model(feats, mask)
        probs = torch.sigmoid(logits.float()).cpu().numpy()
        if self.detect.activation == "sigmoid":
            act = torch.sigmoid(cas.float())
        else:
            act = normalize_temporal_cams(cas.float(), mask)
        act = act.cpu().numpy()
        lengths = mask.sum(1).cpu().tolist()
        for j, index in enumerate(batch["index"].tolist()):
            video = self.dataset.videos[index]
            a = act[j, :, : lengths[j]]
            self.scores[index] = probs[j]
            self.cams[video.video] = a
            self.detections[video.video] = detect_video(
                a, probs[j], self.classes, stride_s=video.stride_s,
                snippet_s=video.extra.get("snippet_s", self.snippet_s), duration_s=video.duration_s,
                config=self.detect)

    def gather(self, ctx: engine.RunContext) -> None:
        if not ctx.distributed:
            return
        import torch.distributed as dist

        parts = [None] * ctx.world_size
        dist.all_gather_object(parts, (self.detections, self.scores))
        for dets, scores in parts:
            self.detections.update(dets)
            self.scores.update(scores)


def evaluate_model(model: TemporalCAM, config: ActionConfig, data: dict, *, ctx: engine.RunContext,
                   mean: torch.Tensor | None = None, std: torch.Tensor | None = None, output_dir: Path | None = None,
                   progress: bool = True, keep_cams: bool = False) -> dict:
    """Detect on the test videos and score every protocol of ``config``.

    Returns ``{protocol: protocol result}``, plus ``"video mAP"``, ``"predictions"`` (the
    path written under ``output_dir``, if given) and, with ``keep_cams``, ``"cams"``.
    """
    test = data["test"]
    detector = _Detector(test, data["classes"], data["snippet_s"], config.detect_config)
    stats = engine.evaluate(model, _Standardized(test, mean, std), ctx=ctx, batch_size=config.batch_size,
                            eval_fn=detector, amp=False, num_workers=config.num_workers,
                            collate_fn=FeatureDataset.collate, progress=progress, desc="detect")
    detector.gather(ctx)
    gt = test.ground_truth()
    out: dict = {"detect_seconds": stats["seconds"]}
    labels = np.stack([test.label_vector(v).numpy() for v in test.videos])
    scores = np.stack([detector.scores[i] for i in range(len(test))])
    out["video mAP"] = video_map(scores, labels)
    # the file and the protocols get the same rows: seconds, and the snippet ranges with their
    # grid, which wtalc scores (W-TALC's units) while the other protocols score the seconds
    rate = data.get("snippets_per_second")
    preds = to_results_json(detector.detections, rate)
    if output_dir is not None and ctx.is_main:
        path = output_dir / f"predictions-{config.test_subset}.json"
        out["predictions"] = str(write_predictions(detector.detections, path, rate))
        (output_dir / f"gt-{config.test_subset}.json").write_text(json.dumps(gt) + "\n")
    ambiguous = config.ambiguous or data.get("ambiguous")
    for protocol in config.protocols:
        uses_ambiguous = get_protocol(protocol).ambiguous != "ignored"
        result = evaluate_protocol(gt, preds, protocol=protocol, tiou=config.tiou,
                                   ambiguous=ambiguous if uses_ambiguous else None, subset=config.test_subset)
        if rate is None and "snippets" in get_protocol(protocol).units:
            result["notes"].append("the test videos share no snippet grid (their strides differ), so the "
                                   "detections carry no snippet ranges: scored in seconds")
        out[protocol] = result
        if output_dir is not None and ctx.is_main:
            (output_dir / f"eval-{config.test_subset}-{protocol}.json").write_text(json.dumps(result, indent=1) + "\n")
    if keep_cams:
        out["cams"] = detector.cams
    return out


def flat_metrics(result: dict, video_map_value: float | None = None) -> dict:
    """A protocol result as flat numbers for a record: ``mAP@t``, ``mAP avg lo:hi``, counts."""
    metrics = {f"mAP@{t}": v for t, v in result["mAP"].items()}
    metrics.update({f"mAP avg {span}": v for span, v in result["average_mAP"].items()})
    metrics["num_predictions"] = result["num_predictions"]
    metrics["num_ground_truth"] = result["num_ground_truth"]
    metrics["ignored_predictions"] = result["ignored_predictions"]["total"]
    metrics["unknown_video_predictions"] = result["unknown_video_predictions"]
    metrics["seconds"] = result["seconds"]
    if video_map_value is not None:
        metrics["video mAP"] = video_map_value
    return metrics


def _records(config: ActionConfig, run: str, results: dict, ctx, wall_time: float, records: Path | None) -> None:
    for protocol in config.protocols:
        write_record("action", config, run=run, split=config.test_subset,
                     metrics=flat_metrics(results[protocol], results["video mAP"]),
                     policy={"name": protocol, "detect": config.detect_config.to_dict(),
                             "units": results[protocol]["units"],
                             "snippets_per_second": results[protocol]["snippets_per_second"]}, ctx=ctx,
                     wall_time=wall_time, records=records)


# --------------------------------------------------------------------------- the task


class ActionTask(Task):
    """Temporal action localization: multi-label temporal CAM on snippet features, detection, mAP."""

    name = "action"
    config_class = ActionConfig
    legacy_keys = ("classes", "in_dim")
    channels_last = False
    collate = staticmethod(FeatureDataset.collate)

    def open_data(self, config: ActionConfig, *, train: bool, evaluate: bool, progress: bool) -> dict:
        data = open_data(config, progress=progress)
        data["config"] = config
        if train:
            standardize = config.standardize if config.standardize is not None else config.dataset == "synthetic"
            data["feature_stats"] = _feature_stats(data["train"]) if standardize else (None, None)
        return data

    def build(self, config: ActionConfig, data: Mapping, ctx: engine.RunContext) -> TrainParts:
        mean, std = data["feature_stats"]
        model = build_model(config, data["train"].feature_dim, len(data["classes"]))
        augmentation = _augmentation(config)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        scheduler = None
        if config.schedule == "cosine":
            steps = config.epochs * math.ceil(math.ceil(len(data["train"]) / ctx.world_size) / config.batch_size)
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1))

        def step(model, batch, epoch):
            feats, mask = batch["features"], batch["mask"]
            if augmentation is not None:
                augmentation.train()
                feats = hide_padded(augmentation, feats, mask, batch["index"])
            logits, _ = model(feats, mask)
            return video_loss(logits, batch["labels"])

        data["fit"] = _Standardized(data["train"], mean, std)
        extra = {"classes": list(data["classes"]), "in_dim": data["train"].feature_dim, "feature_mean": mean,
                 "feature_std": std}
        return TrainParts(model, optimizer, step, scheduler, augmentation,
                          extra={k: v for k, v in extra.items() if v is not None})

    def model_from_checkpoint(self, config: ActionConfig, extra: Mapping) -> TemporalCAM:
        return build_model(config, int(extra["in_dim"]), len(extra["classes"]))

    def check_checkpoint_data(self, checkpoint: Path, extra: Mapping, data: Mapping) -> None:
        if list(data["classes"]) != list(extra["classes"]):
            raise ValueError(f"{checkpoint}: trained on classes {extra['classes']}, the data now has {data['classes']}")

    def evaluate(self, model, config, data, *, ctx, run, records, output_dir, extra, progress) -> dict:
        start = time.perf_counter()
        if output_dir is not None:
            output_dir.mkdir(parents=True, exist_ok=True)
        results = evaluate_model(model, config, data, ctx=ctx, mean=extra.get("feature_mean"),
                                 std=extra.get("feature_std"), output_dir=output_dir, progress=progress)
        _records(config, run, results, ctx, time.perf_counter() - start, records)
        return results


TASK = ActionTask()


train = TASK.train
load_run = TASK.load_run


def evaluate_checkpoint(checkpoint: str | Path, *, records: str | Path | None = None,
                        output_dir: str | Path | None = None, device: str | None = None, detect: dict | None = None,
                        progress: bool = True) -> dict:
    """Detect and score a saved run on its own test data (``detect`` overrides its
    post-processing; outputs go next to the checkpoint unless ``output_dir`` is given);
    returns what :func:`evaluate_model` returns."""
    def overrides(config: ActionConfig) -> dict:
        return {"device": device, "detect": {**config.detect, **detect} if detect else None}

    return evaluate_run(TASK, checkpoint, overrides=overrides, records=records,
                        output_dir=output_dir or Path(checkpoint).parent, progress=progress)
