"""Run folders through the command line (issue 14): a folder holding a run is refused without
--resume or --overwrite, a locked folder is refused, --resume refuses a changed config naming
the fields but may extend the epochs, Ctrl-C exits 130 leaving a checkpoint --resume
continues bit for bit, a corrupt checkpoint is named as corrupt, and --device cuda without a
GPU is one line. The tiny synthetic action run keeps each training to a second or two."""

import json
import zipfile
from pathlib import Path

import filelock
import pytest
import torch

from cli_helpers import one_line_error, run
from hideseek import engine

TINY = ["action", "train", "--synthetic-train", "8", "--synthetic-test", "4", "--batch-size", "8", "--device", "cpu",
        "--no-progress"]


def train(capsys, folder: Path, *extra, epochs: int = 1):
    return run(capsys, *TINY, "--epochs", epochs, "--output", folder, "--records", folder.parent / "records.jsonl",
               *extra)


def saved_epoch(folder: Path) -> int:
    return int(engine.read_checkpoint(folder / engine.CHECKPOINT_NAME)["epoch"])


def test_a_folder_holding_a_run_is_refused_without_resume_or_overwrite(tmp_path, capsys):
    folder = tmp_path / "run"
    code, _, err = train(capsys, folder)
    assert code == 0, err
    before = (folder / "last.pt").read_bytes()
    code, _, err = train(capsys, folder)
    one_line_error(code, err, str(folder), "holds a run", "--resume", "--overwrite")
    assert (folder / "last.pt").read_bytes() == before  # the finished run is untouched
    code, _, err = train(capsys, folder, "--resume", "--overwrite")
    one_line_error(code, err, "exclude each other")
    code, _, err = train(capsys, folder, "--overwrite", "--seed", "1")
    assert code == 0, err
    assert engine.read_checkpoint(folder / "last.pt")["extra"]["config"]["seed"] == 1


def test_a_locked_folder_is_refused(tmp_path, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    with filelock.FileLock(folder / ".hideseek.lock", timeout=0):
        code, _, err = train(capsys, folder)
    one_line_error(code, err, str(folder), "another run is training")
    assert not (folder / "last.pt").exists()
    code, _, err = train(capsys, folder)  # released: the folder takes the run
    assert code == 0, err


def test_resume_refuses_a_changed_config_naming_the_fields(tmp_path, capsys):
    folder = tmp_path / "run"
    assert train(capsys, folder)[0] == 0
    before = (folder / "last.pt").read_bytes()
    code, _, err = train(capsys, folder, "--resume", "--lr", "0.5", "--augmentation", "frame-has")
    line = one_line_error(code, err, "--resume with a changed config", "lr 0.001 -> 0.5", "augmentation")
    assert "--overwrite" in line
    assert (folder / "last.pt").read_bytes() == before  # provenance not rewritten


def test_resume_extends_a_finished_run_and_keeps_the_change(tmp_path, capsys):
    folder = tmp_path / "run"
    assert train(capsys, folder)[0] == 0
    code, _, err = train(capsys, folder, "--resume", epochs=2)
    assert code == 0, err
    assert saved_epoch(folder) == 2
    extra = engine.read_checkpoint(folder / "last.pt")["extra"]
    assert extra["config"]["epochs"] == 2
    assert extra["resumes"] == [{"after_epoch": 1, "changed": {"epochs": [1, 2]}}]


def test_ctrl_c_exits_130_and_resume_gives_the_uninterrupted_numbers(tmp_path, capsys, monkeypatch):
    straight = tmp_path / "straight"
    code, _, err = train(capsys, straight, epochs=2)
    assert code == 0, err

    folder = tmp_path / "interrupted"
    real_epoch = engine.Trainer._train_epoch
    calls = []

    def interrupt_second_epoch(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_epoch(self, *args, **kwargs)

    monkeypatch.setattr(engine.Trainer, "_train_epoch", interrupt_second_epoch)
    code, _, err = train(capsys, folder, epochs=2)
    assert code == 130, err
    assert err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in err, err
    assert saved_epoch(folder) == 1  # the last whole epoch is kept
    assert not list(folder.glob(".*.tmp"))
    monkeypatch.undo()

    code, _, err = train(capsys, folder, "--resume", epochs=2)
    assert code == 0, err
    resumed = torch.load(folder / "last.pt", map_location="cpu", weights_only=True)["model"]
    uninterrupted = torch.load(straight / "last.pt", map_location="cpu", weights_only=True)["model"]
    assert resumed.keys() == uninterrupted.keys()
    for name in resumed:  # bit for bit: the same batches, RNG and schedule
        assert torch.equal(resumed[name], uninterrupted[name]), name
    metrics = {}
    for line in (tmp_path / "records.jsonl").read_text().splitlines():
        record = json.loads(line)
        timeless = {k: v for k, v in record["metrics"].items() if k != "seconds"}
        metrics.setdefault(record["run"], []).append((record["split"], timeless))
    assert metrics["interrupted"] == metrics["straight"]


def _flip_the_largest_entry(path: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        entry = max(archive.infolist(), key=lambda info: info.compress_size)
    data = bytearray(path.read_bytes())
    name_len = int.from_bytes(data[entry.header_offset + 26:entry.header_offset + 28], "little")
    extra_len = int.from_bytes(data[entry.header_offset + 28:entry.header_offset + 30], "little")
    data[entry.header_offset + 30 + name_len + extra_len + entry.compress_size // 2] ^= 0x10
    path.write_bytes(bytes(data))


def test_a_corrupt_checkpoint_is_named_corrupt_by_evaluate_and_resume(tmp_path, capsys):
    folder = tmp_path / "run"
    assert train(capsys, folder)[0] == 0
    _flip_the_largest_entry(folder / "last.pt")
    code, _, err = run(capsys, "action", "evaluate", "--checkpoint", folder / "last.pt", "--output-dir",
                       tmp_path / "eval", "--no-progress")
    one_line_error(code, err, str(folder / "last.pt"), "corrupt")
    code, _, err = train(capsys, folder, "--resume", epochs=2)
    one_line_error(code, err, str(folder / "last.pt"), "corrupt")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error for --device cuda on a machine without CUDA; this one has a CUDA device")
def test_device_cuda_without_a_gpu_is_one_line(tmp_path, capsys):
    code, _, err = run(capsys, *TINY, "--epochs", 1, "--output", tmp_path / "run", "--records",
                       tmp_path / "records.jsonl", "--device", "cuda")
    one_line_error(code, err, "--device cuda", "no CUDA device", "cpu")
    assert not (tmp_path / "run" / "last.pt").exists()


def test_a_stale_temporary_file_is_removed_by_the_next_run(tmp_path, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    stale = folder / ".last.pt.12345.deadbeef.tmp"
    stale.write_bytes(b"half a checkpoint")
    code, _, err = train(capsys, folder)
    assert code == 0, err
    assert not stale.exists()
