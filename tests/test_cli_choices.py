"""The command line's choice lists come from the rooms' own constants, and building it stays light."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import hideseek
from hideseek.action import choices as action_choices
from hideseek.bench import choices as bench_choices
from hideseek.cam import choices as cam_choices
from hideseek.cli import build_parser, main
from hideseek.cli.demo import DEMO_ROOMS
from hideseek.localization import choices as loc_choices
from hideseek.results import choices as results_choices
from hideseek.segmentation import choices as seg_choices

# (room, verb, option) -> the constant its choices must equal; verb None: the room's own options
EXPECTED = {
    ("demo", None, "--rooms"): tuple(DEMO_ROOMS),
    ("loc", "evaluate", "--iou-type"): loc_choices.IOU_TYPES,
    ("loc", "evaluate", "--policy"): cam_choices.POLICIES,
    ("loc", "train", "--dataset"): loc_choices.DATASETS,
    ("loc", "train", "--pool"): cam_choices.POOLS,
    ("loc", "train", "--optimizer"): cam_choices.OPTIMIZERS,
    ("loc", "train", "--schedule"): cam_choices.SCHEDULES,
    ("loc", "train", "--wsol-method"): loc_choices.WSOL_METHODS,
    ("loc", "evaluate", "--wsol-method"): loc_choices.WSOL_METHODS,
    ("loc", "evaluate", "--architecture"): loc_choices.BENCHMARK_ARCHITECTURES,
    ("loc", "convert", "format"): loc_choices.CONVERT_FORMATS,
    ("loc", "evaluate", "--cam-method"): cam_choices.CAM_METHOD_NAMES,
    ("loc", "train", "--cam-method"): cam_choices.CAM_METHOD_NAMES,
    ("loc", "cam", "--cam-method"): cam_choices.CAM_METHOD_NAMES,
    ("loc", "compare-cams", "--cam-methods"): cam_choices.CAM_METHOD_NAMES,
    ("loc", "compare-cams", "--metrics"): tuple(loc_choices.COMPARE_METRICS),
    ("seg", "train", "--cam-method"): cam_choices.CAM_METHOD_NAMES,
    ("seg", "predict", "--cam-method"): cam_choices.CAM_METHOD_NAMES,
    ("seg", "evaluate", "--cam-method"): cam_choices.CAM_METHOD_NAMES,
    ("seg", "train", "--dataset"): seg_choices.DATASETS,
    ("seg", "train", "--pool"): cam_choices.POOLS,
    ("seg", "train", "--optimizer"): cam_choices.OPTIMIZERS,
    ("seg", "train", "--schedule"): cam_choices.SCHEDULES,
    ("action", "evaluate", "--protocol"): action_choices.PROTOCOLS,
    ("action", "evaluate", "--score"): action_choices.SCORES,
    ("action", "evaluate", "--units"): action_choices.UNITS,
    ("action", "extract-features", "--on-error"): tuple(action_choices.ON_ERROR_FLAGS),
    ("action", "convert", "format"): action_choices.CONVERT_FORMATS,
    ("action", "train", "--dataset"): action_choices.DATASETS,
    ("action", "train", "--modality"): action_choices.MODALITIES,
    ("action", "train", "--pool"): action_choices.POOLS,
    ("action", "train", "--augmentation"): action_choices.AUGMENTATIONS,
    ("action", "train", "--score"): action_choices.SCORES,
    ("action", "detect", "--score"): action_choices.SCORES,
    ("results", "table", "--format"): results_choices.FORMATS,
    ("bench", None, "--device"): bench_choices.DEVICES,
    ("bench", None, "--size"): bench_choices.SIZE_NAMES,
    ("bench", None, "--groups"): bench_choices.GROUPS,
    ("bench", "report", "--format"): bench_choices.REPORT_FORMATS,
}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def _choice_actions() -> Iterator[tuple[tuple[str, str | None, str], argparse.Action]]:
    """Every action with ``choices`` in the built parser, keyed (room, verb, first option or dest)."""
    for room, room_parser in _subparsers(build_parser()).items():
        parsers = [(None, room_parser), *_subparsers(room_parser).items()]
        for verb, parser in parsers:
            for action in parser._actions:
                if action.choices is None or isinstance(action, argparse._SubParsersAction):
                    continue
                name = next((s for s in action.option_strings if s.startswith("--")), action.dest)
                yield (room, verb, name), action


def test_every_choice_list_is_a_room_constant():
    found = dict(_choice_actions())
    assert sorted(found, key=str) == sorted(EXPECTED, key=str), "a choice list the table does not know, or gone"
    for key, action in found.items():
        assert tuple(action.choices) == tuple(EXPECTED[key]), key


def test_defaults_are_among_the_choices():
    for key, action in _choice_actions():
        if action.default is None:
            continue
        defaults = action.default if isinstance(action.default, list) else [action.default]
        assert set(defaults) <= set(action.choices), key


def test_rooms_take_their_constants_from_the_choices_modules():
    from hideseek.action import detect, features, model, protocols
    from hideseek.action import train as action_train
    from hideseek.bench import suite
    from hideseek.cam import model as cam_model
    from hideseek.cam import policies, recipe
    from hideseek.localization import coco
    from hideseek.localization import train as loc_train
    from hideseek.results import tables
    from hideseek.segmentation import train as seg_train

    assert cam_model.POOLS is cam_choices.POOLS
    assert hideseek.cam.POOLS is cam_choices.POOLS
    assert recipe.OPTIMIZERS is cam_choices.OPTIMIZERS and recipe.SCHEDULES is cam_choices.SCHEDULES
    assert (policies.Oracle().name, policies.Fixed(0.2).name, policies.Calibrated({}).name) == cam_choices.POLICIES
    assert loc_train.DATASETS is loc_choices.DATASETS
    assert coco.IOU_TYPES is loc_choices.IOU_TYPES
    assert seg_train.DATASETS is seg_choices.DATASETS
    assert action_train.DATASETS is action_choices.DATASETS
    assert action_train.SCHEDULES is action_choices.SCHEDULES
    assert model.POOLS is action_choices.POOLS
    assert protocols.PROTOCOLS is action_choices.PROTOCOLS
    assert tuple(protocols.PROTOCOL_RECORDS) == action_choices.PROTOCOLS
    assert {u for record in protocols.PROTOCOL_RECORDS.values() for u in record.units} == set(action_choices.UNITS)
    assert detect.SCORES is action_choices.SCORES
    assert features.FEATURE_SOURCES is action_choices.FEATURE_SOURCES
    assert set(action_choices.FEATURE_SOURCES) < set(action_choices.DATASETS)
    assert set(action_choices.ON_ERROR_FLAGS.values()) == set(action_choices.ON_ERROR)
    assert suite.GROUPS is bench_choices.GROUPS
    assert tuple(suite.SIZES) == bench_choices.SIZE_NAMES
    assert all(tuple(per_device) == bench_choices.DEVICES for per_device in suite.SIZES.values())
    assert tables.FORMATS is results_choices.FORMATS


def test_rooms_accept_every_choice_the_command_line_offers():
    from hideseek.action.detect import DetectConfig
    from hideseek.bench.report import render

    for score in action_choices.SCORES:
        DetectConfig(score=score)
    for fmt in bench_choices.REPORT_FORMATS:
        assert isinstance(render([], fmt), str)
    with pytest.raises(ValueError, match="format must be"):
        render([], "latex")


def _run(*args: str) -> subprocess.CompletedProcess:
    """Run this interpreter on the hideseek under test (not an installed copy)."""
    src = str(Path(hideseek.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=120)


def test_building_the_parser_imports_no_heavy_module():
    code = ("import sys; from hideseek.cli import build_parser; build_parser(); "
            "print(' '.join(m for m in ('torch', 'timm', 'numpy', 'pandas', 'filelock') if m in sys.modules))")
    proc = _run("-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"building the parser imported {proc.stdout.strip()}"
    assert "torch" not in proc.stdout


@pytest.mark.parametrize("module", ["hideseek", "hideseek.cli"])
def test_python_dash_m_answers_help(module):
    proc = _run("-m", module, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: hideseek ")
    for room in ("loc", "seg", "augment", "action", "results", "reproduce", "demo", "bench"):
        assert room in proc.stdout


def test_user_errors_print_one_line_and_exit_2(tmp_path, capsys):
    assert main(["action", "evaluate"]) == 2
    assert capsys.readouterr().err == "error: give --checkpoint, or --ground-truth and --predictions\n"
    missing = tmp_path / "missing.json"
    assert main(["bench", "report", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: [Errno 2]") and str(missing) in err and err.count("\n") == 1


@pytest.mark.parametrize("argv, needle", [
    (["results", "table", "--digits", "-1"], "hideseek results table: argument --digits: expected a whole number"),
    (["loc", "trian"], "hideseek loc: argument VERB: invalid choice: 'trian'"),
    (["loc", "train", "--epochs", "x"], "hideseek loc train: argument --epochs: invalid int value: 'x'"),
])
def test_option_errors_are_one_line_and_exit_2(capsys, argv, needle):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and needle in err, err
