"""Create or update ONE virtualenv shared by several tox environments, safely in parallel.

``python tools/shared_env.py DIR [PIP ARGS...]`` takes an exclusive lock on ``DIR.lock``,
and (re)builds ``DIR`` with ``pip install PIP ARGS`` only when the stamp (a digest of
pyproject.toml and the pip arguments) changed. Concurrent callers (``tox p``) wait for
the first one and then find the environment ready. Standard library only.
"""

from __future__ import annotations

import fcntl
import hashlib
import subprocess
import sys
import venv
from pathlib import Path


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: shared_env.py DIR [PIP ARGS...]", file=sys.stderr)
        return 2
    target = Path(argv[0]).resolve()
    pip_args = argv[1:] or ["-e", "."]
    digest = hashlib.sha256(Path("pyproject.toml").read_bytes() + "\0".join(pip_args).encode()).hexdigest()
    stamp = target / ".hideseek-shared-env"
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{target}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.is_file() and stamp.read_text() == digest:
            return 0
        print(f"building the shared environment {target}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(target)
        python = target / "bin" / "python"
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *pip_args], check=True)
        stamp.write_text(digest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
