"""Records of older schemas load as typed records of the current one, with the figures they
held: version 1 (xbench 0.1's dict payloads) and version 2 (one cross-attention forward,
now the prefill phase); records of a newer schema are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xbench.measure.types import FLOPS_CONVENTION, AttentionShape, Latency, Memory
from xbench.records.migrate import SINGLE_FORWARD_NOTE, NewerSchemaError, migrate
from xbench.records.result import SCHEMA_VERSION, RunResult, Sample

# Written by the previous release for `xbench run task=qa logger=none` (an ok flash run).
V1_QA = Path(__file__).parent / "fixtures" / "result_v1_qa.json"


def v1_record(tmp_path: Path, **changes) -> Path:
    """The version-1 fixture with top-level keys replaced, as a file."""
    data = json.loads(V1_QA.read_text()) | changes
    path = tmp_path / "result.json"
    path.write_text(json.dumps(data))
    return path


def test_the_fixture_is_a_version_1_record():
    assert json.loads(V1_QA.read_text())["schema_version"] == 1 < SCHEMA_VERSION


def test_a_version_1_record_loads_with_its_identity_and_quality():
    record = RunResult.load(V1_QA)

    assert record.schema_version == SCHEMA_VERSION == 3
    assert (record.run_id, record.status, record.seed) == ("flash-qa-6fd539f4", "ok", 0)
    assert record.config_hash == "b367786e2636edcc"
    assert record.revision.code == "23f5d4c12f916a9d" and record.revision.inputs is None
    assert record.backend.name == "flash" and record.backend.exact is True
    assert record.backend.options == {"kernel": "auto"}
    assert record.backend.describe["kernel"] == "flash"
    assert record.task.name == "qa" and record.task.primary_metric == "f1"
    assert (record.task.source_length, record.task.target_length) == (58, 10)
    assert record.task.data["checksum"].startswith("79b90311")
    assert record.model.name == "tiny"
    assert record.model.settings == {
        "conv_kernel": 4,
        "d_model": 64,
        "decoder_layers": 2,
        "dropout": 0.0,
        "encoder_layers": 2,
        "ffn_dim": 256,
        "heads": 2,
    }
    assert record.quality.primary_metric == "f1" and record.quality.higher_is_better
    assert record.quality.primary == pytest.approx(0.8913333415985107)
    assert record.quality.metrics == {"exact_match": 0.8790000081062317, "f1": 0.8913333415985107}
    assert record.quality.samples[0] == Sample(prediction="90", reference="90")
    assert len(record.quality.samples) == 5
    assert record.environment.device == "cpu" and record.environment.threads == 2
    assert record.environment.torch == "2.13.0+cpu" and record.environment.cuda is None


def test_a_version_1_record_migrates_its_efficiency_to_typed_measurements():
    efficiency = RunResult.load(V1_QA).efficiency

    assert efficiency.train_step == Latency(
        median_ms=52.024490499988474, iqr_ms=2.7657620000169914, count=790
    )
    assert efficiency.train_steps == 800
    assert efficiency.inference_tokens_per_second == pytest.approx(6524.68420452437)
    assert efficiency.peak_memory == Memory(
        bytes=679260160, method="process peak resident set size (ru_maxrss)"
    )
    assert efficiency.decode_step_ms is None, "version 1 did not count decoding steps"
    phases = efficiency.cross_attention
    assert phases.train is None and phases.decode is None
    assert phases.train_share is None and phases.decode_share is None
    assert phases.note == SINGLE_FORWARD_NOTE
    xattn = phases.prefill
    assert xattn.status == "ok" and xattn.reason is None
    assert xattn.shape == AttentionShape(
        batch=8,
        heads=2,
        nq=10,
        nk=58,
        head_dim=32,
        dtype="float32",
        device="cpu",
        passes="fwd",
        padded_fraction=0.0,
    )
    assert xattn.latency == Latency(
        median_ms=0.06114900000397938, iqr_ms=0.003565999996624214, count=20
    )
    assert xattn.memory == Memory(bytes=23448, method="live tensor storages (TorchDispatchMode)")
    assert xattn.flops.count == 1187840 and xattn.flops.convention == FLOPS_CONVENTION
    assert xattn.tflops == pytest.approx(0.019425338107290375), "v1 stored the same figure"
    assert xattn.describe["requested"] == "auto"


def test_a_migrated_record_is_written_as_plain_version_3_json(tmp_path):
    record = RunResult.load(V1_QA)

    path = record.write(tmp_path)
    data = json.loads(path.read_text())

    assert data["schema_version"] == 3
    phases = data["efficiency"]["cross_attention"]
    assert phases["prefill"]["latency"]["median_ms"] == 0.06114900000397938
    assert phases["train"] is phases["decode"] is None
    assert data["efficiency"]["train_step"]["count"] == 790
    assert data["model"] == {"name": "tiny", "settings": record.model.settings}
    assert RunResult.load(path) == record


def test_an_unsupported_version_1_measurement_keeps_its_reason(tmp_path):
    efficiency = json.loads(V1_QA.read_text())["efficiency"]
    shape = efficiency["cross_attention"]["shape"]
    efficiency["cross_attention"] = {
        "shape": shape,
        "status": "unsupported",
        "reason": "needs Nk divisible by 64",
    }

    loaded = RunResult.load(v1_record(tmp_path, efficiency=efficiency)).efficiency
    xattn = loaded.cross_attention.prefill

    assert (xattn.status, xattn.reason) == ("unsupported", "needs Nk divisible by 64")
    assert xattn.latency is None and xattn.memory is None and xattn.flops is None
    assert xattn.shape.nk == 58 and xattn.tflops is None


def test_a_failed_version_1_record_has_empty_figures(tmp_path):
    path = v1_record(tmp_path, status="oom", error="CUDA out of memory", quality={}, efficiency={})

    record = RunResult.load(path)

    assert record.status == "oom" and record.error == "CUDA out of memory"
    assert record.quality.metrics == {} and record.quality.primary is None
    assert record.efficiency.cross_attention is None
    assert record.efficiency.phase_ms("prefill") is None
    assert record.efficiency.train_step_ms is None


def test_an_unknown_version_1_figure_is_an_error_not_a_silent_drop(tmp_path):
    efficiency = json.loads(V1_QA.read_text())["efficiency"]
    efficiency["cross_attention"]["energy_joules"] = 1.5

    with pytest.raises(ValueError, match="energy_joules"):
        RunResult.load(v1_record(tmp_path, efficiency=efficiency))


# Written by the previous release for a short naive QA run (trainer=debug, small data).
V2_QA = Path(__file__).parent / "fixtures" / "result_v2_qa.json"


def test_the_v2_fixture_is_a_version_2_record_with_one_forward():
    data = json.loads(V2_QA.read_text())
    assert data["schema_version"] == 2
    assert data["efficiency"]["cross_attention"]["shape"]["passes"] == "fwd"


def test_a_version_2_measurement_becomes_the_prefill_phase_with_a_note():
    stored = json.loads(V2_QA.read_text())["efficiency"]["cross_attention"]

    record = RunResult.load(V2_QA)

    assert record.schema_version == 3 and record.backend.name == "naive"
    phases = record.efficiency.cross_attention
    assert phases.prefill.to_dict() == stored, "every figure kept as it was"
    assert phases.prefill.shape.padded_fraction == 0.0 and "every key real" in phases.note
    assert (phases.train, phases.decode, phases.train_share, phases.decode_share) == (None,) * 4
    assert record.efficiency.phase_ms("prefill") == pytest.approx(0.08638249983050628)
    assert record.efficiency.phase_ms("train") is None
    assert record.efficiency.train_step.median_ms == pytest.approx(1364.3472650001058)
    assert record.quality.metrics == {"exact_match": 0.0, "f1": 0.0}


def test_a_version_2_record_without_a_measurement_migrates_to_no_phases(tmp_path):
    data = json.loads(V2_QA.read_text())
    data["efficiency"]["cross_attention"] = None
    path = tmp_path / "result.json"
    path.write_text(json.dumps(data))

    assert RunResult.load(path).efficiency.cross_attention is None


def test_a_migrated_version_2_record_round_trips(tmp_path):
    record = RunResult.load(V2_QA)
    assert RunResult.load(record.write(tmp_path)) == record


def test_a_newer_schema_is_refused_with_both_versions():
    with pytest.raises(NewerSchemaError) as error:
        migrate({"schema_version": SCHEMA_VERSION + 1})
    assert str(error.value) == (
        f"schema version {SCHEMA_VERSION + 1} is newer than this xbench reads "
        f"({SCHEMA_VERSION}); upgrade xbench to read it"
    )


@pytest.mark.parametrize(
    "data, message",
    [
        ([1, 2], "a JSON array"),
        ({"run_id": "x"}, "schema_version None"),
        ({"schema_version": 0}, "0"),
    ],
)
def test_what_is_not_a_record_is_a_value_error(data, message):
    with pytest.raises(ValueError, match=message):
        migrate(data)
