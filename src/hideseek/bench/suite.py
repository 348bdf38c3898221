"""The ``hideseek bench`` suite: kernels, frame hiding, evaluators and training-step
overhead, measured on one device in one run, on the same tensors.

Every row records its timing (:func:`hideseek.bench.timing.measure`), the items it
processed and, where the operation has a memory-traffic floor, the bytes it must move, so
the report can state achieved bandwidth as a fraction of ``x.clone()`` (read + write) and
``x.fill_()`` (write) measured in the same run.

Byte accounting (the minimum traffic of each operation; ``N`` elements of ``s`` bytes):

* ``clone``, out-of-place hiding, the per-patch loop on a copy: ``2 N s`` (read + write);
* ``fill_``: ``N s`` (write);
* in-place hiding: ``f N s``, writing only the hidden cells (``f`` = hidden fraction of
  that very mask, measured);
* normalise, normalise-and-hide: ``N (1 + s_out)`` (uint8 read, ``s_out``-byte write);
  normalise then hide in place: the same floor, ``N (1 + s_out)``;
* ``hide_frames`` with the per-video mean fill: ``3 N s`` out of place (mean read, read,
  write), ``N s + f N s`` in place;
* peers whose erased area is random (timm / torchvision ``RandomErasing``), evaluators and
  training steps: no byte floor, only time and items per second.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from .choices import DEFAULT_GROUPS, DEVICES, GROUPS
from .timing import loadavg, machine_info, measure

__all__ = ["SIZES", "GROUPS", "DEFAULT_GROUPS", "CAM_BENCH_METHODS", "run_suite"]

# the CAM methods the "cams" group times, vanilla CAM first (every ratio is to it); ScoreCAM and
# AblationCAM make one forward pass per feature channel per image, so they run on fewer images
CAM_BENCH_METHODS = ("cam", "gradcam", "gradcam++", "xgradcam", "eigencam", "layercam", "hirescam",
                     "scorecam", "ablationcam")
PER_CHANNEL_METHODS = ("scorecam", "ablationcam")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Workload sizes: "full" is what the committed results use; "tiny" exercises every row
# end to end in seconds (tests, smoke runs).
SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "full": {
        "cpu": dict(images=(64, 3, 224, 224), clips=(8, 16, 3, 112, 112), features=(16, 320, 2048),
                    box_maps=64, box_size=224, tmap=(200, 20, 60),
                    train=dict(model="resnet18", batch=8, size=128, rounds=8, amp=False),
                    loop=dict(backbone="resnet18", stage=2, classes=6, images=256, batch=64, size=96, rounds=4),
                    cams=dict(models=("resnet50", "tf_efficientnet_lite0"), batch=2, size=224, rounds=3,
                              per_channel_images=1, per_channel_models=("resnet50", "tf_efficientnet_lite0"))),
        "cuda": dict(images=(256, 3, 224, 224), clips=(32, 16, 3, 112, 112), features=(64, 750, 2048),
                     box_maps=64, box_size=224, tmap=(200, 20, 60),
                     train=dict(model="resnet50", batch=256, size=224, rounds=20, amp=True),
                     loop=dict(backbone="resnet50", stage=None, classes=200, images=2048, batch=256, size=224,
                               rounds=5),
                     cams=dict(models=("resnet50", "tf_efficientnet_lite0"), batch=16, size=224, rounds=5,
                               per_channel_images=2, per_channel_models=("resnet50", "tf_efficientnet_lite0"))),
    },
    "tiny": {
        dev: dict(images=(4, 3, 32, 32), clips=(2, 8, 3, 16, 16), features=(2, 16, 32),
                  box_maps=3, box_size=48, tmap=(8, 4, 6),
                  train=dict(model="resnet10t", batch=2, size=32, rounds=2, amp=False),
                  loop=dict(backbone="resnet10t", stage=2, classes=3, images=8, batch=4, size=32, rounds=2),
                  cams=dict(models=("resnet10t",), batch=2, size=32, rounds=2, per_channel_images=1,
                            per_channel_models=("resnet10t",)))
        for dev in DEVICES
    },
}


class _Rows:
    """Collects result rows of one group."""

    def __init__(self, group: str, device: torch.device, timing: dict[str, Any]):
        self.group, self.device, self.timing = group, device, timing
        self.rows: list[dict[str, Any]] = []

    def add(self, name: str, label: str, fn: Callable[[], Any], items: int, unit: str,
            nbytes: float | None, **extra: Any) -> dict[str, Any]:
        opts = dict(self.timing)
        opts.update(extra.pop("timing", {}))
        t = measure(fn, self.device, **opts)
        row = dict(group=self.group, name=name, label=label, items=items, unit=unit,
                   bytes=None if nbytes is None else float(nbytes), **t)
        row["items_per_s"] = items / t["median_s"]
        row["gb_per_s"] = None if nbytes is None else nbytes / t["median_s"] / 1e9
        row.update(extra)
        self.rows.append(row)
        return row


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view({4: torch.int32, 2: torch.int16, 1: torch.uint8}[t.element_size()])


def _images(device: torch.device, size: dict[str, Any], timing: dict[str, Any],
            checks: dict[str, Any]) -> list[dict[str, Any]]:
    from hideseek.augment import hide_patches, normalize, normalize_and_hide, patch_mask
    from hideseek.augment.reference import hide_patches_loop

    shape = size["images"]
    batch = shape[0]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen).to(device)
    xu = torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8).to(device)
    work = x.clone()
    n, s = x.numel(), x.element_size()
    frac = patch_mask(x).float().mean().item()
    frac16 = patch_mask(x, grid_sizes=(16,)).float().mean().item()
    rows = _Rows("images", device, timing)
    shape_info = dict(shape=list(shape), dtype="float32")

    rows.add("clone", "`x.clone()` (read + write ceiling)", x.clone, batch, "images", 2 * n * s, **shape_info)
    rows.add("fill", "`x.fill_(0)` (write ceiling)", lambda: work.fill_(0), batch, "images", n * s, **shape_info)
    rows.add("hide", "`hide_patches` (out of place)", lambda: hide_patches(x), batch, "images", 2 * n * s,
             hidden_fraction=frac, **shape_info)
    work.copy_(x)
    rows.add("hide_inplace", "`hide_patches(..., inplace=True)`", lambda: hide_patches(work, inplace=True),
             batch, "images", frac * n * s, hidden_fraction=frac, **shape_info)
    rows.add("hide_g16", "`hide_patches`, grid 16", lambda: hide_patches(x, grid_sizes=(16,)), batch,
             "images", 2 * n * s, hidden_fraction=frac16, **shape_info)
    work.copy_(x)
    rows.add("hide_g16_inplace", "`hide_patches`, grid 16, in place",
             lambda: hide_patches(work, grid_sizes=(16,), inplace=True), batch, "images", frac16 * n * s,
             hidden_fraction=frac16, **shape_info)
    slow = dict(min_rounds=3, max_rounds=5, max_time=5.0)
    rows.add("loop_g16", "per-patch Python loop, grid 16, on a copy",
             lambda: hide_patches_loop(x, grid_sizes=(16,)), batch, "images", 2 * n * s,
             hidden_fraction=frac16, timing=slow, **shape_info)
    work.copy_(x)
    rows.add("loop_g16_inplace", "per-patch Python loop, grid 16, in place",
             lambda: hide_patches_loop(work, grid_sizes=(16,), inplace=True), batch, "images",
             frac16 * n * s, hidden_fraction=frac16, timing=slow, **shape_info)
    checks["loop_equals_batched"] = bool(torch.equal(hide_patches_loop(x, grid_sizes=(16,)),
                                                     hide_patches(x, grid_sizes=(16,))))
    try:
        from timm.data.random_erasing import RandomErasing as TimmErasing

        eraser = TimmErasing(probability=0.5, mode="const", device=str(device))
        work.copy_(x)
        rows.add("timm_erasing", "timm `RandomErasing` (p 0.5, one box, in place)", lambda: eraser(work),
                 batch, "images", None, **shape_info)
    except ImportError:
        pass
    try:
        from torchvision.transforms import RandomErasing as TvErasing

        tv = TvErasing(p=0.5, value=0, inplace=True)

        def tv_loop():
            for img in work:
                tv(img)

        work.copy_(x)
        rows.add("tv_erasing", "torchvision `RandomErasing` (p 0.5, per image, in place)", tv_loop, batch,
                 "images", None, **shape_info)
    except ImportError:
        pass

    mean, std = IMAGENET_MEAN, IMAGENET_STD
    u8 = dict(shape=list(shape), dtype="uint8->float32")
    rows.add("normalize", "`normalize` uint8 -> fp32 (what a pipeline does anyway)",
             lambda: normalize(xu, mean, std), batch, "images", n * (1 + 4), **u8)
    rows.add("normalize_then_hide", "`normalize`, then `hide_patches(..., inplace=True)`",
             lambda: hide_patches(normalize(xu, mean, std), inplace=True), batch, "images", n * (1 + 4), **u8)
    rows.add("fused", "`normalize_and_hide` uint8 -> fp32", lambda: normalize_and_hide(xu, mean, std),
             batch, "images", n * (1 + 4), **u8)
    rows.add("fused_bf16", "`normalize_and_hide` uint8 -> bf16",
             lambda: normalize_and_hide(xu, mean, std, out_dtype=torch.bfloat16), batch, "images",
             n * (1 + 2), shape=list(shape), dtype="uint8->bfloat16")
    rows.add("fused_torch", "`normalize_and_hide(..., backend=\"torch\")` (normalise ops, then hide)",
             lambda: normalize_and_hide(xu, mean, std, backend="torch"), batch, "images", n * (1 + 4), **u8)
    nhwc = xu.permute(0, 2, 3, 1).contiguous()
    rows.add("fused_nhwc", "`normalize_and_hide` uint8 NHWC -> fp32 NCHW",
             lambda: normalize_and_hide(nhwc, mean, std, channels_last=True), batch, "images", n * (1 + 4), **u8)
    checks["fused_equals_normalize_then_hide"] = bool(torch.equal(
        _bits(normalize_and_hide(xu, mean, std)), _bits(hide_patches(normalize(xu, mean, std)))))
    if device.type == "cuda":
        cpu_x = x.cpu()
        checks["cuda_masks_equal_cpu"] = bool(torch.equal(patch_mask(x).cpu(), patch_mask(cpu_x)))
        checks["cuda_hide_equals_cpu"] = bool(torch.equal(hide_patches(x).cpu(), hide_patches(cpu_x)))
        for dt in (torch.float32, torch.bfloat16):
            key = f"cuda_fused_{str(dt).split('.')[-1]}_equals_cpu"
            checks[key] = bool(torch.equal(_bits(normalize_and_hide(xu, mean, std, out_dtype=dt).cpu()),
                                           _bits(normalize_and_hide(xu.cpu(), mean, std, out_dtype=dt))))
    return rows.rows


def _frames(device: torch.device, size: dict[str, Any], timing: dict[str, Any]) -> list[dict[str, Any]]:
    from hideseek.augment import frame_mask, hide_frames

    rows = _Rows("frames", device, timing)
    gen = torch.Generator().manual_seed(1)
    for kind, seg in (("clips", 4), ("features", 8)):
        shape = size[kind]
        x = torch.randn(shape, generator=gen).to(device)
        work = x.clone()
        n, s = x.numel(), x.element_size()
        frac = frame_mask(x, seg).float().mean().item()
        what = "clips (B, T, C, H, W)" if kind == "clips" else "snippet features (B, T, D)"
        info = dict(shape=list(shape), dtype="float32", segment_len=seg, hidden_fraction=frac)
        rows.add(f"clone_{kind}", f"`x.clone()`, {what}", x.clone, shape[0], "videos", 2 * n * s, **info)
        rows.add(f"hide_frames_{kind}", f"`hide_frames`, {what}, mean fill", lambda x=x, seg=seg: hide_frames(x, seg),
                 shape[0], "videos", 3 * n * s, **info)
        rows.add(f"hide_frames_{kind}_inplace", f"`hide_frames`, {what}, mean fill, in place",
                 lambda work=work, seg=seg: hide_frames(work, seg, inplace=True), shape[0], "videos",
                 n * s + frac * n * s, **info)
    return rows.rows


def _evaluators(device: torch.device, size: dict[str, Any], timing: dict[str, Any],
                checks: dict[str, Any]) -> list[dict[str, Any]]:
    from hideseek.action.protocols import evaluate, load_ground_truth, load_predictions
    from hideseek.localization.boxes import max_iou_at_thresholds_batch, reference_max_iou_at_thresholds

    from .reference_tmap import activitynet_map_pandas
    from .workloads import cam_like_map, temporal_detection_workload

    rows = _Rows("evaluators", torch.device("cpu"), timing)
    slow = dict(min_rounds=1, max_rounds=3, max_time=3.0, warmup=0)

    n_maps, side = size["box_maps"], size["box_size"]
    rng = np.random.default_rng(2024)
    maps = np.stack([cam_like_map(rng, side) for _ in range(n_maps)])
    gts = []
    for _ in range(n_maps):
        k = int(rng.integers(1, 4))
        x0, y0 = rng.integers(0, side // 2, size=(2, k))
        w, h = rng.integers(side // 14, side // 2, size=(2, k))
        gts.append(np.stack([x0, y0, np.minimum(x0 + w, side - 1), np.minimum(y0 + h, side - 1)], axis=1))
    thresholds = np.arange(0, 1, 0.01)
    info = dict(maps=n_maps, size=side, thresholds=len(thresholds))
    compiled = max_iou_at_thresholds_batch(maps, thresholds, gts)[1]
    rows.add("boxes_compiled", "`max_iou_at_thresholds_batch` (V2 boxes + IoU, 100 thresholds)",
             lambda: max_iou_at_thresholds_batch(maps, thresholds, gts), n_maps, "maps", None,
             baseline="boxes_loop", **info)
    try:
        import cv2  # noqa: F401  (the reference loop's contour finder)

        loop = lambda: np.stack([reference_max_iou_at_thresholds(m, thresholds, g)[1]  # noqa: E731
                                 for m, g in zip(maps, gts)])
        checks["boxes_identical"] = bool(np.array_equal(loop(), compiled))
        rows.add("boxes_loop", "reference loop: `cv2.findContours` + IoU per threshold", loop, n_maps,
                 "maps", None, timing=slow, **info)
    except ImportError:
        checks["boxes_identical"] = None

    n_vid, n_cls, per_vid = size["tmap"]
    gt, preds = temporal_detection_workload(0, n_vid, n_cls, per_vid)
    info = dict(videos=n_vid, classes=n_cls, predictions_per_video=per_vid, protocol="activitynet")
    ours = evaluate(gt, preds, protocol="activitynet")["mAP"]
    ref = activitynet_map_pandas(gt, preds)
    checks["tmap_max_abs_diff"] = max(abs(ours[k] - ref[k]) for k in ours)
    checks["tmap_identical"] = bool(checks["tmap_max_abs_diff"] <= 1e-9)
    g_obj, p_obj = load_ground_truth(gt), load_predictions(preds)
    rows.add("tmap_vectorised", "`protocols.evaluate(protocol=\"activitynet\")`, from parsed JSON",
             lambda: evaluate(gt, preds, protocol="activitynet"), 1, "runs", None, baseline="tmap_pandas",
             **info)
    rows.add("tmap_vectorised_loaded", "`protocols.evaluate`, tables already loaded",
             lambda: evaluate(g_obj, p_obj, protocol="activitynet"), 1, "runs", None, baseline="tmap_pandas",
             **info)
    rows.add("tmap_pandas", "pandas per-class, per-prediction loop (ActivityNet-style)",
             lambda: activitynet_map_pandas(gt, preds), 1, "runs", None, timing=slow, **info)
    return rows.rows


def _training(device: torch.device, size: dict[str, Any], timing: dict[str, Any]) -> list[dict[str, Any]]:
    """Step time of the same model and batch without and with Hide-and-Seek.

    Variants: a float batch already normalised (``plain``) vs the same plus
    ``hide_patches(x, inplace=True)`` (``hide``); and uint8 input normalised in the step
    (``normalize``) vs normalised and hidden in one pass (``fused``). Variants alternate
    round by round so machine drift hits them alike.
    """
    import timm

    from hideseek.augment import hide_patches, normalize, normalize_and_hide

    cfg = size["train"]
    torch.manual_seed(0)
    model = timm.create_model(cfg["model"], pretrained=False, num_classes=1000).to(device)
    channels_last = device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    shape = (cfg["batch"], 3, cfg["size"], cfg["size"])
    gen = torch.Generator().manual_seed(2)
    xu = torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8).to(device)
    x = normalize(xu, IMAGENET_MEAN, IMAGENET_STD)
    target = torch.randint(0, 1000, (shape[0],), generator=gen).to(device)
    epoch = [0]

    def step(inp: torch.Tensor) -> None:
        if channels_last:
            inp = inp.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg["amp"]):
            loss = torch.nn.functional.cross_entropy(model(inp), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def hidden_step() -> None:
        epoch[0] += 1
        step(hide_patches(x, inplace=True, epoch=epoch[0]))

    variants = {
        "plain": lambda: step(x),
        "hide": hidden_step,
        "normalize": lambda: step(normalize(xu, IMAGENET_MEAN, IMAGENET_STD)),
        "fused": lambda: step(normalize_and_hide(xu, IMAGENET_MEAN, IMAGENET_STD, epoch=epoch[0])),
    }
    for fn in variants.values():  # warm-up: allocator, cuDNN autotuning, first-call costs
        fn()
        fn()
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(cfg["rounds"]):
        for key, fn in variants.items():
            times[key].append(measure(fn, device, min_rounds=1, max_rounds=1, min_time=0.0,
                                      warmup=0)["median_s"])
    labels = {"plain": "train step, normalised float batch", "hide": "same + `hide_patches(x, inplace=True)`",
              "normalize": "train step incl. `normalize` of uint8", "fused": "train step incl. `normalize_and_hide`"}
    baseline = {"hide": "plain", "fused": "normalize"}
    rows = []
    for key, ts in times.items():
        arr = np.asarray(ts)
        row = dict(group="training", name=f"train_{key}", label=labels[key], items=shape[0], unit="images",
                   bytes=None, median_s=float(np.median(arr)), min_s=float(arr.min()), mean_s=float(arr.mean()),
                   q1_s=float(np.quantile(arr, 0.25)), q3_s=float(np.quantile(arr, 0.75)), rounds=len(ts),
                   calls_per_round=1, model=cfg["model"], batch=shape[0], image_size=cfg["size"],
                   amp_bf16=cfg["amp"], channels_last=channels_last, gb_per_s=None)
        row["items_per_s"] = shape[0] / row["median_s"]
        if key in baseline:
            base = np.asarray(times[baseline[key]])
            row["baseline"] = f"train_{baseline[key]}"
            # paired per round (the variants alternate), then the median of the paired ratios
            row["overhead"] = float(np.median(arr / base) - 1.0)
        rows.append(row)
    return rows


class _Items(torch.utils.data.Dataset):
    """In-memory images as the image tasks' items (``image``, ``label``, ``index``)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        return {"image": self.images[index], "label": self.labels[index], "index": index}


def _loop(device: torch.device, size: dict[str, Any]) -> list[dict[str, Any]]:
    """An epoch of the project's training loop against a plain hand-written one.

    Same CAM network (a copy of the same initial weights), data (in-memory normalised
    images), batch size, optimiser, dtype (the run's AMP choice for this device), memory
    format and threads. ``project``: :class:`hideseek.engine.Trainer` ``.fit`` with the
    image tasks' step (:func:`hideseek.cam.recipe.image_step`, no augmentation) over a
    dataset of items: shuffling loader, collation, device transfer, autocast, loss
    accumulation, one-cycle schedule and the checkpoint written after every epoch.
    ``plain``: ``for x, y in batches: loss = cross_entropy(model(x), y); zero_grad;
    backward; step`` over the same tensors already batched. The two alternate epoch by
    epoch; ``overhead`` is the median of the paired ratios minus one.
    """
    import copy
    import logging
    import tempfile
    import time

    from hideseek import engine
    from hideseek.cam.model import CAMNet
    from hideseek.cam.recipe import image_step

    cfg = size["loop"]
    n, b, s, classes = cfg["images"], cfg["batch"], cfg["size"], cfg["classes"]
    gen = torch.Generator().manual_seed(5)
    images = torch.randn(n, 3, s, s, generator=gen)
    labels = torch.randint(0, classes, (n,), generator=gen)
    torch.manual_seed(0)
    project_model = CAMNet(cfg["backbone"], classes, feature_stage=cfg["stage"])
    plain_model = copy.deepcopy(project_model).to(device, memory_format=torch.channels_last)
    amp_dtype = engine._amp_dtype(True, device)
    plain_opt = torch.optim.AdamW(plain_model.parameters(), lr=1e-3)
    batches = [(images[i:i + b].to(device).contiguous(memory_format=torch.channels_last), labels[i:i + b].to(device))
               for i in range(0, n, b)]

    def plain_epoch() -> None:
        plain_model.train()
        for x, y in batches:
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                loss = torch.nn.functional.cross_entropy(plain_model(x), y)
            plain_opt.zero_grad(set_to_none=True)
            loss.backward()
            plain_opt.step()

    ctx = engine.RunContext(device=device, seed=0)
    items = _Items(images, labels)
    step = image_step(None, torch.nn.functional.cross_entropy, "label")
    quiet = logging.getLogger("hideseek.bench-loop")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    rounds = cfg["rounds"]
    times: dict[str, list[float]] = {"project": [], "plain": []}
    with tempfile.TemporaryDirectory() as folder:
        opt = torch.optim.AdamW(project_model.parameters(), lr=1e-3)
        steps = -(-n // b) * (rounds + 1)
        schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=steps)
        trainer = engine.Trainer(project_model, opt, ctx=ctx, output_dir=folder, scheduler=schedule,
                                 scheduler_interval="step", amp=True, progress=False, log_name="bench-loop")

        def project_epoch() -> None:
            trainer.fit(items, epochs=trainer.epoch + 1, batch_size=b, step_fn=step)

        for fn in (project_epoch, plain_epoch):  # warm-up: allocator, oneDNN primitives, first-call costs
            fn()
        for _ in range(rounds):
            for key, fn in (("project", project_epoch), ("plain", plain_epoch)):
                _sync_device(device)
                start = time.perf_counter()
                fn()
                _sync_device(device)
                times[key].append(time.perf_counter() - start)
    labels_ = {"project": "hideseek `Trainer.fit`, one epoch (loader, step, schedule, checkpoint)",
               "plain": "hand-written timm loop, one epoch over the same tensors"}
    rows = []
    for key, ts in times.items():
        arr = np.asarray(ts)
        row = dict(group="loop", name=f"loop_{key}", label=labels_[key], items=n, unit="images", bytes=None,
                   median_s=float(np.median(arr)), min_s=float(arr.min()), mean_s=float(arr.mean()),
                   q1_s=float(np.quantile(arr, 0.25)), q3_s=float(np.quantile(arr, 0.75)), rounds=len(ts),
                   calls_per_round=1, model=f"CAMNet({cfg['backbone']}, stage {cfg['stage']})", batch=b,
                   image_size=s, amp_dtype=str(amp_dtype).replace("torch.", "") if amp_dtype else "fp32",
                   channels_last=True, threads=torch.get_num_threads(), gb_per_s=None)
        row["items_per_s"] = n / row["median_s"]
        if key == "project":
            row["baseline"] = "loop_plain"
            row["overhead"] = float(np.median(arr / np.asarray(times["plain"])) - 1.0)
        rows.append(row)
    return rows


def _cams(device: torch.device, size: dict[str, Any]) -> list[dict[str, Any]]:
    """Time per image of each CAM method (:data:`CAM_BENCH_METHODS`) through ``CAMNet.cams``, as
    a ratio to vanilla CAM measured in the same process.

    Per model (random weights: the cost does not depend on them; 1000 classes, GT-style class
    targets, fp32), methods alternate call by call within each round, so machine drift hits
    them alike; a row's ``ratio_to_cam`` is the median over rounds of its time per image over
    vanilla CAM's time per image in the same round. ScoreCAM and AblationCAM run one forward
    pass per feature channel per image, so they get ``per_channel_images`` images, one round
    (the first, with no warm-up call), and only on ``per_channel_models``; on the other models
    their rows are absent (``skipped`` in vanilla CAM's row says which).
    """
    from hideseek.cam.model import CAMNet

    cfg = size["cams"]
    rows: list[dict[str, Any]] = []
    gen = torch.Generator().manual_seed(3)
    x_all = torch.randn((cfg["batch"], 3, cfg["size"], cfg["size"]), generator=gen).to(device)
    for backbone in cfg["models"]:
        torch.manual_seed(0)
        model = CAMNet(backbone, num_classes=1000).to(device).eval()
        classes = torch.randint(0, 1000, (cfg["batch"],), generator=gen).to(device)
        per_channel = backbone in cfg["per_channel_models"]
        methods = [m for m in CAM_BENCH_METHODS if per_channel or m not in PER_CHANNEL_METHODS]
        n_small = min(cfg["per_channel_images"], cfg["batch"])

        for method in methods:  # warm-up: first-call costs (allocator, hooks, package imports), on one image;
            if method not in PER_CHANNEL_METHODS:  # not the per-channel ones (hundreds of forwards: their
                model.cams(x_all[:1], classes=classes[:1], method=method)  # first-call cost is noise there)
        times: dict[str, list[tuple[float, int]]] = {m: [] for m in methods}
        ratios: dict[str, list[float]] = {m: [] for m in methods}
        for r in range(cfg["rounds"]):
            for method in methods:
                if method in PER_CHANNEL_METHODS and r > 0:
                    continue
                n = n_small if method in PER_CHANNEL_METHODS else cfg["batch"]
                times[method].append((_time_cams(model, x_all[:n], classes[:n], method, device), n))
            cam_t, cam_n = times["cam"][-1]
            for method in methods:
                if len(times[method]) == r + 1:
                    t, n = times[method][-1]
                    ratios[method].append((t / n) / (cam_t / cam_n))
        channels = int(model.classifier.weight.shape[1])
        for method in methods:
            per_image = np.asarray([t / n for t, n in times[method]])
            n = times[method][0][1]
            row = dict(group="cams", name=f"cams_{backbone}_{method}", label=f"`{method}`", items=n, unit="images",
                       bytes=None, median_s=float(np.median(per_image)) * n, min_s=float(per_image.min()) * n,
                       mean_s=float(per_image.mean()) * n, q1_s=float(np.quantile(per_image, 0.25)) * n,
                       q3_s=float(np.quantile(per_image, 0.75)) * n, rounds=len(per_image), calls_per_round=1,
                       gb_per_s=None, model=backbone, method=method, image_size=cfg["size"], images=n,
                       channels=channels, classes=1000, dtype="float32",
                       per_image_s=float(np.median(per_image)), ratio_to_cam=float(np.median(ratios[method])),
                       baseline=f"cams_{backbone}_cam")
            row["items_per_s"] = 1.0 / row["per_image_s"]
            if method == "cam":
                row["skipped"] = [] if per_channel else list(PER_CHANNEL_METHODS)
            rows.append(row)
    return rows


def _time_cams(model: torch.nn.Module, x: torch.Tensor, classes: torch.Tensor, method: str,
               device: torch.device) -> float:
    """Seconds of one ``model.cams(x, classes=classes, method=method)`` call."""
    return measure(lambda: model.cams(x, classes=classes, method=method), device, min_rounds=1, max_rounds=1,
                   min_time=0.0, warmup=0)["median_s"]


def _sync_device(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_suite(device: str = "cpu", size: str = "full", groups: Sequence[str] = DEFAULT_GROUPS,
              progress: bool = True) -> dict[str, Any]:
    """Run the benchmark groups on ``device`` and return the result document (JSON-ready)."""
    from tqdm import tqdm

    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but torch sees no CUDA device")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu or cuda, got {device!r}")
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise ValueError(f"unknown benchmark groups {unknown}; expected a subset of {GROUPS}")
    spec = SIZES[size][dev.type]
    timing = dict(min_rounds=5, max_rounds=200, min_time=0.3, warmup=1) if size == "full" else \
        dict(min_rounds=2, max_rounds=2, min_time=0.0, warmup=1)
    doc: dict[str, Any] = {"suite": "hideseek-bench", "size": size, "machine": machine_info(dev),
                           "loadavg_before": loadavg(), "workloads": {k: (list(v) if isinstance(v, tuple) else v)
                                                                      for k, v in spec.items()},
                           "rows": [], "checks": {}}
    for group in tqdm(list(groups), desc=f"bench {dev.type}", disable=not progress):
        if group == "images":
            doc["rows"] += _images(dev, spec, timing, doc["checks"])
        elif group == "frames":
            doc["rows"] += _frames(dev, spec, timing)
        elif group == "evaluators":
            doc["rows"] += _evaluators(dev, spec, timing, doc["checks"])
        elif group == "loop":
            doc["rows"] += _loop(dev, spec)
        elif group == "cams":
            doc["rows"] += _cams(dev, spec)
        else:
            doc["rows"] += _training(dev, spec, timing)
    doc["loadavg_after"] = loadavg()
    return doc
