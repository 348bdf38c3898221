"""hideseek action train / evaluate --checkpoint / detect: runs, records, resume, feature folders."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from hideseek import augment
from hideseek.action.choices import PROTOCOLS
from hideseek.action.demo import QUICK
from hideseek.action.train import ActionConfig, hide_padded, load_feature_folder, load_run, train
from hideseek.cli import main
from hideseek.results.records import read_records


def _config(**overrides):
    return dataclasses.replace(QUICK.base, epochs=2, device="cpu", **overrides)


def test_hiding_a_padded_batch_equals_hiding_each_video_alone():
    torch.manual_seed(0)
    a, b = torch.randn(1, 9, 5), torch.randn(1, 14, 5)
    batch = torch.zeros(2, 14, 5)
    batch[0, :9], batch[1] = a[0], b[0]
    mask = torch.zeros(2, 14, dtype=torch.bool)
    mask[0, :9], mask[1] = True, True
    aug = augment.create("frame-has", segment_len=3, p_hide=0.5, seed=4)
    aug.set_epoch(2)
    out = hide_padded(aug, batch, mask, torch.tensor([7, 3]))
    alone_a = augment.hide_frames(a, 3, 0.5, seed=4, epoch=2, sample_ids=[7])
    alone_b = augment.hide_frames(b, 3, 0.5, seed=4, epoch=2, sample_ids=[3])
    assert torch.allclose(out[0, :9], alone_a[0]) and torch.allclose(out[1], alone_b[0])
    assert out[0, 9:].abs().sum() == 0
    assert not torch.equal(out[0, :9], a[0])  # something was hidden with this seed


@pytest.fixture(scope="module")
def has_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("action-run")
    config = _config(augmentation="frame-has", aug_params={"segment_len": 4, "p_hide": 0.5})
    out = train(config, root / "has", records=root / "records.jsonl", progress=False)
    return root, out


def test_train_writes_checkpoint_predictions_and_one_record_per_protocol(has_run):
    root, out = has_run
    records = read_records(root / "records.jsonl")
    assert [r["policy"]["name"] for r in records] == list(PROTOCOLS)
    for record in records:
        assert record["task"] == "action" and record["split"] == "test" and record["seed"] == 0
        assert record["config"]["augmentation"] == "frame-has" and record["device"] == "cpu"
        assert {f"mAP@0.{k}" for k in range(1, 8)} <= set(record["metrics"])
        assert 0 <= record["metrics"]["mAP avg 0.1:0.7"] <= 100 and record["wall_time"] > 0
        assert "commit" in record
    run = root / "has"
    assert (run / "last.pt").is_file()
    # the written predictions are exactly what the protocols scored
    rerun = main(["action", "evaluate", "--ground-truth", str(run / "gt-test.json"), "--predictions",
                  str(run / "predictions-test.json"), "--protocol", "thumos14", "--output", str(root / "th.json"),
                  "--tiou", *(f"{t:g}" for t in ActionConfig.tiou)])  # the trainer's thresholds, not the kit's
    assert rerun == 0
    assert json.loads((root / "th.json").read_text())["mAP"] == out["results"]["thumos14"]["mAP"]


def test_evaluate_checkpoint_reproduces_the_training_evaluation(has_run, tmp_path, capsys):
    root, out = has_run
    code = main(["action", "evaluate", "--checkpoint", str(root / "has" / "last.pt"), "--output-dir", str(tmp_path),
                 "--records", str(tmp_path / "records.jsonl"), "--output", str(tmp_path / "all.json"),
                 "--no-progress"])
    assert code == 0
    result = json.loads((tmp_path / "all.json").read_text())
    for protocol in PROTOCOLS:
        assert result[protocol]["mAP"] == out["results"][protocol]["mAP"]
    assert len(read_records(tmp_path / "records.jsonl")) == len(PROTOCOLS)
    assert "protocol wtalc" in capsys.readouterr().out
    # detect with other post-processing writes predictions only
    assert main(["action", "detect", "--checkpoint", str(root / "has" / "last.pt"), "--output-dir",
                 str(tmp_path / "det"), "--cam-thresholds", "0.5", "--nms-tiou", "0.3", "--no-progress"]) == 0
    preds = json.loads((tmp_path / "det" / "predictions-test.json").read_text())
    assert set(preds["results"]) == set(json.loads((tmp_path / "det" / "gt-test.json").read_text())["database"])


def test_resume_continues_to_the_same_weights(tmp_path):
    # constant LR: the cosine schedule's length depends on the planned epochs, so a run
    # planned for 1 epoch and extended to 2 would legitimately differ
    config = _config(augmentation="frame-has", aug_params={"segment_len": 3, "p_hide": 0.5}, schedule="constant")
    train(config, tmp_path / "straight", progress=False, evaluate=False)
    train(dataclasses.replace(config, epochs=1), tmp_path / "resumed", progress=False, evaluate=False)
    train(config, tmp_path / "resumed", progress=False, evaluate=False, resume=True)
    _, a, _ = load_run(tmp_path / "straight" / "last.pt")
    _, b, _ = load_run(tmp_path / "resumed" / "last.pt")
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name


def _feature_folder(root, n_train=12, n_test=6, dim=8, stride=0.64):
    """Random features with a class-coded burst inside each action, in the simple layout."""
    rng = np.random.default_rng(0)
    feats_dir = root / "features"
    feats_dir.mkdir(parents=True)
    database = {}
    for subset, n in (("validation", n_train), ("test", n_test)):
        for i in range(n):
            vid = f"video_{subset}_{i:03d}"
            t = int(rng.integers(30, 50))
            x = rng.normal(0, 1, size=(t, dim)).astype(np.float32)
            c = i % 2
            a = int(rng.integers(2, t - 12))
            x[a:a + 10, c] += 3.0
            np.save(feats_dir / f"{vid}.npy", x)
            database[vid] = {"subset": subset, "duration": t * stride,
                             "annotations": [{"segment": [a * stride, (a + 10) * stride],
                                              "label": ["CliffDiving", "Diving"][c]}]}
    (root / "gt.json").write_text(json.dumps({"database": database}))
    return feats_dir, root / "gt.json"


def test_features_dataset_from_npy_folder_and_gt_json(tmp_path, capsys):
    feats_dir, gt = _feature_folder(tmp_path)
    videos = load_feature_folder(feats_dir, gt, "validation", stride_s=0.64)
    assert len(videos) == 12 and videos[0].stride_s == 0.64 and videos[0].features.shape[1] == 8
    code = main(["action", "train", "--dataset", "features", "--features-dir", str(feats_dir), "--ground-truth",
                 str(gt), "--stride-s", "0.64", "--train-subset", "validation", "--epochs", "3", "--batch-size",
                 "4", "--device", "cpu", "--output", str(tmp_path / "run"), "--records",
                 str(tmp_path / "records.jsonl"), "--no-progress"])
    assert code == 0
    assert "thumos14" in capsys.readouterr().out
    records = read_records(tmp_path / "records.jsonl")
    # a feature folder whose name is no known dataset is named by it (it matches no published row)
    assert len(records) == len(PROTOCOLS) and records[0]["dataset"] == f"features:{tmp_path.name}"
    assert records[0]["metrics"]["num_ground_truth"] == 6


def test_feature_folder_errors_name_the_file(tmp_path):
    feats_dir, gt = _feature_folder(tmp_path, n_train=2, n_test=1)
    (feats_dir / "video_test_000.npy").unlink()
    with pytest.raises(FileNotFoundError, match="video_test_000.npy"):
        load_feature_folder(feats_dir, gt, "test", stride_s=0.64)
    np.save(feats_dir / "video_test_000.npy", np.zeros((4, 2, 2), np.float32))
    with pytest.raises(ValueError, match="video_test_000"):
        load_feature_folder(feats_dir, gt, "test", stride_s=0.64)
    with pytest.raises(ValueError, match="no video has subset 'val'"):
        load_feature_folder(feats_dir, gt, "val", stride_s=0.64)
    with pytest.raises(ValueError, match="needs features_dir"):
        ActionConfig(dataset="features")
    with pytest.raises(ValueError, match="for image input"):
        ActionConfig(augmentation="has")


def test_train_on_the_public_i3d_split_layout(tmp_path, capsys):
    """`--dataset i3d-split` trains on features/train, scores features/test with the layout's Ambiguous file."""
    import shutil
    from pathlib import Path

    root = tmp_path / "THUMOS14"
    shutil.copytree(Path(__file__).parent / "data" / "thumos" / "i3d_split", root)
    gt = json.loads((root / "gt.json").read_text())["database"]
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for vid in (root / f"split_{split}.txt").read_text().split():
            t = 12
            for mod in ("rgb", "flow"):
                (root / "features" / split / mod).mkdir(parents=True, exist_ok=True)
                np.save(root / "features" / split / mod / f"{vid}.npy", rng.standard_normal((t, 1024)).astype(np.float32))
    records = tmp_path / "records.jsonl"
    code = main(["action", "train", "--dataset", "i3d-split", "--features-dir", str(root), "--modality", "rgb",
                 "--epochs", "2", "--batch-size", "2", "--device", "cpu", "--output", str(tmp_path / "run"),
                 "--ambiguous", str(root / "Ambiguous_test.txt"), "--records", str(records), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    rows = read_records(records)
    assert [r["policy"]["name"] for r in rows] == list(PROTOCOLS)
    test_vids = (root / "split_test.txt").read_text().split()
    n_gt = sum(len(gt[v]["annotations"]) for v in test_vids)
    assert all(r["metrics"]["num_ground_truth"] == n_gt for r in rows)
    # the I3D grid (16 frames at 25 fps): wtalc scores W-TALC's snippet units at its own 25/16
    units = {r["policy"]["name"]: (r["policy"]["units"], r["policy"]["snippets_per_second"]) for r in rows}
    assert units["wtalc"] == ("snippets", 25 / 16) and units["thumos14"] == ("seconds", None)
    assert json.loads((tmp_path / "run" / "predictions-test.json").read_text())["snippets_per_second"] == 25 / 16
    config, model, _ = load_run(tmp_path / "run" / "last.pt")
    assert config.dataset == "i3d-split" and model is not None
