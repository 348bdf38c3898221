"""What the verbs of every room share: the one user-error path, JSON and text output, ``key=value`` options."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path


class UserError(Exception):
    """A mistake in what the command was given: :func:`hideseek.cli.main` prints ``error: <message>``
    on stderr and returns 2."""


@contextlib.contextmanager
def user_errors(*kinds: type[BaseException]) -> Iterator[None]:
    """Turn the exceptions ``kinds`` raised inside the block into :class:`UserError` (same message).

    A verb names the errors that mean "bad input" where it calls into its room, e.g.
    ``with user_errors(FileNotFoundError, ValueError): ...``; anything else keeps its traceback.
    """
    try:
        yield
    except kinds as error:
        raise UserError(str(error)) from error


def is_main_rank() -> bool:
    """False on the ranks other than 0 of a ``torchrun`` launch (they hold the same numbers)."""
    return int(os.environ.get("RANK", "0")) == 0


def check_output(output: str | None, what: str = "--output") -> None:
    """Refuse an ``output`` file that cannot be written, before any work starts (nothing when empty)."""
    if output:
        from hideseek.inputs import check_writable

        check_writable(output, what)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename: a full disk or a kill
    leaves the old file (or none), never half a file; the error names the path."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise UserError(f"{path}: cannot write ({error.strerror or error})") from None
    return path


def write_json(result: dict, output: str | None) -> None:
    """Write ``result`` as indented JSON to ``output`` (parents created); nothing when ``output`` is empty."""
    text = json.dumps(result, indent=2, sort_keys=False)
    if output:
        write_text_atomic(output, text + "\n")


def write_or_print(text: str, output: str | None) -> None:
    """Write ``text`` to ``output`` (parents created) and say so, or print it when there is no ``output``."""
    if output:
        path = write_text_atomic(output, text)
        print(f"wrote {path}")
    else:
        print(text, end="")


def parse_params(pairs: list[str]) -> dict:
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


# --------------------------------------------------------------------------- image runs (loc train, seg train)


def add_synthetic_size_options(parser, what: str) -> None:
    """``--synthetic-{train,val,test}``, ``--num-classes``, ``--image-size`` of a synthetic benchmark."""
    parser.add_argument("--synthetic-train", type=int, help=f"synthetic: training {what}")
    parser.add_argument("--synthetic-val", type=int, help=f"synthetic: val {what}")
    parser.add_argument("--synthetic-test", type=int, help=f"synthetic: test {what}")
    parser.add_argument("--num-classes", type=int, help="synthetic: number of classes")
    parser.add_argument("--image-size", type=int, help="synthetic: image side in pixels")


def add_image_run_options(parser) -> None:
    """The options of :class:`hideseek.cam.recipe.ImageRunConfig`'s fields (model, augmentation,
    optimisation, input size, device), shared by every image task's ``train``."""
    from hideseek.cam.choices import OPTIMIZERS, POOLS, SCHEDULES

    parser.add_argument("--backbone", default="resnet18", help="any timm model name")
    parser.add_argument("--pool", default="avg", choices=POOLS, help="global pooling (GAP, GMP, both)")
    parser.add_argument("--feature-stage", type=int, default=2,
                        help="cut the backbone after this timm feature stage (-1: whole backbone)")
    parser.add_argument("--large-feature-map", action="store_true",
                        help="drop the last stride (as the WSOL benchmark)")
    parser.add_argument("--pretrained-file", help="local backbone weights (nothing is downloaded)")
    parser.add_argument("--augmentation", default="none",
                        help="registry name: none, has, has-mixed, cutout, random-erasing, feature-has, ...")
    parser.add_argument("--aug-param", action="append", default=[], metavar="KEY=VALUE",
                        help="augmentation parameter, repeatable (e.g. grid_sizes=[0,16,32])")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--optimizer", default="adamw", choices=OPTIMIZERS)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--schedule", default="onecycle", choices=SCHEDULES, help="per-step LR schedule (peak --lr)")
    parser.add_argument("--crop-size", type=int, default=96, help="training crop and evaluation size")
    parser.add_argument("--resize-size", type=int, help="training resize before the random crop (default: crop size)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-amp", action="store_true", help="no mixed precision")


def apply_quick(args, train: int, val: int, test: int) -> None:
    """``--quick``: a tiny synthetic run (4 classes, 64 px, 2 epochs) unless sizes were given."""
    if not args.quick:
        return
    args.synthetic_train = args.synthetic_train or train
    args.synthetic_val = args.synthetic_val or val
    args.synthetic_test = args.synthetic_test or test
    args.num_classes = args.num_classes or 4
    args.image_size = args.image_size or 64
    args.crop_size, args.epochs, args.batch_size = 64, 2, 32
    if args.augmentation.startswith("has") and not args.aug_param:
        args.aug_param = ["grid_sizes=[0,8,16]"]


def synthetic_sizes(args) -> dict:
    """The synthetic benchmark's size overrides that were given."""
    given = (("train", args.synthetic_train), ("val", args.synthetic_val), ("test", args.synthetic_test),
             ("num_classes", args.num_classes), ("image_size", args.image_size))
    return {key: value for key, value in given if value is not None}


def image_run_fields(args) -> dict:
    """:class:`~hideseek.cam.recipe.ImageRunConfig` fields from the options of :func:`add_image_run_options`."""
    return dict(backbone=args.backbone, pool=args.pool,
                feature_stage=None if args.feature_stage < 0 else args.feature_stage,
                large_feature_map=args.large_feature_map, pretrained_file=args.pretrained_file,
                augmentation=args.augmentation, aug_params=parse_params(args.aug_param), epochs=args.epochs,
                batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr, weight_decay=args.weight_decay,
                schedule=args.schedule, resize_size=args.resize_size or args.crop_size, crop_size=args.crop_size,
                seed=args.seed, num_workers=args.workers, device=args.device, amp=not args.no_amp)
