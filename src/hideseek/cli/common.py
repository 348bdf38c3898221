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
    parser.add_argument("--epochs", type=int, help="training epochs (default 10; --quick: 2)")
    parser.add_argument("--batch-size", type=int, help="images per step (default 64; --quick: 32)")
    parser.add_argument("--optimizer", default="adamw", choices=OPTIMIZERS)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--schedule", default="onecycle", choices=SCHEDULES, help="per-step LR schedule (peak --lr)")
    parser.add_argument("--crop-size", type=int, help="training crop and evaluation size (default 96; --quick: 64)")
    parser.add_argument("--resize-size", type=int, help="training resize before the random crop (default: crop size)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-amp", action="store_true", help="no mixed precision")
    add_overwrite_option(parser)


def add_overwrite_option(parser) -> None:
    """``--overwrite``: a train verb's permission to replace the run its output folder holds."""
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run the output folder holds (its checkpoint and log); without it, or "
                             "--resume, such a folder is refused")


def apply_quick(args, train: int, val: int, test: int) -> None:
    """``--quick``: a tiny synthetic run (4 classes, 64 px, 2 epochs, batches of 32) in what was not given.

    Only options the user left out are filled (the size options default to ``None`` for this); ``has``
    gets patch sizes that fit 64 px unless ``--aug-param`` was given (its presets ``has-16`` ... fix
    their own and take no ``grid_sizes``)."""
    if not args.quick:
        return
    quick = dict(synthetic_train=train, synthetic_val=val, synthetic_test=test, num_classes=4, image_size=64,
                 crop_size=64, epochs=2, batch_size=32)
    for key, value in quick.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.augmentation == "has" and not args.aug_param:
        args.aug_param = ["grid_sizes=[0,8,16]"]


def synthetic_sizes(args) -> dict:
    """The synthetic benchmark's size overrides that were given."""
    given = (("train", args.synthetic_train), ("val", args.synthetic_val), ("test", args.synthetic_test),
             ("num_classes", args.num_classes), ("image_size", args.image_size))
    return {key: value for key, value in given if value is not None}


# option of each range-checked ImageRunConfig field, to name it in the error
_OPTIONS = dict(epochs="--epochs", batch_size="--batch-size", crop_size="--crop-size", resize_size="--resize-size",
                lr="--lr", weight_decay="--weight-decay", num_workers="--workers")


def image_run_fields(args) -> dict:
    """:class:`~hideseek.cam.recipe.ImageRunConfig` fields from the options of :func:`add_image_run_options`.

    Options left out (``None``) take the config's defaults; a value out of its field's range is a
    :class:`UserError` naming the option (the config would name the field)."""
    from hideseek.cam.recipe import ImageRunConfig, field_problem

    if args.feature_stage < -1:
        raise UserError(f"--feature-stage {args.feature_stage}: expected -1 (the whole backbone) or a stage "
                        "index >= 0")
    sizes = {key: getattr(args, key) for key in ("epochs", "batch_size", "crop_size") if getattr(args, key) is not None}
    crop = sizes.get("crop_size", ImageRunConfig.crop_size)
    fields = dict(backbone=args.backbone, pool=args.pool,
                  feature_stage=None if args.feature_stage < 0 else args.feature_stage,
                  large_feature_map=args.large_feature_map, pretrained_file=args.pretrained_file,
                  augmentation=args.augmentation, aug_params=parse_params(args.aug_param), optimizer=args.optimizer,
                  lr=args.lr, weight_decay=args.weight_decay, schedule=args.schedule,
                  resize_size=crop if args.resize_size is None else args.resize_size, seed=args.seed,
                  num_workers=args.workers, device=args.device, amp=not args.no_amp, **sizes)
    for key, option in _OPTIONS.items():
        problem = key in fields and field_problem(key, fields[key])
        if problem:
            raise UserError(f"{option} {fields[key]}: {problem}")
    from hideseek.cam.backbones import check_feature_stage, check_input_size

    with user_errors(ValueError):
        if args.feature_stage >= 0:
            check_feature_stage(args.backbone, args.feature_stage, "--feature-stage")
        if getattr(args, "backbone", None):
            check_input_size(args.backbone, crop, "--crop-size")
    if fields["resize_size"] < crop:
        raise UserError(f"--resize-size {fields['resize_size']}: expected >= the crop size ({crop}): the training "
                        "crop is taken from the resized image")
    return fields
