"""``hideseek action``: weakly-supervised temporal action localization.

Verbs: evaluate, extract-features, convert, train, detect, demo, synthetic.
"""

from __future__ import annotations

import argparse
import sys

from hideseek.action.choices import (
    AUGMENTATIONS,
    CONVERT_FORMATS,
    DATASETS,
    MODALITIES,
    ON_ERROR_FLAGS,
    POOLS,
    PROTOCOLS,
    SCORES,
    UNITS,
)
from hideseek.cli.common import UserError, add_overwrite_option, check_output, parse_params, user_errors, write_json
from hideseek.cli.demo import room_demo


def _print_result(result: dict, deviations: bool = True) -> None:
    print(f"protocol {result['protocol']}")
    if result.get("units") == "snippets":
        rate = result["snippets_per_second"]
        print(f"units snippets, {rate:g} per second (GT and ambiguous seconds -> int(round(seconds * {rate:g})))")
    elif result.get("units"):
        print(f"units {result['units']}")
    for tiou, value in result["mAP"].items():
        print(f"mAP@{tiou:<5} {value:.2f}")
    for span, value in result["average_mAP"].items():
        print(f"avg {span:<8} {value:.2f}")
    ignored = result["ignored_predictions"]
    if ignored.get("total"):
        print(f"ignored predictions: {ignored['total']} (unknown video {ignored.get('unknown_video', 0)}, "
              f"unknown label {ignored.get('unknown_label', 0)})")
    for note in result.get("notes", []):
        print(f"note: {note}")
    if deviations:
        for deviation in result.get("deviations", []):
            print(f"deviation from the reference: {deviation}")
    print(f"seconds {result['seconds']:.3f}")


class _EvaluateHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each protocol's default thresholds from its record, importing the records
    only when help is printed (they need NumPy; the parser is built on every command)."""

    def _get_help_string(self, action):
        if action.dest in ("units", "snippets_per_second"):  # their help says the default
            return action.help
        if action.dest != "tiou":
            return super()._get_help_string(action)
        from hideseek.action.protocols import PROTOCOL_RECORDS

        defaults = "; ".join(f"{name} {' '.join(f'{t:g}' for t in record.default_tiou)}"
                             for name, record in PROTOCOL_RECORDS.items())
        return f"{action.help} (default: the protocol's own: {defaults})"


class _TrainHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Shows the thresholds the trainer scores every protocol at, from the protocols module."""

    def _get_help_string(self, action):
        if action.dest != "tiou":
            return super()._get_help_string(action)
        from hideseek.action.protocols import DEFAULT_TIOU

        return f"{action.help} (default: {' '.join(f'{t:g}' for t in DEFAULT_TIOU)})"


def _detect_overrides(args) -> dict:
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


def _evaluate(args) -> int:
    with user_errors(ValueError):
        check_output(args.output)
    if args.checkpoint:
        from hideseek.action.train import evaluate_checkpoint

        with user_errors(FileNotFoundError, ValueError):
            results = evaluate_checkpoint(args.checkpoint, records=args.records, output_dir=args.output_dir,
                                          device=args.device, detect=_detect_overrides(args),
                                          progress=not args.no_progress)
        print(f"video mAP {results['video mAP']:.2f}")
        if "predictions" in results:
            print(f"predictions {results['predictions']}")
        for result in results.values():
            if isinstance(result, dict) and "protocol" in result:
                _print_result(result, deviations=False)
        write_json({k: v for k, v in results.items() if k != "cams"}, args.output)
        return 0
    if not (args.ground_truth and args.predictions):
        raise UserError("give --checkpoint, or --ground-truth and --predictions")
    from hideseek.action.protocols import evaluate

    with user_errors(FileNotFoundError, ValueError):
        result = evaluate(args.ground_truth, args.predictions, protocol=args.protocol,
                          tiou=None if args.tiou is None else tuple(args.tiou), ambiguous=args.ambiguous,
                          subset=None if args.subset == "all" else args.subset, empty_class_bug=args.empty_class_bug,
                          units=args.units, snippets_per_second=args.snippets_per_second)
    write_json(result, args.output)
    _print_result(result)
    return 0


def _extract_features(args) -> int:
    from hideseek.action.features import extract_features
    from hideseek.inputs import check_writable_dir

    with user_errors(FileNotFoundError, ValueError, ImportError, RuntimeError):
        check_writable_dir(args.output, "--output folder")
        summary = extract_features(
            args.video_dir, args.output, args.backbone, pretrained_file=args.pretrained_file,
            random_init=args.random_init, snippet=args.snippet, fps=None if args.native_fps else args.fps,
            size=args.size, batch_size=args.batch_size, device=args.device,
            on_error=ON_ERROR_FLAGS[args.on_error], progress=not args.no_progress,
        )
    print(f"{len(summary.extracted)} extracted, {len(summary.skipped)} already done, "
          f"{len(summary.failed)} failed -> {summary.output_dir}")
    for vid, message in summary.failed.items():
        print(f"failed {vid}: {message}", file=sys.stderr)
    return 0


def _convert(args) -> int:
    from hideseek.action import thumos

    with user_errors(FileNotFoundError, ValueError):
        check_output(args.output)
        if args.format == "thumos14":
            gt, ambiguous = thumos.thumos14_ground_truth(args.annotations, args.subset,
                                                         exclude_broken=args.exclude_broken)
        else:
            _, annotations, _, ambiguous = thumos.read_wtalc_annotations(
                args.annotations, None if args.subset == "all" else args.subset)
            if args.exclude_broken:
                annotations = {v: a for v, a in annotations.items() if v not in thumos.THUMOS14_BROKEN_TEST_VIDEOS}
            gt = thumos.to_activitynet(annotations)
    write_json(gt, args.output)
    database = gt["database"]
    count = sum(len(v["annotations"]) for v in database.values())
    kept = sum(len(s) for v, s in ambiguous.items() if v in database)
    print(f"{len(database)} videos, {count} segments, {kept} ambiguous segments -> {args.output}")
    return 0


def _config(args):
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
    aug_params = parse_params(args.aug_param)
    if args.augmentation == "frame-has" and not aug_params:
        aug_params = {"segment_len": 4, "p_hide": 0.5}
    return ActionConfig(
        dataset=args.dataset, synthetic=synthetic, features_dir=args.features_dir, ground_truth=args.ground_truth,
        stride_s=args.stride_s, snippet_s=args.snippet_s, train_subset=args.train_subset,
        test_subset=args.test_subset, ambiguous=args.ambiguous, modality=args.modality, hidden=args.hidden,
        layers=args.layers,
        kernel_size=args.kernel_size, dropout=args.dropout, pool=args.pool, topk_ratio=args.topk_ratio,
        augmentation=args.augmentation, aug_params=aug_params,
        epochs=base.epochs if args.quick and args.epochs is None else (
            ActionConfig.epochs if args.epochs is None else args.epochs),
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, seed=args.seed,
        num_workers=args.workers, device=args.device, threads=args.threads or None,
        detect=_detect_overrides(args),
        tiou=ActionConfig.tiou if args.tiou is None else tuple(args.tiou))


def _train(args) -> int:
    from hideseek.action.train import train

    with user_errors(FileNotFoundError, ValueError):
        config = _config(args)
        output = args.output or f"runs/action-{config.dataset}-{config.augmentation}-s{config.seed}"
        out = train(config, output, records=args.records, resume=args.resume, overwrite=args.overwrite,
                    progress=not args.no_progress,
                    evaluate=not args.no_eval)
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


def _detect(args) -> int:
    from hideseek.action.train import evaluate_checkpoint

    with user_errors(FileNotFoundError, ValueError):
        results = evaluate_checkpoint(args.checkpoint, output_dir=args.output_dir, device=args.device,
                                      detect=_detect_overrides(args), progress=not args.no_progress)
    print(f"predictions {results['predictions']}")
    return 0


def _synthetic(args) -> int:
    from hideseek.action.synthetic import SyntheticVideoConfig, write_benchmark

    config = SyntheticVideoConfig(num_classes=args.num_classes, train=args.train, test=args.test, seed=args.seed)
    root = write_benchmark(args.output, config, progress=not args.no_progress)
    print(f"{root}: {config.train} train / {config.test} test videos, gt.json, features/ (stride {config.stride_s} s)")
    return 0


def _add_detect_options(parser) -> None:
    group = parser.add_argument_group("detection (temporal CAM -> segments)")
    group.add_argument("--cam-thresholds", type=float, nargs="+",
                       help="CAM thresholds (relative to the max unless --absolute)")
    group.add_argument("--absolute", action="store_true", help="thresholds compare the activation itself")
    group.add_argument("--class-threshold", type=float, help="keep classes whose video score is >= this")
    group.add_argument("--score", choices=SCORES, help="segment score from the activation")
    group.add_argument("--video-weight", type=float, help="weight of the video class score in the segment score")
    group.add_argument("--min-length-s", type=float, help="drop segments shorter than this (seconds)")
    group.add_argument("--nms-tiou", type=float, help="class-wise NMS tIoU")


def add_parser(rooms) -> None:
    room = rooms.add_parser("action", help="weakly-supervised temporal action localization",
                            description="Temporal action localization: temporal CAM training, detection, "
                                        "evaluation protocols.")
    verbs = room.add_subparsers(dest="verb", metavar="VERB", required=True)
    ev = verbs.add_parser(
        "evaluate",
        help="temporal detection mAP under one reference protocol (ActivityNet, THUMOS14 kits, W-TALC)",
        description=(
            "Score ActivityNet-style predictions ({'results': ...}) against ground truth ({'database': ...}) "
            "exactly as one reference evaluation code does (--protocol; each protocol's rules, default "
            "thresholds and remaining deviations are its record in hideseek.action.protocols and are "
            "printed with the result); mAP in percent per tIoU, averages over 0.1:0.5, 0.3:0.7 and 0.1:0.7 "
            "where evaluated, per-class AP. With --checkpoint: detect on the run's test videos and score "
            "every protocol of the run."
        ),
        formatter_class=_EvaluateHelp,
    )
    ev.add_argument("--ground-truth", help="ground-truth JSON (ActivityNet layout)")
    ev.add_argument("--predictions", help="predictions JSON ({'results': {video: [...]}})")
    ev.add_argument("--protocol", default=PROTOCOLS[0], choices=PROTOCOLS)
    ev.add_argument("--subset", default="test", help="ground-truth subset to keep ('all' keeps every video)")
    ev.add_argument("--tiou", type=float, nargs="+", help="tIoU thresholds")
    ev.add_argument("--ambiguous", help="Ambiguous_test.txt (video start end): used by the THUMOS14 kits and wtalc")
    ev.add_argument("--empty-class-bug", action="store_true",
                    help="wtalc: reproduce W-TALC's mAP 0 at every tIoU when a class has no predictions "
                         "(reported in the output either way)")
    ev.add_argument("--units", choices=UNITS,
                    help="wtalc: 'snippets' scores snippet ranges [start, end) on snippet indices as W-TALC does "
                         "(each prediction's 'snippets' field, else its segment; GT and ambiguous seconds "
                         "converted by int(round(seconds * --snippets-per-second))); default: snippets when the "
                         "predictions carry 'snippets' ranges (as detect and train write them), else seconds")
    ev.add_argument("--snippets-per-second", type=float,
                    help="units snippets: W-TALC's factor; default: the predictions' own 'snippets_per_second', "
                         "else 25/16 (I3D: 25 fps, 16-frame snippets)")
    ev.add_argument("--output", help="write the result JSON here")
    ev.add_argument("--checkpoint", help="a run's last.pt: detect and score its test videos instead")
    ev.add_argument("--output-dir",
                    help="--checkpoint: where predictions and per-protocol results go (default: the run folder)")
    ev.add_argument("--records", help="--checkpoint: append one record per protocol here")
    ev.add_argument("--device", help="--checkpoint: device override")
    ev.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_detect_options(ev)
    ev.set_defaults(handler=_evaluate)

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
    fx.add_argument("--backbone", required=True,
                    help="timm model name (tf_efficientnet_lite0 has offline ImageNet weights)")
    fx.add_argument("--pretrained-file", help="local weights file for the backbone")
    fx.add_argument("--random-init", action="store_true", help="random weights (smoke tests only)")
    fx.add_argument("--snippet", type=int, default=16, help="frames per snippet")
    fx.add_argument("--fps", type=float, default=25.0, help="resample every video to this frame rate first")
    fx.add_argument("--native-fps", action="store_true", help="keep each video's own frame rate (ignores --fps)")
    fx.add_argument("--size", type=int, help="square input size (default: the backbone's own)")
    fx.add_argument("--batch-size", type=int, default=64, help="frames per forward pass (whole snippets)")
    fx.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    fx.add_argument("--on-error", choices=tuple(ON_ERROR_FLAGS), default="skip",
                    help="an undecodable video: report and skip, or stop")
    fx.add_argument("--output", required=True, help="output folder")
    fx.add_argument("--no-progress", action="store_true", help="no progress bar")
    fx.set_defaults(handler=_extract_features)

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
    cv.add_argument("format", choices=CONVERT_FORMATS, help="annotation layout")
    cv.add_argument("annotations", metavar="ANNOT_DIR", help="folder of the annotation files")
    cv.add_argument("--subset", default="test", help="test or validation ('all' for every W-TALC video)")
    cv.add_argument("--exclude-broken", action="store_true",
                    help="leave out test videos 270, 1292 and 1496 (the usual 210/212-video test set)")
    cv.add_argument("--output", required=True, help="gt.json to write")
    cv.set_defaults(handler=_convert)

    tr = verbs.add_parser(
        "train",
        help="train a temporal CAM model (then detect, score every protocol, append records)",
        description=(
            "Train a temporal CAM on snippet features from video labels, with or without frame hiding "
            "('frame-has'), then detect segments on the test videos, score them under every protocol "
            f"({', '.join(PROTOCOLS)}) at the same tIoU thresholds (--tiou) and append one record per protocol "
            "to --records."
        ),
        formatter_class=_TrainHelp,
    )
    tr.add_argument("--dataset", default="synthetic", choices=DATASETS,
                    help="embedded synthetic video benchmark; <features-dir>/<video>.npy + gt.json; an "
                         "extract-features output; the BaS-Net/CoLA I3D layout (gt.json, split files, features/); "
                         "W-TALC's joint-feature file")
    tr.add_argument("--features-dir",
                    help="features: folder of <video>.npy (T x D); extracted, i3d-split, wtalc: the layout's root")
    tr.add_argument("--modality", default="both", choices=MODALITIES, help="i3d-split: which I3D stream(s)")
    tr.add_argument("--ground-truth", help="features: ActivityNet-style gt.json with subsets")
    tr.add_argument("--stride-s", type=float,
                    help="features: seconds between snippet starts (16 frames at 25 fps: 0.64)")
    tr.add_argument("--snippet-s", type=float, help="features: seconds one snippet covers (default: the stride)")
    tr.add_argument("--train-subset", default="train", help="GT subset to train on (THUMOS14: validation)")
    tr.add_argument("--test-subset", default="test", help="GT subset to detect and score")
    tr.add_argument("--ambiguous", help="Ambiguous_test.txt for the protocols that use it (THUMOS14 kits, wtalc)")
    tr.add_argument("--synthetic-train", type=int, help="synthetic: training videos")
    tr.add_argument("--synthetic-test", type=int, help="synthetic: test videos")
    tr.add_argument("--num-classes", type=int, help="synthetic: number of classes")
    tr.add_argument("--hidden", type=int, default=128, help="channels of the hidden temporal convolutions")
    tr.add_argument("--layers", type=int, default=2, help="hidden temporal convolutions")
    tr.add_argument("--kernel-size", type=int, default=1, help="temporal kernel (odd)")
    tr.add_argument("--dropout", type=float, default=0.5)
    tr.add_argument("--pool", default="topk", choices=POOLS, help="video-level pooling of the temporal CAM")
    tr.add_argument("--topk-ratio", type=float, default=8.0, help="top-k pooling: k = ceil(T / ratio)")
    tr.add_argument("--augmentation", default="none", choices=AUGMENTATIONS, help="registry name")
    tr.add_argument("--aug-param", action="append", default=[], metavar="KEY=VALUE",
                    help="augmentation parameter, repeatable (frame-has default: segment_len=4 p_hide=0.5)")
    tr.add_argument("--epochs", type=int, help="training epochs (default 40; --quick: 4)")
    tr.add_argument("--batch-size", type=int, default=16)
    tr.add_argument("--lr", type=float, default=1e-3)
    tr.add_argument("--weight-decay", type=float, default=5e-4)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    tr.add_argument("--device", default="auto")
    tr.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (0: leave torch's setting); the model is tiny, one is fastest")
    tr.add_argument("--tiou", type=float, nargs="+",
                    help="tIoU thresholds, the same for every protocol so that their rows compare")
    tr.add_argument("--output",
                    help="run folder (checkpoint, log, predictions); default runs/action-<dataset>-<aug>-s<seed>")
    tr.add_argument("--records", default="runs/records.jsonl", help="result store to append to")
    tr.add_argument("--resume", action="store_true", help="continue from <output>/last.pt")
    add_overwrite_option(tr)
    tr.add_argument("--no-eval", action="store_true", help="train only")
    tr.add_argument("--no-progress", action="store_true", help="no progress bars")
    tr.add_argument("--quick", action="store_true", help="tiny synthetic run (16 train / 8 test videos, 4 epochs)")
    _add_detect_options(tr)
    tr.set_defaults(handler=_train)

    det = verbs.add_parser(
        "detect",
        help="write a run's test-video detections as ActivityNet-style prediction JSON",
        description="Temporal CAM -> segments in seconds for the test videos of a trained run.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    det.add_argument("--checkpoint", required=True, help="a run's last.pt")
    det.add_argument("--output-dir",
                     help="where predictions-<subset>.json and gt-<subset>.json go (default: the run folder)")
    det.add_argument("--device", help="device override")
    det.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_detect_options(det)
    det.set_defaults(handler=_detect)

    demo = verbs.add_parser(
        "demo",
        help="temporal CAM with and without frame hiding on the synthetic video benchmark",
        description=(
            "Generate the synthetic video benchmark (mp4 -> decord -> snippet features), train a baseline "
            "temporal CAM and a frame-hiding one (3 seeds each, CPU is enough), print mAP per tIoU under "
            "every protocol and write demo-action.csv/.md/.tex/.png and records.jsonl."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    demo.add_argument("--quick", action="store_true", help="tiny version (well under a minute), for tests")
    demo.add_argument("--output", default="results/demo-action", help="where tables, figure, runs and records go")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.set_defaults(handler=room_demo, demo_room="action")

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
    syn.set_defaults(handler=_synthetic)
