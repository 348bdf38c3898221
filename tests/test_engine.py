"""hideseek.engine: determinism, resume, checkpoints, logs and CPU (gloo) distributed runs."""

from __future__ import annotations

import functools
import importlib.util
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hideseek import engine

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("engine_worker", HERE / "engine_worker.py")
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)

EPOCH_LINE = re.compile(r"epoch (\d+)/(\d+) loss \S+ time \S+s \S+ samples/s lr \S+$")


@pytest.fixture
def ctx():
    return engine.setup(device="cpu", seed=7)


def _trainer(ctx, output_dir, dropout=0.3, seed=None):
    """A fresh model/optimizer/scheduler; ``seed`` perturbs the init (resume must overwrite it)."""
    engine.seed_everything(ctx.seed if seed is None else seed)
    model = worker.build_model(dropout=dropout)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    return engine.Trainer(
        model, optimizer, ctx=ctx, output_dir=output_dir, scheduler=scheduler, progress=False
    )


def _fit(trainer, epochs, num_workers=0, **kw):
    data = worker.ToyImages(40, noise=True)  # 40 / 6 -> a short last batch
    return trainer.fit(data, epochs=epochs, batch_size=6, step_fn=worker.step_fn, num_workers=num_workers, **kw)


def _assert_same_state(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# --------------------------------------------------------------------------- resume


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_after_interruption_is_bit_identical(ctx, tmp_path, num_workers):
    # Uninterrupted: 3 epochs. Dropout, shuffling and per-read noise in the dataset all
    # draw random numbers, so any RNG or data-order slip changes the weights.
    full = _trainer(ctx, tmp_path / "full")
    full_result = _fit(full, 3, num_workers)

    # Interrupted after epoch 1, then a new process-like start: new model (different
    # init), new optimizer/scheduler, and the global RNGs left somewhere else entirely.
    first = _trainer(ctx, tmp_path / "split")
    _fit(first, 1, num_workers)
    del first
    random.seed(99), np.random.seed(99), torch.manual_seed(99)
    second = _trainer(ctx, tmp_path / "split", seed=12345)
    result = _fit(second, 3, num_workers, resume=True)

    assert result["resumed_from"] == 1
    assert result["epochs"] == 3 and result["global_step"] == full_result["global_step"] == 3 * 7
    _assert_same_state(full.model.state_dict(), second.model.state_dict())
    momentum_full = [s["momentum_buffer"] for s in full.optimizer.state_dict()["state"].values()]
    momentum_split = [s["momentum_buffer"] for s in second.optimizer.state_dict()["state"].values()]
    assert all(torch.equal(a, b) for a, b in zip(momentum_full, momentum_split, strict=True))
    assert second.scheduler.state_dict() == full.scheduler.state_dict()
    assert [r["loss"] for r in result["history"]] == [r["loss"] for r in full_result["history"]]


def test_different_seed_gives_different_weights(tmp_path):
    # guards the test above against passing trivially (e.g. training that does nothing)
    states = []
    for seed in (7, 8):
        ctx = engine.setup(device="cpu", seed=seed)
        trainer = _trainer(ctx, tmp_path / str(seed), seed=7)  # same init, different run seed
        _fit(trainer, 1)
        states.append(trainer.model.state_dict())
    assert not torch.equal(states[0]["0.weight"], states[1]["0.weight"])


def test_resume_without_checkpoint_starts_fresh_and_finished_run_is_a_no_op(ctx, tmp_path):
    trainer = _trainer(ctx, tmp_path)
    assert _fit(trainer, 1, resume=True)["resumed_from"] is None
    again = _trainer(ctx, tmp_path)
    result = _fit(again, 1, resume=True)
    assert result["resumed_from"] == 1 and result["global_step"] == 7
    _assert_same_state(trainer.model.state_dict(), again.model.state_dict())


def test_data_order_is_a_pure_function_of_seed_and_epoch():
    data = worker.ToyImages(10)

    def order(seed, epoch, rank=0, world=1):
        loader = engine.make_loader(data, 3, train=True, seed=seed, rank=rank, world_size=world)
        loader.set_epoch(epoch)
        return [i for _, _, idx in loader for i in idx.tolist()]

    assert order(0, 2) == order(0, 2)
    assert order(0, 1) != order(0, 2) and order(1, 1) != order(0, 1)
    assert sorted(order(0, 3)) == list(range(10))
    # two ranks split the same permutation (padded by repetition to 2 x 5)
    assert sorted(order(0, 3, 0, 2) + order(0, 3, 1, 2)) == list(range(10))


def test_evaluation_shards_never_pad_or_repeat():
    for world in (1, 2, 3, 4):
        shards = [list(engine.ShardSampler(11, world, r)) for r in range(world)]
        assert sorted(i for s in shards for i in s) == list(range(11))
        assert shards[0] == list(range(0, 11, world))


def test_rng_state_round_trip():
    state = engine.get_rng_state()
    drawn = (random.random(), np.random.rand(), torch.rand(3))
    engine.set_rng_state(state)
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert drawn[:2] == again[:2] and torch.equal(drawn[2], again[2])


# --------------------------------------------------------------------------- checkpoints


def test_checkpoint_written_atomically_every_epoch(ctx, tmp_path):
    seen = []

    def on_epoch_end(epoch, trainer):
        checkpoint = torch.load(trainer.checkpoint_path, map_location="cpu", weights_only=True)
        seen.append(checkpoint["epoch"])
        assert checkpoint["global_step"] == trainer.global_step
        assert checkpoint["extra"] == {"config": {"lr": 0.1, "name": "toy"}}
        assert set(checkpoint) >= {"model", "optimizer", "scheduler", "scaler", "rng", "epoch"}
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []

    trainer = _trainer(ctx, tmp_path)
    _fit(trainer, 3, extra={"config": {"lr": 0.1, "name": "toy"}}, on_epoch_end=on_epoch_end)
    assert seen == [1, 2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "train.log"]

    # the evaluation path: weights only, into a fresh model, metadata returned
    fresh = worker.build_model(dropout=0.3)
    meta = engine.load_checkpoint_weights(tmp_path / "last.pt", fresh)
    assert meta["epoch"] == 3 and meta["extra"]["config"]["name"] == "toy"
    _assert_same_state(fresh.state_dict(), trainer.model.state_dict())


def test_interrupted_write_keeps_previous_checkpoint(ctx, tmp_path, monkeypatch):
    trainer = _trainer(ctx, tmp_path)
    _fit(trainer, 1)
    before = (tmp_path / "last.pt").read_bytes()
    real_save = torch.save

    def torn_save(obj, handle, *args, **kwargs):
        handle.write(b"partial bytes")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(KeyboardInterrupt):
        _fit(trainer, 2)
    monkeypatch.setattr(torch, "save", real_save)
    assert (tmp_path / "last.pt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "train.log"]


def test_loading_a_checkpoint_restores_the_rng(ctx, tmp_path):
    trainer = _trainer(ctx, tmp_path)
    _fit(trainer, 1)
    trainer.save_checkpoint()
    drawn = torch.rand(4), np.random.rand(), random.random()
    trainer.load_checkpoint()
    again = torch.rand(4), np.random.rand(), random.random()
    assert torch.equal(drawn[0], again[0]) and drawn[1:] == again[1:]


def test_load_checkpoint_weights_accepts_wrapped_state_dict_and_names_bad_files(tmp_path):
    model = worker.build_model()
    torch.save({f"module._orig_mod.{k}": v for k, v in model.state_dict().items()}, tmp_path / "w.pt")
    fresh = worker.build_model()
    assert engine.load_checkpoint_weights(tmp_path / "w.pt", fresh) == {}
    _assert_same_state(fresh.state_dict(), model.state_dict())
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt"):
        engine.load_checkpoint_weights(tmp_path / "bad.pt", fresh)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        engine.load_checkpoint_weights(tmp_path / "missing.pt", fresh)


def test_extra_must_be_plain_data(ctx, tmp_path):
    trainer = _trainer(ctx, tmp_path)
    with pytest.raises(TypeError, match=r"extra\['path'\]: value of type PosixPath"):
        _fit(trainer, 1, extra={"path": tmp_path})


def test_non_finite_loss_stops_before_writing_a_checkpoint(ctx, tmp_path):
    trainer = _trainer(ctx, tmp_path)

    def nan_step(model, batch, epoch):
        return worker.step_fn(model, batch, epoch) * float("nan")

    with pytest.raises(FloatingPointError, match="epoch 1"):
        trainer.fit(worker.ToyImages(12), epochs=1, batch_size=6, step_fn=nan_step)
    assert not (tmp_path / "last.pt").exists()


# --------------------------------------------------------------------------- progress / log


def _epoch_lines(path):
    return [m.groups() for line in path.read_text().splitlines() if (m := EPOCH_LINE.search(line))]


def test_train_log_has_one_line_per_epoch_across_a_resume(ctx, tmp_path):
    _fit(_trainer(ctx, tmp_path), 1)
    assert _epoch_lines(tmp_path / "train.log") == [("1", "1")]
    _fit(_trainer(ctx, tmp_path), 3, resume=True)
    assert _epoch_lines(tmp_path / "train.log") == [("1", "1"), ("2", "3"), ("3", "3")]
    assert "resumed from" in (tmp_path / "train.log").read_text()


def test_progress_bar_shows_loss_and_throughput(ctx, tmp_path, capsys, monkeypatch):
    # redraw on every update (the default 0.1 s interval is longer than this whole epoch)
    monkeypatch.setattr(engine, "tqdm", functools.partial(engine.tqdm, mininterval=0))
    trainer = _trainer(ctx, tmp_path)
    trainer.progress = True
    _fit(trainer, 1)
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "loss=" in err and "samples_per_s=" in err


# --------------------------------------------------------------------------- misc API


def test_device_and_collectives_outside_a_process_group():
    assert engine.resolve_device("cpu") == torch.device("cpu")
    assert engine.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="--device cuda: this machine has no CUDA device"):
            engine.resolve_device("cuda")
    with pytest.raises(ValueError, match="device"):
        engine.resolve_device("gpu0")
    assert engine.is_main_process()
    engine.barrier()
    counts = {"a": torch.tensor([1, 2]), "b": torch.tensor(0.5)}
    assert engine.sync_states(counts)["a"].tolist() == [1, 2]
    with pytest.raises(TypeError, match="'flag'"):
        engine.sync_states({"flag": torch.tensor([True])})


def test_evaluate_restores_train_mode_and_counts_every_sample(ctx):
    model = worker.build_model(dropout=0.5).train()
    modes = []
    summary = engine.evaluate(
        model, worker.ToyImages(9), ctx=ctx, batch_size=4, progress=False,
        eval_fn=lambda m, batch: modes.append((m.training, torch.is_grad_enabled())),
    )
    assert summary["samples"] == 9 and modes == [(False, False)] * 3 and model.training


# --------------------------------------------------------------------------- distributed (CPU, gloo)


def _torchrun(tmp_path, nproc, timeout=90):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    command = [
        sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--standalone",
        str(HERE / "engine_worker.py"), "--out", str(tmp_path), "--batch-size", "4",
    ]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"torchrun failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return torch.load(tmp_path / "result.pt", weights_only=True)


def test_two_gloo_processes_match_one(tmp_path):
    two = _torchrun(tmp_path, 2)
    assert two["world_size"] == 2

    single_ctx = engine.setup(device="cpu", seed=0)  # what engine_worker.main() does, 1 process
    one_eval = worker.run_eval(single_ctx)
    one_train = worker.run_train(single_ctx, tmp_path / "single", batch_size=8)  # 1 x 8 == 2 x 4

    # (a) evaluation: r::world sharding never pads, so integer counts are exactly equal and
    # every one of the 37 samples was seen exactly once
    assert two["eval"]["samples"] == one_eval["samples"] == worker.EVAL_SIZE
    for key in ("correct", "total", "seen"):
        assert torch.equal(two["eval"][key], one_eval[key]), key
    assert two["eval"]["seen"].tolist() == [1] * worker.EVAL_SIZE
    # the float64 sum is only reassociated (two partial sums added), not exact in general
    torch.testing.assert_close(two["eval"]["logit_sum"], one_eval["logit_sum"], rtol=1e-12, atol=1e-12)

    # (b) training: rank r's batch k is perm[8k + r :: 2] of the same permutation, so the two
    # ranks together see exactly the single process's batch k of 8. DDP averages the two
    # per-rank mean gradients, which is the mean over 8 up to float32 reassociation (the
    # single process sums 8 per-sample terms in one reduction, DDP sums two sums of 4 and
    # halves), so the weights agree to rounding error, not bit for bit. Observed max abs
    # difference after 2 epochs x 6 steps: 8e-8 on weights of magnitude <= 0.5, i.e. a few
    # float32 ulps; the tolerance below leaves about 10x headroom.
    assert two["train"]["global_step"] == one_train["global_step"] == 2 * 6
    for key, value in one_train["state"].items():
        torch.testing.assert_close(two["train"]["state"][key], value, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(two["train"]["losses"], one_train["losses"], rtol=1e-5, atol=1e-6)

    # rank 0 wrote a loadable checkpoint holding the unwrapped (no "module.") weights
    checkpoint = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert checkpoint["world_size"] == 2 and checkpoint["epoch"] == 2
    assert len(checkpoint["rng"]) == 2  # one RNG state per rank
    assert not torch.equal(checkpoint["rng"][0]["torch"], checkpoint["rng"][1]["torch"])
    _assert_same_state(checkpoint["model"], two["train"]["state"])
    assert len(_epoch_lines(tmp_path / "run" / "train.log")) == 2  # rank 0 only


def test_cpu_amp_rule():
    """CPU autocast: bf16 only where the CPU has native bf16; fp16 is refused on CPU."""
    cpu = torch.device("cpu")
    expected = torch.bfloat16 if engine.cpu_has_native_bf16() else None
    assert engine._amp_dtype(True, cpu) is expected
    assert engine._amp_dtype(False, cpu) is None
    assert engine._amp_dtype("bf16", cpu) is torch.bfloat16
    with pytest.raises(ValueError, match="needs CUDA"):
        engine._amp_dtype("fp16", cpu)
