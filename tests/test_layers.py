"""The rooms import each other only as the design says (every import, function-level ones too).

ground floor: augment, engine, results (none of them imports a task room)
core:         cam (imports the ground floor only)
tasks:        localization, segmentation, action (import cam and the ground floor; action never
              imports localization or segmentation; segmentation may use localization's image
              data, whose synthetic generator draws its scenes; localization never imports the others)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "hideseek"
ROOMS = ("augment", "engine", "results", "cam", "localization", "segmentation", "action", "bench", "cli")

# room -> rooms it must never import (anything else under hideseek is allowed)
FORBIDDEN = {
    "augment": {"cam", "localization", "segmentation", "action", "bench", "cli"},
    "engine": {"cam", "localization", "segmentation", "action", "bench", "cli"},
    "results": {"cam", "localization", "segmentation", "action", "bench", "cli"},
    "cam": {"localization", "segmentation", "action", "bench", "cli"},
    "localization": {"segmentation", "action", "bench", "cli"},
    "segmentation": {"action", "bench", "cli"},
    "action": {"localization", "segmentation", "bench", "cli"},
}
# segmentation's only way into localization: its image data
ALLOWED_PREFIXES = {"segmentation": {"localization": ("hideseek.localization.data",)}}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "hideseek" and parts[1] in ROOMS else None


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_room_imports_follow_the_layers(room):
    base = SRC / room
    files = sorted(base.rglob("*.py")) if base.is_dir() else [SRC / f"{room}.py"]
    bad = []
    for path in files:
        for line, module in _imports(path):
            target = _room(module)
            if target not in FORBIDDEN[room]:
                continue
            allowed = ALLOWED_PREFIXES.get(room, {}).get(target, ())
            if not (allowed and module.startswith(allowed)):
                bad.append(f"{path.relative_to(SRC.parent)}:{line} imports {module}")
    assert not bad, "\n".join(bad)
