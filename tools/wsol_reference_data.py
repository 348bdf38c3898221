"""Record facts of the public WSOL benchmark's networks as test data (tests/data/wsol_benchmark_*.json).

``python tools/wsol_reference_data.py /path/to/wsolevaluation`` imports the benchmark's
``wsol`` package from a checkout of github.com/clovaai/wsolevaluation (CPU is enough) and
writes, for every architecture x type x ``large_feature_map`` with 5 classes:

* ``wsol_benchmark_params.json``: the ordered ``[name, shape]`` list of the state dict;
* ``wsol_benchmark_torchvision.json``: where the benchmark's own ``load_pretrained_model``
  puts each tensor of a torchvision ImageNet state dict (a fake one of the right layout,
  every tensor a distinct constant, so each loaded tensor names its source): the source
  prefixes it drops and the prefix renames it applies (every other key keeps its name).
  ResNet50 ``cam``/``adl`` are also recorded for ILSVRC (1000 classes), where the
  benchmark keeps torchvision's ``fc``.

The tests read these files; nothing here runs during the tests.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch
import torchvision

OUT = Path(__file__).resolve().parents[1] / "tests" / "data"
ARCHS = ("vgg16", "resnet50", "inception_v3")
TYPES = ("cam", "acol", "spg", "adl")
FILES = {"vgg16": "vgg16.pth", "resnet50": "resnet50.pth", "inception_v3": "inception_v3.pth"}
KWARGS = {"adl_drop_rate": 0.75, "adl_drop_threshold": 0.9, "acol_drop_threshold": 0.7}
TAG0 = 1000  # tags stay clear of the 0/1 constants of freshly initialised tensors


def model_key(arch: str, kind: str, lfm: bool, suffix: str = "") -> str:
    return f"{arch}/{kind}/lfm{int(lfm)}{suffix}"


def fake_torchvision(arch: str) -> dict[str, torch.Tensor]:
    """torchvision's state dict layout with every tensor a distinct constant (expanded: no memory)."""
    with torch.device("meta"):
        template = getattr(torchvision.models, arch)(weights=None, **({"aux_logits": True, "init_weights": False}
                                                                     if arch == "inception_v3" else {})).state_dict()
    return {k: torch.full((1,), TAG0 + i, dtype=v.dtype).expand(v.shape) if v.ndim else torch.tensor(TAG0 + i)
            for i, (k, v) in enumerate(template.items())}


def common_suffix_split(source: str, target: str) -> tuple[str, str]:
    s, t = source.split("."), target.split(".")
    while len(s) > 1 and len(t) > 1 and s[-1] == t[-1]:
        s, t = s[:-1], t[:-1]
    return ".".join(s), ".".join(t)


def placement(wsol, arch: str, kind: str, lfm: bool, num_classes: int, dataset: str, folder: Path) -> dict:
    module = getattr(wsol, {"vgg16": "vgg", "resnet50": "resnet", "inception_v3": "inception"}[arch])
    fake = fake_torchvision(arch)
    model = getattr(wsol, arch)(kind, num_classes=num_classes, large_feature_map=lfm, **KWARGS)
    torch.save(fake, folder / FILES[arch])
    if arch == "vgg16":
        module.load_pretrained_model(model, kind, path=str(folder))
    elif arch == "resnet50":
        module.load_pretrained_model(model, kind, path=str(folder), dataset_name=dataset)
    else:
        module.load_pretrained_model(model, path=str(folder))
    names = list(fake)
    loaded: dict[str, str] = {}
    for target, tensor in model.state_dict().items():
        flat = tensor.reshape(-1)
        value = int(flat[0].item()) if flat.numel() else -1
        if value >= TAG0 and bool((flat == value).all()):
            loaded[target] = names[value - TAG0]
    sources = set(loaded.values())
    dropped = sorted({k.split(".")[0] for k in names if k not in sources})
    renamed = sorted({common_suffix_split(s, t) for t, s in loaded.items() if s != t})
    return {"dropped": dropped, "renamed": [list(pair) for pair in renamed], "loaded": len(loaded)}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    sys.path.insert(0, argv[0])
    import wsol  # the benchmark's package

    params, weights = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for arch in ARCHS:
            for kind in TYPES:
                for lfm in (False, True):
                    with torch.device("meta"):
                        model = getattr(wsol, arch)(kind, num_classes=5, large_feature_map=lfm, **KWARGS)
                    params[model_key(arch, kind, lfm)] = [[k, list(v.shape)] for k, v in model.state_dict().items()]
                    weights[model_key(arch, kind, lfm)] = placement(wsol, arch, kind, lfm, 5, "CUB", Path(tmp))
                    if arch == "resnet50" and kind in ("cam", "adl"):
                        weights[model_key(arch, kind, lfm, "/ilsvrc")] = placement(
                            wsol, arch, kind, lfm, 1000, "ILSVRC", Path(tmp))
                    print(model_key(arch, kind, lfm), weights[model_key(arch, kind, lfm)]["loaded"], flush=True)
    for name, data in (("wsol_benchmark_params.json", params), ("wsol_benchmark_torchvision.json", weights)):
        lines = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}" for k, v in data.items())
        (OUT / name).write_text("{\n" + lines + "\n}\n")
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
