"""The shared input/output checks every reader and verb uses (hideseek.inputs, cli.common)."""

import json
import os

import pytest

from hideseek.cli import main
from hideseek.cli.common import UserError, write_text_atomic
from hideseek.inputs import InputError, check_writable, confined, finite, read_json, read_lines, read_text


def test_text_with_and_without_bom_reads_the_same(tmp_path):
    plain, bom = tmp_path / "a.txt", tmp_path / "b.txt"
    plain.write_bytes(b"x,1\r\ny,2\n")
    bom.write_bytes(b"\xef\xbb\xbfx,1\r\ny,2\n")
    assert read_lines(plain) == read_lines(bom) == ["x,1", "y,2"]


def test_non_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "meta.txt"
    path.write_bytes(b"ok\nbad \xff here\n")
    with pytest.raises(InputError, match=r"meta\.txt:2: expected UTF-8 text, found byte 0xff"):
        read_text(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_text(tmp_path / "nope.txt")
    with pytest.raises(InputError, match="found a folder"):
        read_text(tmp_path)


@pytest.mark.parametrize("top, expect, found", [([1], dict, "a list"), ({"a": 1}, list, "an object"),
                                                 ("s", dict, "a string"), (None, list, "null"), (3, dict, "a number")])
def test_json_top_level(tmp_path, top, expect, found):
    path = tmp_path / "x.json"
    path.write_text(json.dumps(top))
    with pytest.raises(InputError, match=f"found {found}"):
        read_json(path, expect=expect)


def test_json_syntax_error_names_line(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{\n"a": 1,\n}\n')
    with pytest.raises(InputError, match=r"x\.json:3: not valid JSON"):
        read_json(path)


@pytest.mark.parametrize("bad", ["../x.png", "a/../../x.png", "/etc/passwd", "a\\..\\..\\x", "", "a\x00b"])
def test_confined_refuses_paths_that_leave_the_root(tmp_path, bad):
    with pytest.raises(InputError, match="meta.txt:3"):
        confined(tmp_path, bad, "meta.txt:3")


def test_confined_keeps_ordinary_relative_paths(tmp_path):
    assert confined(tmp_path, "train/a..b/x.png") == tmp_path / "train" / "a..b" / "x.png"


@pytest.mark.parametrize("bad", ["nan", float("inf"), "abc", None])
def test_finite(bad):
    with pytest.raises(InputError, match="box x0"):
        finite(bad, "box x0")
    assert finite("2.5", "x") == 2.5


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_check_writable_refuses_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(InputError, match="cannot write"):
            check_writable(folder / "out.json")
    finally:
        folder.chmod(0o700)


def test_check_writable_refuses_a_folder_and_leaves_nothing(tmp_path):
    with pytest.raises(InputError, match="is a folder"):
        check_writable(tmp_path)
    check_writable(tmp_path / "sub" / "out.json")
    assert list((tmp_path / "sub").iterdir()) == []


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "out.json"
    write_text_atomic(path, "old")

    def full(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("pathlib.Path.write_text", full)
    with pytest.raises(UserError, match="No space left"):
        write_text_atomic(path, "new")
    monkeypatch.undo()
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_check_writable_refuses_a_path_under_a_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="cannot write"):
        check_writable(blocker / "out.json")


def test_ctrl_c_is_one_line_and_130(monkeypatch, capsys):
    import argparse

    import hideseek.cli as cli

    def interrupted(args):
        raise KeyboardInterrupt

    class Parser:
        def parse_args(self, argv):
            return argparse.Namespace(handler=interrupted)

    monkeypatch.setattr(cli, "build_parser", Parser)
    assert main(["anything"]) == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_input_error_from_a_room_is_one_line_and_2(monkeypatch, capsys):
    import argparse

    import hideseek.cli as cli

    def bad(args):
        raise InputError("meta.txt:3: expected 4 numbers")

    class Parser:
        def parse_args(self, argv):
            return argparse.Namespace(handler=bad)

    monkeypatch.setattr(cli, "build_parser", Parser)
    assert main(["anything"]) == 2
    assert capsys.readouterr().err == "error: meta.txt:3: expected 4 numbers\n"
