"""Run hardening in the engine: longer schedules on resume, checkpoint CRCs, a full disk, devices, stale temps."""

from __future__ import annotations

import errno
import importlib.util
import zipfile
from pathlib import Path

import pytest
import torch

from hideseek import engine
from hideseek.inputs import InputError

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("engine_worker", HERE / "engine_worker.py")
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)

SAMPLES, BATCH = 12, 6  # two steps per epoch


def _trainer(output_dir: Path, epochs: int, schedule: str) -> engine.Trainer:
    ctx = engine.setup(device="cpu", seed=3)
    model = worker.build_model(dropout=0.0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    total = epochs * SAMPLES // BATCH
    if schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[0.01], total_steps=total)
    else:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    return engine.Trainer(model, optimizer, ctx=ctx, output_dir=output_dir, scheduler=scheduler,
                          scheduler_interval="step", progress=False, amp=False)


def _fit(trainer: engine.Trainer, epochs: int, **kw) -> dict:
    return trainer.fit(worker.ToyImages(SAMPLES), epochs=epochs, batch_size=BATCH, step_fn=worker.step_fn, **kw)


def _flip_a_weight_byte(path: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        entry = max(archive.infolist(), key=lambda info: info.file_size)
    data = bytearray(path.read_bytes())
    # local header (30 bytes + name + extra), then the stored bytes: flip one in the middle
    with path.open("rb") as handle:
        handle.seek(entry.header_offset + 26)
        name_len, extra_len = int.from_bytes(handle.read(2), "little"), int.from_bytes(handle.read(2), "little")
    data[entry.header_offset + 30 + name_len + extra_len + entry.file_size // 2] ^= 0x01
    path.write_bytes(bytes(data))


# --------------------------------------------------------------------------- resume with a longer plan


@pytest.mark.parametrize("schedule", ["onecycle", "cosine"])
def test_resume_with_more_epochs_continues_the_longer_schedule(tmp_path, schedule):
    _fit(_trainer(tmp_path, 2, schedule), 2)
    longer = _trainer(tmp_path, 3, schedule)  # planned for 3 epochs: a longer per-step schedule
    result = _fit(longer, 3, resume=True)
    assert result["resumed_from"] == 2 and result["epochs"] == 3 and result["global_step"] == 6

    # the LR schedule is the 3-epoch one, at the saved step count: what a run planned for
    # 3 epochs from the start has after 6 steps (same operations, so the same floats)
    planned = _trainer(tmp_path / "planned", 3, schedule)
    for _ in range(6):
        planned.optimizer.step()
        planned.scheduler.step()
    fresh, resumed = planned.scheduler.state_dict(), longer.scheduler.state_dict()
    assert resumed["last_epoch"] == fresh["last_epoch"] == 6
    assert resumed["_last_lr"] == fresh["_last_lr"]
    assert longer.optimizer.param_groups[0]["lr"] == planned.optimizer.param_groups[0]["lr"]
    assert result["history"][2]["lr"] == planned.optimizer.param_groups[0]["lr"]
    assert "LR schedule changed" in (tmp_path / "train.log").read_text()


# --------------------------------------------------------------------------- checkpoints


def test_flipped_byte_in_a_checkpoint_is_named_corrupt(tmp_path):
    trainer = _trainer(tmp_path, 1, "cosine")
    _fit(trainer, 1)
    path = trainer.checkpoint_path
    engine.verify_checkpoint(path)  # intact: no error
    _flip_a_weight_byte(path)
    with pytest.raises(InputError, match=r"last\.pt: corrupt \(CRC-32 mismatch in "):
        engine.read_checkpoint(path)
    with pytest.raises(InputError, match="corrupt"):
        engine.load_checkpoint_weights(path, worker.build_model(dropout=0.0))
    with pytest.raises(InputError, match="corrupt"):
        _fit(_trainer(tmp_path, 2, "cosine"), 2, resume=True)


def test_truncated_checkpoint_is_refused_naming_it(tmp_path):
    trainer = _trainer(tmp_path, 1, "cosine")
    _fit(trainer, 1)
    data = trainer.checkpoint_path.read_bytes()
    trainer.checkpoint_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"checkpoint .*last\.pt: "):
        engine.read_checkpoint(trainer.checkpoint_path)


@pytest.mark.parametrize("failure", ["oserror", "writer"])
def test_full_disk_during_a_checkpoint_write_keeps_the_old_one(tmp_path, monkeypatch, failure):
    trainer = _trainer(tmp_path, 2, "cosine")
    _fit(trainer, 1)
    before = trainer.checkpoint_path.read_bytes()

    def full_disk(obj, handle, *args, **kwargs):
        handle.write(b"partial")
        if failure == "oserror":
            raise OSError(errno.ENOSPC, "No space left on device")
        raise RuntimeError("[enforce fail at inline_container.cc:858] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(InputError) as caught:
        _fit(trainer, 2)
    message = str(caught.value)
    assert str(trainer.checkpoint_path) in message and "cannot write the checkpoint" in message
    assert "previous checkpoint is intact" in message and "\n" not in message
    assert trainer.checkpoint_path.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_stale_temporaries_are_removed(tmp_path):
    stale = tmp_path / ".last.pt.4242.deadbeef.tmp"
    stale.write_bytes(b"half a checkpoint")
    keep = tmp_path / "notes.tmp"
    keep.write_text("not ours")
    assert engine.remove_stale_temporaries(tmp_path) == [stale]
    assert not stale.exists() and keep.exists()


# --------------------------------------------------------------------------- devices


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error for --device cuda on a machine without CUDA; this one has a CUDA device")
def test_cuda_without_a_gpu_names_the_option_and_the_devices():
    with pytest.raises(ValueError, match=r"^--device cuda: this machine has no CUDA device \(devices here: cpu"):
        engine.resolve_device("cuda")
    with pytest.raises(ValueError, match=r"^--device cuda:1: "):
        engine.resolve_device("cuda:1")
    with pytest.raises(ValueError, match=r"^--device tpu: expected 'auto', 'cpu'"):
        engine.resolve_device("tpu")
    assert "cpu" in engine.available_devices()
