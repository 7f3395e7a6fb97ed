"""``model=hf``: a Hugging Face encoder-decoder (a tiny one saved with ``save_pretrained``, a
character tokenizer built here) evaluated on an xbench task with each backend in its
cross-attention; ``model.config`` builds the architecture with random weights; bad inputs are
one-line errors before any data is built. Everything offline."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys

import pytest
import torch
from helpers import composed_config
from helpers.hf import tiny_marian

from xbench.api.errors import UserError
from xbench.records.examples import ExampleScores
from xbench.records.result import RunResult
from xbench.registry import get_registry
from xbench.run.hf_model import QUALITY_NOT_MEASURED, hf_batch
from xbench.run.plan import plan_run
from xbench.run.runner import execute

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]  # ids 0-3: the tiny models' pad, start, eos
CHARACTERS = list("abcdefghijklmnopqrstuvwxyz0123456789 .,äöüß-")  # 48 tokens in all
SMALL_TRANSLATION = [
    "task=translation",
    "task.batch_size=8",
    "task.eval_batch_size=8",
    "task.vocab_size=300",
    "task.data.train_size=64",
    "task.data.val_size=8",
    "task.data.test_size=8",
]
SMALL_SPEECH = [
    "task=speech_to_text",
    "task.data.train_size=8",
    "task.data.val_size=4",
    "task.data.test_size=4",
    "task.data.words_max=3",
    "task.batch_size=4",
    "task.eval_batch_size=4",
    "task.n_mels=16",  # the tiny Whisper's mel bins
]
#: Speech for a pretrained Whisper: its extractor makes its own 16 bins from the task's audio,
#: whatever the task's own features have; two test batches, so the audio follows each batch.
AUDIO_SPEECH = [
    *(o for o in SMALL_SPEECH if not o.startswith(("task.n_mels", "task.eval_batch_size"))),
    "task.n_mels=20",
    "task.eval_batch_size=2",
]
QUICK = ["logger=none", "measure.repeats=2", "measure.warmup=0", "heatmaps.examples=2"]


def _character_tokenizer():
    """Lower-cased characters, EOS appended, decoded without spaces between tokens."""
    import tokenizers
    import transformers
    from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, processors

    vocab = {token: i for i, token in enumerate(SPECIALS + CHARACTERS)}
    tokenizer = tokenizers.Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tokenizer.decoder = decoders.Fuse()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", 2)]
    )
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )


@pytest.fixture(scope="module")
def marian(tmp_path_factory):
    """A tiny Marian with a tokenizer, saved as a user's local folder. Its weights are large
    (std 1) so that greedy outputs differ between sources and follow cross-attention."""
    torch.manual_seed(0)
    model = tiny_marian(
        1.0,
        vocab_size=len(SPECIALS + CHARACTERS),
        pad_token_id=0,
        eos_token_id=2,
        decoder_start_token_id=1,
    )
    folder = tmp_path_factory.mktemp("my-marian")
    model.save_pretrained(folder)
    _character_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def whisper(tiny_models, tmp_path_factory):
    """The tiny Whisper (16 mel bins, 1 s window) with its feature extractor and tokenizer."""
    import transformers

    folder = tmp_path_factory.mktemp("my-whisper")
    shutil.copytree(tiny_models["whisper"].folder, folder, dirs_exist_ok=True)
    transformers.WhisperFeatureExtractor(feature_size=16, chunk_length=1).save_pretrained(folder)
    _character_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def marian_config(tiny_models, tmp_path_factory):
    """Only a config (no weights), its vocabulary wide enough for the task's 300 ids."""
    import transformers

    folder = tmp_path_factory.mktemp("marian-config")
    config = transformers.MarianConfig.from_pretrained(tiny_models["marian"].folder)
    config.vocab_size = 320
    config.save_pretrained(folder)
    return folder


def _plan(overrides):
    return plan_run(composed_config(["model=hf", *QUICK, *overrides]), get_registry())


def _run(tmp_path, name, overrides) -> RunResult:
    result = execute(_plan(overrides), tmp_path / name)
    assert result.status == "ok", result.error
    return RunResult.load(tmp_path / name / "result.json")


def _predictions(run_dir) -> list[str]:
    scores = ExampleScores.load(run_dir / "examples.json")
    return [example.prediction for example in scores.examples]


def _sdpa_predictions(folder, overrides, budget) -> list[str]:
    """The model's own SDPA greedy outputs on the same test inputs."""
    plan = _plan([f"model.pretrained={folder}", *overrides])
    task = plan.task.build(plan.task_options)
    model = plan.hf.model_class.from_pretrained(folder, attn_implementation="sdpa").eval()
    predictions = []
    for batch in task.datamodule.test_dataloader():
        inputs = hf_batch(plan.hf, batch, task.tokenizer).inputs
        with torch.no_grad():
            ids = model.generate(**inputs, max_new_tokens=budget, num_beams=1, do_sample=False)
        predictions += plan.hf.tokenizer.batch_decode(ids, skip_special_tokens=True)
    return predictions


def test_a_local_marian_is_evaluated_with_a_backend_in_its_cross_attention(tmp_path, marian):
    record = _run(
        tmp_path, "naive", [f"model.pretrained={marian}", "backend=naive", *SMALL_TRANSLATION]
    )

    hf = record.hf_model
    assert (hf.architecture, hf.weights, hf.location) == ("MarianMTModel", "pretrained", "local")
    assert (hf.heads, hf.head_dim, hf.decoder_layers) == (4, 8, 2)
    assert record.efficiency.train_steps == 0 and record.swap is None
    assert set(record.quality.metrics) == {"bleu", "chrf"}
    assert record.quality.primary == record.quality.metrics["bleu"]
    assert record.quality.test_examples == 8 and record.quality.examples_file == "examples.json"
    assert len(_predictions(tmp_path / "naive")) == 8
    phases = record.efficiency.cross_attention
    for phase in (phases.train, phases.prefill, phases.decode):
        assert phase.status == "ok" and phase.latency.median_ms > 0
        assert (phase.shape.heads, phase.shape.head_dim, phase.shape.batch) == (4, 8, 8)
    assert phases.decode.shape.nq == 1 and phases.prefill.shape.nk <= 64  # its 64 positions
    assert phases.prefill.shape.padded_fraction > 0  # real, ragged sources
    assert sorted(p.name for p in (tmp_path / "naive" / "heatmaps").iterdir()) == [
        "val_0.png",
        "val_1.png",
    ]


@pytest.mark.slow
def test_exact_backends_decode_as_the_models_own_sdpa_and_the_control_does_not(tmp_path, marian):
    given = ["heatmaps.enabled=false", "model.max_new_tokens=24", *SMALL_TRANSLATION]
    sdpa = _sdpa_predictions(marian, given, 24)
    swapped = {}
    for backend in ("naive", "flash", "uniform"):
        _run(tmp_path, backend, [f"model.pretrained={marian}", f"backend={backend}", *given])
        swapped[backend] = _predictions(tmp_path / backend)

    assert len(set(sdpa)) > 4  # outputs that follow their sources
    assert swapped["naive"] == sdpa and swapped["flash"] == sdpa
    assert swapped["uniform"] != sdpa


def test_a_config_alone_runs_with_random_weights_and_no_quality(tmp_path, marian_config):
    record = _run(
        tmp_path, "config", [f"model.config={marian_config}", "backend=flash", *SMALL_TRANSLATION]
    )

    hf = record.hf_model
    assert (hf.weights, hf.quality_note) == ("random", QUALITY_NOT_MEASURED)
    assert hf.inputs == "the task's own token ids"
    assert record.quality.primary is None and record.quality.metrics == {}
    assert record.quality.primary_metric == "bleu" and record.quality.examples_file is None
    assert all(
        getattr(record.efficiency.cross_attention, p).status == "ok"
        for p in ("train", "prefill", "decode")
    )


@pytest.mark.slow
def test_a_whisper_config_is_measured_at_its_encoder_length(tmp_path, whisper):
    record = _run(tmp_path, "whisper", [f"model.config={whisper}", "backend=sparse", *SMALL_SPEECH])

    assert record.hf_model.architecture == "WhisperForConditionalGeneration"
    assert record.hf_model.encoder_positions == 50
    prefill = record.efficiency.cross_attention.prefill
    assert prefill.status == "ok" and prefill.shape.nk == 50 and prefill.shape.heads == 4


@pytest.mark.slow
def test_a_local_whisper_is_scored_by_the_speech_task(tmp_path, whisper):
    record = _run(tmp_path, "wer", [f"model.pretrained={whisper}", "backend=linear", *AUDIO_SPEECH])

    assert set(record.quality.metrics) == {"wer", "cer"} and record.quality.test_examples == 4
    assert record.hf_model.inputs == "the task's audio through the model's feature extractor"
    assert (tmp_path / "wer" / "examples.json").is_file()


@pytest.mark.slow
def test_a_pretrained_whisper_reads_the_tasks_audio_through_its_extractor(
    tmp_path, whisper, monkeypatch
):
    import transformers
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    given = [f"model.pretrained={whisper}", "heatmaps.enabled=false", "model.max_new_tokens=12"]
    given += AUDIO_SPEECH
    plan = _plan(given)
    task = plan.task.build(plan.task_options)
    extractor = transformers.AutoFeatureExtractor.from_pretrained(whisper)
    waves = task.waveforms("test")
    expected = extractor(waves, sampling_rate=16000, return_tensors="pt").input_features
    model = plan.hf.model_class.from_pretrained(whisper, attn_implementation="sdpa").eval()
    with torch.no_grad():
        ids = model.generate(expected, max_new_tokens=12, num_beams=1, do_sample=False)
    sdpa = plan.hf.tokenizer.batch_decode(ids, skip_special_tokens=True)
    seen: list[torch.Tensor] = []  # what the encoder reads, batch by batch
    forward = WhisperEncoder.forward

    def recorded(self, input_features, *args, **kwargs):
        seen.append(input_features.detach().clone())
        return forward(self, input_features, *args, **kwargs)

    monkeypatch.setattr(WhisperEncoder, "forward", recorded)
    for backend in ("naive", "flash"):
        seen.clear()
        _run(tmp_path, backend, [*given, f"backend={backend}"])
        assert [len(x) for x in seen] == [2, 2]  # one generate per test batch, in order
        assert torch.equal(torch.cat(seen), expected)
        assert _predictions(tmp_path / backend) == sdpa

    assert len(waves) == 4 and len(set(sdpa)) > 1  # outputs that follow their audio


def test_a_pretrained_whisper_needs_no_matching_n_mels_but_a_task_with_audio(tmp_path, whisper):
    plan = _plan([f"model.pretrained={whisper}", "backend=naive", *AUDIO_SPEECH])  # 20 ≠ 16 bins
    build = plan.task.build
    plan.task = dataclasses.replace(
        plan.task, build=lambda options: dataclasses.replace(build(options), waveforms=None)
    )
    with pytest.raises(UserError, match=r"reads audio through its feature extractor.*gives no"):
        execute(plan, tmp_path / "run")
    assert not (tmp_path / "run" / "examples.json").exists()


@pytest.mark.slow
def test_a_cli_sweep_swaps_every_backend_into_the_folder(tmp_path, marian):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "xbench.cli",
            "run",
            "-m",
            "model=hf",
            f"model.pretrained={marian}",
            "backend=naive,flash,sparse,linear,uniform",
            f"output_root={tmp_path}",
            "threads=1",
            *QUICK,
            *SMALL_TRANSLATION,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(p.read_text()) for p in tmp_path.rglob("result.json")]
    assert sorted(r["backend"]["name"] for r in records) == [
        "flash",
        "linear",
        "naive",
        "sparse",
        "uniform",
    ]
    assert all(r["status"] == "ok" and r["hf_model"]["weights"] == "pretrained" for r in records)
    assert "evaluation only (no training)" in done.stdout


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ([], "exactly one of model.pretrained=.*neither given"),
        (["model.pretrained={marian}", "model.config={marian}"], "exactly one.*both given"),
        (["model.pretrained=./no-such-model"], r"pretrained='./no-such-model': no such folder"),
        (["model.pretrained={marian}", "task=captioning"], "cannot read task 'captioning'"),
        (["model.pretrained={marian}", "task=speech_to_text"], "reads text.*translation, qa"),
        (["model.pretrained={whisper}", "task=translation"], "reads audio.*speech_to_text"),
        (["model.config={whisper}", "task=speech_to_text"], "task.n_mels=40.*set task.n_mels=16"),
        (["model.pretrained={marian}", "model.d_model=128"], "setting of xbench's own model"),
        (["model.pretrained={marian}", "eval.trained_with=flash"], "drop eval.trained_with"),
        (["model.pretrained={marian}", "model.revision=v1"], "revision applies to hub names"),
        (["model.pretrained={marian}", "model.max_new_tokens=-1"], "max_new_tokens"),
    ],
)
def test_bad_inputs_are_one_line_errors_at_plan_time(overrides, message, marian, whisper):
    given = [o.format(marian=marian, whisper=whisper) for o in overrides]
    with pytest.raises(UserError, match=message) as error:
        _plan(given)
    assert "\n" not in str(error.value)


def test_a_hub_name_without_a_network_is_one_line(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no retries
    with pytest.raises(UserError, match="not a local folder and the hub cannot be reached"):
        _plan(["model.pretrained=xbench-tests/no-such-model", "task=translation"])


def test_task_ids_that_do_not_fit_the_vocabulary_are_refused(tmp_path, marian):
    plan = _plan([f"model.config={marian}", *SMALL_TRANSLATION])  # 48 ids, the task has 300
    with pytest.raises(UserError, match="task's 300 token ids do not fit .* vocabulary of 48"):
        execute(plan, tmp_path)


def test_without_transformers_model_hf_says_how_to_install_it(monkeypatch, marian):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers fails
    hint = r"model=hf needs transformers: pip install 'xbench\[transformers\]'"
    with pytest.raises(UserError, match=hint):
        _plan([f"model.pretrained={marian}"])


def test_resume_notices_a_model_folder_saved_again(tmp_path, marian):
    folder = tmp_path / "my-marian"
    shutil.copytree(marian, folder)
    before = _plan([f"model.pretrained={folder}"]).revision
    config = folder / "config.json"
    config.write_text(config.read_text() + "\n")

    after = _plan([f"model.pretrained={folder}"]).revision
    assert after.inputs != before.inputs and after.code == before.code


def _readme_commands() -> list[list[str]]:
    from pathlib import Path

    readme = Path(__file__).parents[2] / "README.md"
    section = readme.read_text().split("### A Hugging Face model on an xbench task")[1]
    block = section.split("```bash\n")[1].split("```")[0]
    return [line.split()[2:] for line in block.splitlines() if line.startswith("xbench run")]


def test_the_readmes_local_commands_plan(tmp_path, marian):
    import transformers

    whisper_base = tmp_path / "whisper-base-config"
    transformers.WhisperConfig(num_mel_bins=80).save_pretrained(whisper_base)
    folders = {"./my-marian": str(marian), "./whisper-base-config": str(whisper_base)}
    planned = 0
    for command in _readme_commands():
        args = [a for a in command if a != "-m"]
        source = next(
            a.split("=", 1)[1]
            for a in args
            if a.startswith("model.pretrained=") or a.startswith("model.config=")
        )
        if source not in folders:
            continue  # a hub name: downloads
        args = [a.replace(source, folders[source]) for a in args]
        backends = next(a for a in args if a.startswith("backend=")).split("=", 1)[1]
        for backend in backends.split(","):
            given = [a for a in args if not a.startswith("backend=")]
            assert _plan([*given, f"backend={backend}"]).hf.source == folders[source]
            planned += 1
    assert planned == 10  # two local commands, five backends each
