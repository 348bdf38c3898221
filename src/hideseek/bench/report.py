"""Tables from ``hideseek bench`` result files: every figure next to the ceilings
(``x.clone()``, ``x.fill_()``) and the peers measured in the same run.

``render(docs, "markdown")`` gives one section per result file (images, peers, frames,
evaluators, training step) plus a targets table that covers CPU and GPU; a device with no
result file is listed as "not measured". ``render(docs, "csv")`` gives every row with its
derived ratios, one line per row.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["load_results", "flat_rows", "targets", "render", "BYTES_NOTE"]

BYTES_NOTE = (
    "GB/s = minimum bytes moved / median time (10^9 B/s). Bytes, for N elements of s bytes: "
    "clone and out-of-place hiding 2Ns (read + write); fill Ns; in-place hiding fNs (only the "
    "hidden cells are written; f = measured hidden fraction); normalise and normalise-and-hide "
    "N(1 + s_out) (uint8 read, s_out-byte write); hide_frames with the mean fill 3Ns out of "
    "place, Ns + fNs in place. BW / clone and BW / fill are achieved GB/s over those of "
    "`x.clone()` and `x.fill_(0)` on the same device in the same run; speed vs clone is "
    "clone's time over the row's time (same batch).")


def load_results(paths: Iterable[os.PathLike | str]) -> list[dict[str, Any]]:
    """Read result documents, with an error naming the file when one is not a bench result."""
    docs = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as fh:
                doc = json.load(fh)
        except json.JSONDecodeError as err:
            raise ValueError(f"{os.fspath(path)}:{err.lineno}: not valid JSON ({err.msg})") from None
        if not isinstance(doc, dict) or doc.get("suite") != "hideseek-bench" or "rows" not in doc:
            raise ValueError(f"{os.fspath(path)}: not a 'hideseek bench' result (no suite/rows keys)")
        doc["_path"] = os.fspath(path)
        docs.append(doc)
    return docs


def _by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in doc["rows"]}


def _ms(row: dict[str, Any] | None) -> str:
    return "n/a" if row is None else f"{row['median_s'] * 1e3:.3g}" if row["median_s"] < 0.01 \
        else f"{row['median_s'] * 1e3:.1f}"


def _num(v: float | None, fmt: str = "{:.2f}") -> str:
    return "" if v is None else fmt.format(v)


def _ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
    """Time of ``b`` over time of ``a`` (how many times faster ``a`` is)."""
    if a is None or b is None:
        return None
    return b["median_s"] / a["median_s"]


def flat_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every row of one document with its derived ratios."""
    rows = _by_name(doc)
    out = []
    for r in doc["rows"]:
        group = r["group"]
        clone = rows.get("clone") if group == "images" else None
        fill = rows.get("fill") if group == "images" else None
        if group == "frames":
            clone = rows.get("clone_" + ("clips" if "clips" in r["name"] else "features"))
        base = rows.get(r.get("baseline", ""))
        out.append({
            "device": doc["machine"]["device"], "group": group, "name": r["name"], "label": r["label"],
            "median_ms": r["median_s"] * 1e3, "items": r["items"], "unit": r["unit"],
            "items_per_s": r["items_per_s"], "gb_per_s": r.get("gb_per_s"),
            "bw_vs_clone": None if clone is None or r.get("gb_per_s") is None else r["gb_per_s"] / clone["gb_per_s"],
            "bw_vs_fill": None if fill is None or r.get("gb_per_s") is None else r["gb_per_s"] / fill["gb_per_s"],
            "speed_vs_clone": _ratio(r, clone),
            "baseline": r.get("baseline"),
            # a CAM method's row is per image against vanilla CAM's, paired round by round (its
            # images per call may differ from vanilla CAM's): the inverse of its ratio_to_cam
            "speedup_vs_baseline": 1.0 / r["ratio_to_cam"] if group == "cams" else _ratio(r, base),
            "overhead": r.get("overhead"), "rounds": r["rounds"],
        })
    return out


def _table(header: Sequence[str], rows: list[Sequence[str]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(sep) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _shape(row: dict[str, Any]) -> str:
    return " x ".join(str(v) for v in row.get("shape", []))


def _bf16(machine: dict[str, Any]) -> str:
    native = machine.get("cpu_native_bf16")
    return "native bf16 not recorded" if native is None else ("native bf16" if native else "no native bf16")


def _machine_line(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    v = m["versions"]
    where = f"GPU {m['gpu']['name']} (CUDA {m['gpu']['cuda']})" if m.get("gpu") else \
        f"CPU {m['cpu']} ({m['cpu_count']} cores, {m['torch_threads']} torch threads, {_bf16(m)})"
    load = f"load average {doc.get('loadavg_before')} before, {doc.get('loadavg_after')} after"
    return (f"{where}; torch {v['torch']}, timm {v['timm']}, torchvision {v['torchvision']}, numpy "
            f"{v['numpy']}, triton {v['triton']}; {m['date']}, commit {str(m['commit'])[:12]}; {load}. "
            f"File `{doc['_path']}`, workload size `{doc['size']}`.")


def _section(doc: dict[str, Any]) -> str:
    rows = _by_name(doc)
    flat = {r["name"]: r for r in flat_rows(doc)}
    dev = doc["machine"]["device"].upper()
    parts = [f"#### {dev}", "", _machine_line(doc), ""]

    img = [r for r in doc["rows"] if r["group"] == "images"]
    if img:
        head = f"{_shape(img[0])}"
        table = []
        for r in img:
            f = flat[r["name"]]
            table.append([r["label"], _ms(r), f"{r['items_per_s']:.0f}", _num(r.get("gb_per_s"), "{:.1f}"),
                          _num(f["bw_vs_clone"]), _num(f["bw_vs_fill"]), _num(f["speed_vs_clone"])])
        parts += [_table([head, "ms", "images/s", "GB/s", "BW / clone", "BW / fill", "speed vs clone"], table), ""]
        pairs = [
            ("`hide_patches` grid 16, in place", "hide_g16_inplace", "per-patch loop, in place", "loop_g16_inplace"),
            ("`hide_patches` grid 16", "hide_g16", "per-patch loop, on a copy", "loop_g16"),
            ("`hide_patches`, in place", "hide_inplace", "timm `RandomErasing`", "timm_erasing"),
            ("`hide_patches`, in place", "hide_inplace", "torchvision `RandomErasing`", "tv_erasing"),
            ("`normalize_and_hide`", "fused", "`normalize` then `hide_patches` in place", "normalize_then_hide"),
            ("`normalize_and_hide`", "fused", "`normalize` alone (no hiding)", "normalize"),
        ]
        table = [[ours, _ms(rows.get(a)), peer, _ms(rows.get(b)), _num(_ratio(rows.get(a), rows.get(b)))]
                 for ours, a, peer, b in pairs if a in rows and b in rows]
        parts += [_table(["ours", "ms", "peer", "ms", "speed-up"], table, "lrlrr"), ""]

    frames = [r for r in doc["rows"] if r["group"] == "frames"]
    if frames:
        table = [[f"{r['label']} ({_shape(r)})", _ms(r), f"{r['items_per_s']:.0f}", _num(r.get("gb_per_s"), "{:.1f}"),
                  _num(flat[r["name"]]["bw_vs_clone"])] for r in frames]
        parts += [_table(["frame hiding, fp32", "ms", "videos/s", "GB/s", "BW / clone"], table), ""]

    ev = [r for r in doc["rows"] if r["group"] == "evaluators"]
    if ev:
        checks = doc.get("checks", {})
        table = []
        for r in ev:
            what = (f"{r['maps']} maps {r['size']}x{r['size']}, {r['thresholds']} thresholds" if r["unit"] == "maps"
                    else f"{r['videos']} videos x {r['classes']} classes x {r['predictions_per_video']} preds")
            same = checks.get("boxes_identical" if r["unit"] == "maps" else "tmap_identical")
            table.append([r["label"], what, _ms(r), _num(flat[r["name"]]["speedup_vs_baseline"], "{:.1f}x"),
                          "" if same is None else ("yes" if same else "NO")])
        parts += [_table(["evaluator", "workload", "ms / run", "speed-up vs reference", "identical result"], table,
                         "llrrr"), ""]

    tr = [r for r in doc["rows"] if r["group"] == "training"]
    if tr:
        table = [[r["label"], f"{r['model']}, batch {r['batch']}, {r['image_size']}px"
                  + (", bf16 autocast" if r.get("amp_bf16") else ", fp32"), _ms(r), f"{r['items_per_s']:.1f}",
                  "" if r.get("overhead") is None else f"{100 * r['overhead']:+.2f}%"] for r in tr]
        parts += [_table(["training step", "model", "ms / step", "images/s", "overhead"], table, "llrrr"), ""]

    lp = [r for r in doc["rows"] if r["group"] == "loop"]
    if lp:
        table = [[r["label"], f"{r['model']}, {r['items']} images, batch {r['batch']}, {r['image_size']}px, "
                  f"{r['amp_dtype']}, channels_last, {r['threads']} thread(s)", f"{1000 * r['median_s']:.0f}",
                  f"{r['items_per_s']:.1f}", "" if r.get("overhead") is None else f"{100 * r['overhead']:+.1f}%"]
                 for r in lp]
        parts += [_table(["training loop", "workload", "ms / epoch", "images/s", "vs plain loop"], table, "llrrr"),
                  ""]

    cm = [r for r in doc["rows"] if r["group"] == "cams"]
    if cm:
        parts += [_cams_table(cm), ""]
    return "\n".join(parts)


def _cams_table(rows: list[dict[str, Any]]) -> str:
    """One line per CAM method, per model its time per image and its ratio to vanilla CAM's."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cell = {(r["model"], r["method"]): r for r in rows}
    skipped = {r["model"]: r.get("skipped", []) for r in rows if r["method"] == "cam"}
    methods = list(dict.fromkeys(methods + [m for skip in skipped.values() for m in skip]))
    header = ["CAM method"]
    for m in models:
        some = next(r for r in rows if r["model"] == m)
        header += [f"{m} ({some['channels']} ch), ms / image", "x cam"]
    table = []
    for method in methods:
        line = [f"`{method}`"]
        for m in models:
            r = cell.get((m, method))
            if r is None:
                line += ["not run (one forward per channel per image)" if method in skipped.get(m, ()) else "not run",
                         ""]
                continue
            n = f" ({r['images']} img x {r['rounds']})"
            line += [f"{r['per_image_s'] * 1e3:.1f}{n}", f"{r['ratio_to_cam']:.1f}"]
        table.append(line)
    first = rows[0]
    note = (f"CAM methods through `CAMNet.cams(x, classes=..., method=...)`, {first['image_size']} px, "
            f"{first['dtype']}, random weights, 1000 classes, one GT-style class per image; "
            "ms / image (images per call x rounds) is the median over rounds, x cam the median over rounds "
            "of the time per image over vanilla CAM's in the same round (methods alternate call by call).")
    return _table(header, table, "l" + "r" * (len(header) - 1)) + "\n\n" + note


def targets(docs: Sequence[dict[str, Any]]) -> list[list[str]]:
    """Rows ``[target, device, measured, met]``; a device without a result file is "not measured"."""
    by_dev = {d["machine"]["device"]: d for d in docs}
    out = []

    def add(target: str, dev: str, fn) -> None:
        doc = by_dev.get(dev)
        if doc is None:
            out.append([target, dev.upper(), "not measured", "not measured"])
            return
        try:
            shown, ok = fn(_by_name(doc), doc.get("checks", {}), doc)
        except (KeyError, TypeError, ZeroDivisionError):
            shown, ok = "row missing", None
        met = "" if ok is None else ("yes" if ok else "no")
        if doc.get("size") != "full":
            met = f"n/a (workload '{doc.get('size')}'; targets are for 'full')"
        out.append([target, dev.upper(), shown, met])

    def speed(a, b, need):
        def fn(rows, checks, doc):
            v = rows[b]["median_s"] / rows[a]["median_s"]
            return f"{v:.2f}x", v >= need
        return fn

    add("hide_patches >= 0.7x the speed of x.clone() (out of place)", "cpu", speed("hide", "clone", 0.7))
    add("hide_patches >= 5x the per-patch loop, grid 16", "cpu", speed("hide_g16", "loop_g16", 5.0))
    add("hide_patches in place faster than x.clone()", "cpu", speed("hide_inplace", "clone", 1.0))

    def fused_bw(rows, checks, doc):
        v = rows["fused"]["gb_per_s"] / rows["clone"]["gb_per_s"]
        return f"{100 * v:.0f}% of clone's GB/s", v >= 0.8
    add("normalize_and_hide >= 80% of clone's bandwidth", "cuda", fused_bw)

    def overhead(rows, checks, doc):
        r = rows["train_hide"]
        return f"{100 * r['overhead']:+.2f}% ({r['model']}, batch {r['batch']})", \
            r["overhead"] < 0.01 and r["model"] == "resnet50" and r["batch"] == 256
    add("Hide-and-Seek adds < 1% to a ResNet-50 training step at batch 256", "cuda", overhead)

    def loop(rows, checks, doc):
        r = rows["loop_project"]
        return f"{100 * r['overhead']:+.1f}% ({r['model']}, {r['image_size']}px)", r["overhead"] <= 0.10
    add("hideseek's training loop within 10% of a plain hand-written loop", "cpu", loop)

    def masks(rows, checks, doc):
        keys = [k for k in checks if k.startswith("cuda_")]
        if not keys:
            return "row missing", None
        ok = all(checks[k] for k in keys)
        return ", ".join(f"{k}={checks[k]}" for k in keys), ok
    add("GPU masks (and fused outputs) identical to CPU", "cuda", masks)

    def tmap(rows, checks, doc):
        v = rows["tmap_pandas"]["median_s"] / rows["tmap_vectorised"]["median_s"]
        return f"{v:.0f}x, max abs diff {checks['tmap_max_abs_diff']:.1e}", v >= 100 and checks["tmap_identical"]
    add("temporal mAP (ActivityNet) >= 100x the pandas loop, same mAP", "cpu", tmap)
    return out


def render(docs: Sequence[dict[str, Any]], fmt: str = "markdown") -> str:
    """The report as Markdown (sections + targets + byte formula) or CSV (flat rows)."""
    if fmt == "csv":
        rows = [r for d in docs for r in flat_rows(d)]
        buf = io.StringIO()
        if rows:
            writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        return buf.getvalue()
    if fmt != "markdown":
        raise ValueError(f"format must be 'markdown' or 'csv', got {fmt!r}")
    parts = [_section(d) for d in docs]
    measured = {d["machine"]["device"] for d in docs}
    for dev in ("cpu", "cuda"):
        if dev not in measured:
            parts.append(f"#### {dev.upper()}\n\nnot measured (no result file for this device).\n")
    parts += ["#### Targets", "", _table(["target", "device", "measured", "met"], targets(docs), "llll"), "",
              BYTES_NOTE, ""]
    return "\n".join(parts)
