"""The center baseline: its map, and that scoring it equals scoring the same maps saved as files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hideseek.cli import main
from hideseek.localization.baselines import center_gaussian, evaluate_center_baseline
from hideseek.localization.data.metadata import load_metadata
from hideseek.localization.evaluate import evaluate_scoremaps

DATA = Path(__file__).parent / "data" / "wsol" / "boxes"


def test_center_gaussian_is_a_centred_normalised_radial_map():
    m = center_gaussian(224, 0.25)
    assert m.shape == (224, 224) and m.dtype == np.float64
    assert m.min() == 0.0 and m.max() == pytest.approx(1.0)
    # symmetric about the centre (111.5, 111.5): the four middle pixels hold the maximum
    assert np.array_equal(m, m[::-1]) and np.array_equal(m, m.T)
    assert m[111, 111] == m[112, 112] == m.max()
    # radial: pixels at equal distance from the centre have equal values
    assert m[111, 100] == m[100, 111]
    assert m[0, 0] == 0.0  # the corners are the minimum
    with pytest.raises(ValueError, match="sigma_ratio must be > 0"):
        center_gaussian(224, 0)


def test_the_baseline_scores_as_the_same_maps_saved_as_files(tmp_path):
    meta = load_metadata(DATA)
    for image_id in meta.image_ids:
        path = tmp_path / "maps" / f"{image_id}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, center_gaussian(224, 0.25))
    from_files = evaluate_scoremaps(DATA, tmp_path / "maps")
    baseline = evaluate_center_baseline(DATA, sigma_ratio=0.25)
    for key in ("MaxBoxAcc", "MaxBoxAccV2", "GT-known Loc", "best_threshold", "num_images"):
        assert baseline[key] == from_files[key], key
    assert baseline["baseline"]["name"] == "center" and baseline["baseline"]["sigma_ratio"] == 0.25


def test_cli_center_baseline(tmp_path, capsys):
    out = tmp_path / "center.json"
    assert main(["loc", "evaluate", "--center-baseline", "--metadata", str(DATA), "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert "MaxBoxAccV2" in result and result["baseline"]["name"] == "center"
    assert "MaxBoxAccV2" in capsys.readouterr().out
    assert main(["loc", "evaluate", "--center-baseline", "--metadata", str(DATA), "--center-sigma", "-1"]) == 2
    assert "sigma_ratio must be > 0" in capsys.readouterr().err
