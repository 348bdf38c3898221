"""``hideseek seg``: weakly-supervised semantic segmentation (train, predict, evaluate, demo)."""

from __future__ import annotations

import argparse

from hideseek.cam.choices import CAM, CAM_METHOD_NAMES, ROLLOUT
from hideseek.cli.common import (
    UserError,
    add_image_run_options,
    add_synthetic_size_options,
    apply_quick,
    check_output,
    image_run_fields,
    is_main_rank,
    synthetic_sizes,
    user_errors,
    write_json,
)
from hideseek.cli.demo import room_demo
from hideseek.segmentation.choices import DATASETS


def _config(args):
    from hideseek.segmentation.train import SegConfig

    apply_quick(args, train=128, val=48, test=48)
    return SegConfig(dataset=args.dataset, data_root=args.data_root, scenes=synthetic_sizes(args),
                     train_split=args.train_split, eval_splits=tuple(args.eval_splits) if args.eval_splits else None,
                     threshold_interval=args.threshold_interval, include_difficult=not args.no_difficult,
                     cam_method=args.cam_method, **image_run_fields(args))

def _print_results(results: dict) -> None:
    for split, result in results.items():
        policy = result["policy"]
        source = f", from {policy['source']}" if policy.get("source") else ""
        print(f"{split:<18} mIoU {result['mIoU']:6.2f}  pixel_acc {result['pixel_acc']:6.2f}  "
              f"bg_threshold {result['bg_threshold']:.2f} ({policy['name']}{source})  images {result['num_images']}")


def _train(args) -> int:
    from hideseek.segmentation.train import train

    check_output(args.json, "--json")
    with user_errors(FileNotFoundError, ValueError):
        config = _config(args)
        if config.cam_method == ROLLOUT:  # refused before training, not after it
            from hideseek.cam.model import check_rollout_backbone

            check_rollout_backbone(config.backbone)
        output = args.output or f"runs/seg-{args.dataset}-{args.backbone}-{args.augmentation}-s{args.seed}"
        out = train(config, output, records=args.records, resume=args.resume, overwrite=args.overwrite,
                    evaluate=not args.no_eval)
    if is_main_rank():
        print(f"checkpoint: {out['checkpoint']}")
        _print_results(out["results"])
        write_json(out["results"], args.json)
        if args.records and out["results"]:
            print(f"records appended to {args.records}")
    return 0


def _predict(args) -> int:
    from hideseek.inputs import check_writable_dir
    from hideseek.segmentation.train import predict

    check_writable_dir(args.output, "--output folder")
    with user_errors(FileNotFoundError, ValueError):
        out = predict(args.checkpoint, args.output, split=args.split, threshold=args.threshold,
                      calibration=args.calibration, data_root=args.data_root, device=args.device,
                      cam_method=args.cam_method)
    print(f"{out['num_images']} label PNGs of split {out['split']!r} in {args.output} "
          f"(bg_threshold {out['bg_threshold']}, policy {out['policy']['name']})")  # a fixed one as given
    return 0


def _evaluate(args) -> int:
    check_output(args.output)
    if args.checkpoint:
        from hideseek.segmentation.train import evaluate_checkpoint

        with user_errors(FileNotFoundError, ValueError):
            results = evaluate_checkpoint(args.checkpoint, splits=args.splits, records=args.records,
                                          data_root=args.data_root, device=args.device, cam_method=args.cam_method)
        if is_main_rank():
            write_json(results, args.output)
            _print_results(results)
        return 0
    from hideseek.segmentation.evaluate import evaluate_label_dirs

    if args.cam_method is not None:
        raise UserError("--cam-method applies to --checkpoint (label PNGs are scored as they are)")
    if not (args.predictions and args.ground_truth):
        raise UserError("give --predictions DIR and --ground-truth DIR (or --checkpoint)")
    with user_errors(FileNotFoundError, ValueError):
        result = evaluate_label_dirs(args.predictions, args.ground_truth, num_classes=args.num_classes,
                                     ignore_index=None if args.ignore_index < 0 else args.ignore_index,
                                     split_file=args.split_file, progress=True)
    write_json(result, args.output)
    width = max(len(name) for name in result["IoU"])
    for name, value in result["IoU"].items():
        print(f"{name:<{width}}  {value:6.2f}")
    print(f"{'mIoU':<{width}}  {result['mIoU']:6.2f}")
    print(f"{'pixel_acc':<{width}}  {result['pixel_acc']:6.2f}")
    print(f"{'images':<{width}}  {result['num_images']}")
    return 0


def add_parser(rooms) -> None:
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
    tr.add_argument("--dataset", default="synthetic", choices=DATASETS, help="synthetic scenes or VOC 2012")
    tr.add_argument("--data-root", help="voc: VOCdevkit/VOC2012")
    tr.add_argument("--train-split", default="train", help="voc: training list (train, train_aug, ...)")
    tr.add_argument("--eval-splits", nargs="+", help="splits to score (default: train val [test])")
    tr.add_argument("--no-difficult", action="store_true", help="voc: objects marked difficult do not count as labels")
    add_synthetic_size_options(tr, "scenes")
    add_image_run_options(tr)
    tr.add_argument("--threshold-interval", type=float, default=0.01, help="background threshold grid step")
    tr.add_argument("--cam-method", default=CAM, choices=CAM_METHOD_NAMES,
                    help="CAM method of the pseudo-masks (vanilla CAM, the grad-cam package's, rollout for ViTs)")
    tr.add_argument("--output", help="run folder (default runs/seg-<dataset>-<backbone>-<aug>-s<seed>)")
    tr.add_argument("--records", default="runs/records.jsonl", help="result store to append to")
    tr.add_argument("--json", help="write the results per split as JSON here (a val entry calibrates seg predict)")
    tr.add_argument("--resume", action="store_true", help="continue from <output>/last.pt")
    tr.add_argument("--no-eval", action="store_true", help="train only")
    tr.add_argument("--quick", action="store_true", help="tiny synthetic run (4 classes, 64 px, 2 epochs)")
    tr.set_defaults(handler=_train)

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
    thr.add_argument("--threshold", type=float, help="fixed background threshold in [0, 1), used as given, e.g. 0.2")
    thr.add_argument("--calibration", help="result JSON with the val oracle's bg_threshold (seg train --json)")
    pr.add_argument("--data-root", help="override the run's data root")
    pr.add_argument("--device", help="cpu, cuda, ...")
    pr.add_argument("--cam-method", choices=CAM_METHOD_NAMES,
                    help="CAM method of the pseudo-masks (default: the run's own)")
    pr.set_defaults(handler=_predict)

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
    ev.add_argument("--cam-method", choices=CAM_METHOD_NAMES,
                    help="with --checkpoint: CAM method of the pseudo-masks (default: the run's own)")
    ev.add_argument("--output", help="write the result JSON here")
    ev.set_defaults(handler=_evaluate)

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
    demo.set_defaults(handler=room_demo, demo_room="seg")
