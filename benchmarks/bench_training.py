"""Training-step overhead of Hide-and-Seek (CPU, small model): the same ResNet-18 step on
the same 8 x 3 x 128 x 128 batch, without and with ``hide_patches(x, inplace=True)``.

Run: ``PYTHONPATH=src python -m pytest benchmarks/bench_training.py --benchmark-only``

The GPU figure of interest (ResNet-50, batch 256) comes from ``hideseek bench --device
cuda``, which alternates the two variants round by round.
"""

from __future__ import annotations

import pytest
import torch

from hideseek.augment import hide_patches

GROUP = "train-step-resnet18-8x3x128x128"


@pytest.fixture(scope="module")
def setup():
    import timm

    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, num_classes=1000).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(8, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 1000, (8,), generator=torch.Generator().manual_seed(2))

    def step(inp):
        loss = torch.nn.functional.cross_entropy(model(inp), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, x


@pytest.mark.benchmark(group=GROUP)
def test_step_plain(benchmark, setup):
    step, x = setup
    benchmark.pedantic(step, args=(x,), rounds=10, iterations=1, warmup_rounds=2)


@pytest.mark.benchmark(group=GROUP)
def test_step_with_hide_and_seek(benchmark, setup):
    step, x = setup
    work = x.clone()
    benchmark.pedantic(lambda: step(hide_patches(work, inplace=True)), rounds=10, iterations=1,
                       warmup_rounds=2)
