"""Result records: many processes append at once, no line is lost or corrupted."""

import json
import multiprocessing as mp

import pytest

from hideseek.results.records import RecordError, append_record, make_record, read_records


def _writer(path, worker, count):
    for i in range(count):
        record = make_record(task="loc", dataset="synthetic", split="test", metrics={"x": i, "pad": "y" * (500 + 37 * worker)},
                             config={"worker": worker}, seed=worker, run=f"w{worker}-{i}")
        append_record(path, record)


def test_concurrent_appends_lose_nothing(tmp_path):
    path = tmp_path / "records.jsonl"
    workers, count = 8, 25
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), w, count)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    lines = path.read_text().splitlines()
    assert len(lines) == workers * count
    runs = {json.loads(line)["run"] for line in lines}  # every line is valid JSON
    assert runs == {f"w{w}-{i}" for w in range(workers) for i in range(count)}


def test_record_fields_and_read_back(tmp_path):
    path = tmp_path / "r.jsonl"
    record = make_record(task="loc", dataset="cub", split="val", metrics={"MaxBoxAccV2": 61.5}, config={"lr": 0.1},
                         policy={"name": "oracle"}, seed=3, device="cpu", wall_time=1.5)
    append_record(path, record)
    (back,) = read_records(path)
    assert back["metrics"] == {"MaxBoxAccV2": 61.5}
    for key in ("config", "policy", "seed", "commit", "device", "wall_time", "created", "version"):
        assert key in back


def test_corrupt_line_names_file_and_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(RecordError, match=r"r.jsonl:2: not a JSON record"):
        read_records(path)
