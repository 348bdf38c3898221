"""Shared by the CLI tests: run ``hideseek`` in this process and check the one-line error shape."""

from hideseek.cli import main


def run(capsys, *argv) -> tuple[int, str, str]:
    """``(exit code, stdout, stderr)`` of ``hideseek <argv>`` in this process (earlier output discarded)."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str, *needles: str) -> str:
    """Exit code 2 and one ``error: ...`` line on stderr holding every needle; returns the line."""
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], err
    return lines[0]
