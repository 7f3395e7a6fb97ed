"""Run records and the dataset cache: round trips, atomic writes, hashes and checksums."""

from __future__ import annotations

import copy
import hashlib
import json
import os

import pytest

import xbench.atomic
from xbench.measure.types import AttentionShape, Latency, Measurement
from xbench.records.migrate import NewerSchemaError
from xbench.records.result import (
    RESULT_FILE,
    SCHEMA_VERSION,
    STATUSES,
    BackendInfo,
    CrossAttentionPhases,
    Efficiency,
    Environment,
    ModelInfo,
    Quality,
    RunResult,
    TaskFacts,
    config_hash,
)
from xbench.taskkit.cache import CACHE_ENV, cached_json, key_of


def make_result(**changes) -> RunResult:
    fields = {
        "run_id": "flash-qa-0123abcd",
        "config_hash": "0" * 16,
        "xbench_version": "0.1.0",
        "git_sha": None,
        "backend": BackendInfo(
            name="flash", exact=True, options={"kernel": "auto"}, describe={"kernel": "flash"}
        ),
        "task": TaskFacts(name="qa", data={"source": "embedded", "checksum": "ab" * 32}),
        "model": ModelInfo(name="tiny", settings={"d_model": 64, "heads": 2}),
        "seed": 3,
        "quality": Quality(primary_metric="f1", primary=0.75, metrics={"f1": 0.75, "em": 0.5}),
        "efficiency": Efficiency(
            decode_step_ms=1.5,
            cross_attention=CrossAttentionPhases(
                train=Measurement(
                    shape=AttentionShape(
                        batch=2, heads=2, nq=4, nk=8, head_dim=16, dtype="float32", device="cpu"
                    ),
                    latency=Latency(median_ms=0.2, iqr_ms=0.01, count=5),
                ),
                decode=Measurement(
                    shape=AttentionShape(
                        batch=2,
                        heads=2,
                        nq=1,
                        nk=8,
                        head_dim=16,
                        dtype="float32",
                        device="cpu",
                        passes="decode",
                        padded_fraction=0.25,
                    ),
                    status="oom",
                    reason="out of memory",
                ),
                train_share=0.1,
            ),
        ),
        "environment": Environment(python="3.11", threads=2),
        "config": {"backend": {"name": "flash"}, "seed": 3},
    }
    fields.update(changes)
    return RunResult(**fields)


@pytest.mark.parametrize("status", STATUSES)
def test_run_result_round_trips_through_write_and_load(tmp_path, status):
    result = make_result(status=status, error=None if status == "ok" else "what went wrong")

    path = result.write(tmp_path / "run")
    loaded = RunResult.load(path)

    assert path == tmp_path / "run" / RESULT_FILE
    assert loaded == result
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION


def test_write_leaves_no_temporary_files(tmp_path):
    make_result().write(tmp_path)
    make_result(seed=4).write(tmp_path)

    assert [p.name for p in tmp_path.iterdir()] == [RESULT_FILE]
    assert RunResult.load(tmp_path / RESULT_FILE).seed == 4


def test_failed_write_keeps_the_old_file_intact(tmp_path, monkeypatch):
    path = make_result(seed=1).write(tmp_path)
    before = path.read_bytes()

    def crash(src, dst):
        raise OSError("disk vanished")

    monkeypatch.setattr(xbench.atomic.os, "replace", crash)
    with pytest.raises(OSError, match="disk vanished"):
        make_result(seed=2).write(tmp_path)
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert RunResult.load(path).seed == 1
    assert [p.name for p in tmp_path.iterdir()] == [RESULT_FILE]


def test_invalid_status_raises():
    with pytest.raises(ValueError, match=r"'crashed' is not one of"):
        make_result(status="crashed")


def test_load_rejects_a_newer_schema_version(tmp_path):
    path = make_result().write(tmp_path)
    data = json.loads(path.read_text())
    data["schema_version"] = SCHEMA_VERSION + 1
    path.write_text(json.dumps(data))

    with pytest.raises(NewerSchemaError, match=f"schema version {SCHEMA_VERSION + 1} is newer"):
        RunResult.load(path)


BASE_CONFIG = {
    "backend": {"name": "flash", "kernel": "auto"},
    "task": {"name": "qa", "data": {"num_facts": 8}},
    "model": {"name": "tiny", "d_model": 64},
    "seed": 0,
    "hydra": {"run": {"dir": "somewhere"}},
    "logger": {"name": "wandb", "mode": "offline"},
    "output_root": "xbench_runs",
}


def changed(path: str, value) -> dict:
    config = copy.deepcopy(BASE_CONFIG)
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[key]
    node[last] = value
    return config


@pytest.mark.parametrize(
    ("path", "value"),
    [("hydra.run.dir", "elsewhere"), ("logger.name", "none"), ("output_root", "/tmp/other")],
)
def test_config_hash_ignores_where_and_how_it_is_logged(path, value):
    assert config_hash(changed(path, value)) == config_hash(BASE_CONFIG)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("backend.kernel", "math"),
        ("backend.name", "naive"),
        ("task.data.num_facts", 9),
        ("model.d_model", 128),
        ("seed", 1),
    ],
)
def test_config_hash_changes_with_what_is_computed(path, value):
    assert config_hash(changed(path, value)) != config_hash(BASE_CONFIG)


def test_config_hash_is_stable_and_order_independent():
    reordered = dict(reversed(list(BASE_CONFIG.items())))

    assert config_hash(reordered) == config_hash(BASE_CONFIG)
    assert len(config_hash(BASE_CONFIG)) == 16
    assert config_hash(BASE_CONFIG) == config_hash(copy.deepcopy(BASE_CONFIG))


class CountingBuild:
    def __init__(self, data) -> None:
        self.data = data
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return self.data


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    return tmp_path


PARAMS = {"generator": {"num_facts": 8, "seed": 1}, "sizes": [10, 2]}
DATA = {"train": [{"q": "who?", "a": "Ada"}], "test": [1, 2.5, None]}


def cache_file(cache_dir):
    return cache_dir / "ns" / f"{key_of(PARAMS)}.json"


def test_cached_json_builds_once(cache_dir):
    build = CountingBuild(DATA)

    first, checksum = cached_json("ns", PARAMS, build)
    second, checksum_again = cached_json("ns", PARAMS, build)

    assert build.calls == 1
    assert first == second == DATA
    assert checksum == checksum_again
    assert checksum == hashlib.sha256(cache_file(cache_dir).read_bytes()).hexdigest()


def test_other_params_or_namespace_build_separately(cache_dir):
    build = CountingBuild(DATA)

    cached_json("ns", PARAMS, build)
    cached_json("ns", {**PARAMS, "sizes": [10, 3]}, build)
    cached_json("other", PARAMS, build)

    assert build.calls == 3


@pytest.mark.parametrize("damage", ["edit", "truncate", "drop_checksum"])
def test_damaged_cache_is_rebuilt(cache_dir, damage):
    build = CountingBuild(DATA)
    _, original = cached_json("ns", PARAMS, build)
    path = cache_file(cache_dir)
    if damage == "edit":
        payload = path.read_bytes()
        path.write_bytes(payload.replace(b"Ada", b"Bob"))
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:-5])
    else:
        path.with_suffix(".sha256").unlink()

    data, checksum = cached_json("ns", PARAMS, build)

    assert build.calls == 2
    assert data == DATA
    assert checksum == original
    assert checksum == hashlib.sha256(path.read_bytes()).hexdigest()
    assert path.with_suffix(".sha256").read_text().strip() == checksum
    assert sorted(p.name for p in path.parent.iterdir()) == sorted(
        [path.name, path.with_suffix(".sha256").name]
    )


def test_cache_dir_comes_from_the_environment(cache_dir):
    cached_json("ns", PARAMS, CountingBuild(DATA))

    assert cache_file(cache_dir).exists()
    assert os.path.commonpath([cache_file(cache_dir), cache_dir]) == str(cache_dir)
