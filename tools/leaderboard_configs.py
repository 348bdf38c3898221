"""Write configs/<dataset>-<network>-<method>.toml: one file per cell of the public WSOL
benchmark's main table (6 methods x 3 networks x 3 datasets = 54), for ``hideseek reproduce``.

Run from the repository root: ``python tools/leaderboard_configs.py`` (``--table`` prints the
published main table from the registry instead, as the README shows it). Every setting comes
from the benchmark's own code (config.py defaults, main.py's optimiser and schedule,
data_loaders.py's transforms) except where its README publishes a cell's setting (the
OpenImages / VGG16 / CAM example command); the per-cell values its main table used were
searched on its train-fullsup split and are published only in a spreadsheet outside the
repository, so each file says which of its values are the cell's own and which are defaults.
"""

from __future__ import annotations

import sys
from pathlib import Path

DATASETS = {  # dataset -> (metric, classes, the folder names of the benchmark's layout), in its table's order
    "ILSVRC": ("MaxBoxAccV2", 1000, "ILSVRC"),
    "CUB": ("MaxBoxAccV2", 200, "CUB"),
    "OpenImages": ("PxAP", 100, "OpenImages"),
}
NETWORKS = {  # benchmark architecture -> (registry backbone label, torchvision weights file), in its table's order
    "vgg16": ("VGG16", "vgg16-397923af.pth"),
    "inception_v3": ("InceptionV3", "inception_v3_google-1a9a5a14.pth"),
    "resnet50": ("ResNet50", "resnet50-19c8e357.pth"),
}
METHODS = {"cam": "CAM", "has": "HaS", "acol": "ACoL", "spg": "SPG", "adl": "ADL", "cutmix": "CutMix"}

# the benchmark's config.py defaults (main.py: SGD, momentum 0.9, Nesterov, x0.1 every
# lr_decay_frequency epochs, classifier group at lr x lr_classifier_ratio)
DEFAULTS = {"epochs": 40, "batch_size": 64, "lr": 0.01, "lr_step": 30, "weight_decay": 1e-4,
            "large_feature_map": False}
# the cells whose setting the benchmark's README publishes
PUBLISHED = {("OpenImages", "vgg16", "cam"): {"epochs": 10, "batch_size": 32, "lr": 0.00227913316, "lr_step": 3,
                                               "weight_decay": 5e-4, "large_feature_map": False}}


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def render(dataset: str, network: str, method: str) -> str:
    metric, _, folder = DATASETS[dataset]
    label, weights = NETWORKS[network]
    published = PUBLISHED.get((dataset, network, method))
    setting = published or DEFAULTS
    source = ("the benchmark README's published command for this cell" if published else
              "the benchmark's config.py defaults (this cell's searched values are not in its repository)")
    run = {
        "dataset": "wsol",
        "data_root": f"dataset/{folder}",
        "metadata_root": f"metadata/{folder}",
        "backbone": f"wsol_{network}",
        "wsol_method": method,
        "pretrained_file": f"weights/{weights}",
        "large_feature_map": setting["large_feature_map"],
        "epochs": setting["epochs"],
        "batch_size": setting["batch_size"],
        "optimizer": "sgd",
        "nesterov": True,
        "lr": setting["lr"],
        "classifier_lr_ratio": 10.0,
        "schedule": "step",
        "lr_step": setting["lr_step"],
        "weight_decay": setting["weight_decay"],
        "resize_size": 256,
        "crop_size": 224,
        "hflip": True,
        "cam_curve_interval": 0.001,
        "amp": False,
    }
    lines = [
        f'description = "{METHODS[method]} on the benchmark\'s {label} on {dataset}: its main-table cell '
        f'({metric}, test split)"',
        "",
        "[target]",
        f'dataset = "{dataset}"',
        'split = "test"',
        f'backbone = "{label}"',
        f'method = "{METHODS[method]}"',
        f'metric = "{metric}"',
        "",
        f"# Setting: {source}. The method's parameters are the benchmark's defaults",
        "# (hideseek.localization.wsol_methods); put overrides in [run.method_params].",
        "# Deviations from the benchmark: hiding and CutMix draws are pure functions of",
        "# (seed, epoch, image id) instead of global RNG streams; the last checkpoint is scored.",
        "[run]",
    ]
    lines += [f"{key} = {_value(value)}" for key, value in run.items()]
    if dataset == "OpenImages":
        lines += ['mask_root = "dataset/OpenImages"']
    return "\n".join(lines) + "\n"


def published_table() -> str:
    """The main table as the registry holds it (Markdown), with the config file of each row's cells."""
    from hideseek.results.report import load_published

    published = load_published()
    cells = [(d, n) for d in DATASETS for n in NETWORKS]
    head = " | ".join(f"{d} {NETWORKS[n][0]}" for d, n in cells)
    lines = [f"| method | {head} | configs |", "|---" + "|---:" * len(cells) + "|---|"]
    for method, label in [*METHODS.items(), ("", "Best WSOL"), ("", "FSL baseline"), ("", "center-box")]:
        values = []
        for dataset, network in cells:
            backbone = "" if label == "center-box" else NETWORKS[network][0]
            row = published[(published["dataset"] == dataset) & (published["split"] == "test")
                             & (published["backbone"].fillna("") == backbone) & (published["method"] == label)
                             & (published["metric"] == DATASETS[dataset][0])]
            values.append(f"{float(row['value'].iloc[0]):.1f}" if len(row) == 1 else "")
        files = f"`*-*-{method}.toml`" if method else ""
        lines.append(f"| {label} | {' | '.join(values)} | {files} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    if "--table" in sys.argv[1:]:
        print(published_table(), end="")
        return
    out = Path(__file__).resolve().parents[1] / "configs"
    for dataset in DATASETS:
        for network in NETWORKS:
            for method in METHODS:
                name = f"{dataset.lower()}-{network.replace('_', '')}-{method}.toml"
                (out / name).write_text(render(dataset, network, method))
    print(f"wrote {len(DATASETS) * len(NETWORKS) * len(METHODS)} configs to {out}")


if __name__ == "__main__":
    main()
