"""use_backend and the registered attention implementations: the names, options validated
up front, memory prepared once per source, T5's bias honoured or refused per backend, typed
refusals instead of silent differences, a third-party backend inside a model, and the user
script README shows."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from transformers import AttentionInterface, AttentionMaskInterface

from xbench.api.errors import UserError
from xbench.integrations.transformers import (
    UnsupportedAttention,
    register_backends,
    swapped_layers,
    use_backend,
)
from xbench.registry import Registry, get_registry, load_registry

ROOT = Path(__file__).parents[2]
SIGMOID = ROOT / "examples" / "xbench-sigmoid" / "xbench_sigmoid" / "__init__.py"

# The script README's "my model, my kernel" shows, with a hub name; the test runs it on a
# local folder (a hub name or a folder are the same argument to from_pretrained).
_SECTION = (ROOT / "README.md").read_text().split("## My model, my kernel")[1]
USER_SCRIPT = _SECTION.split("```python\n")[1].split("```")[0]


def logits(model, tiny) -> torch.Tensor:
    with torch.no_grad():
        return model(**tiny.inputs, decoder_input_ids=tiny.decoder_input_ids).logits


def greedy(model, tiny, **kwargs) -> list[list[int]]:
    with torch.no_grad():
        return model.generate(**tiny.inputs, do_sample=False, max_new_tokens=6, **kwargs).tolist()


def test_every_installed_backend_is_registered_with_its_mask_function():
    names = register_backends()

    backends = get_registry().backends
    assert len(names) == len(backends) and "xbench_naive" in names
    # transformers reads "flash" in a name as its own flash-attention kernel
    assert "xbench_FLASH" in names and "xbench_flash" not in names
    for name in names:
        assert name in AttentionInterface._global_mapping
        assert name in AttentionMaskInterface._global_mapping


def test_use_backend_sets_the_implementation_and_returns_the_model(text_tiny):
    model = text_tiny.load()

    assert use_backend(model, "sparse", block_size=4) is model
    assert model.config._attn_implementation == "xbench_sparse"


def test_each_cross_attention_layer_gets_its_own_backend(tiny):
    model = use_backend(tiny.load(), "sparse", block_size=4)
    layers = swapped_layers(model)

    assert len(layers) == 2  # every tiny model has two decoder layers
    assert len({id(layer.backend) for layer in layers}) == 2
    assert all(layer.name.endswith(("encoder_attn", "EncDecAttention")) for layer in layers)
    logits(model, tiny)
    assert layers[-1].backend.describe()["kernel"]


@pytest.mark.parametrize(
    ("backend", "options", "message"),
    [
        ("sparse", {"block_size": 0}, "backend.block_size"),
        ("sparse", {"blocksize": 4}, "unknown option"),
        ("spares", {}, "unknown backend 'spares'.*Did you mean 'sparse'"),
        ("naive", {"columns": 0}, "columns=0"),
    ],
)
def test_bad_backend_or_options_is_one_line_before_anything_changes(
    text_tiny, backend, options, message
):
    model = text_tiny.load()

    with pytest.raises(UserError, match=message) as error:
        use_backend(model, backend, **options)
    assert "\n" not in str(error.value)
    assert model.config._attn_implementation == "sdpa"


def test_a_model_without_cross_attention_is_refused():
    with pytest.raises(UserError, match="Linear has no cross-attention module"):
        use_backend(nn.Linear(2, 2), "naive")


def test_an_unprepared_model_with_an_xbench_implementation_is_refused(text_tiny):
    register_backends()
    model = text_tiny.load()
    model.set_attn_implementation("xbench_naive")

    with pytest.raises(UserError, match=r"use_backend\(model, 'naive'\)"):
        logits(model, text_tiny)


def test_swapping_again_replaces_the_backend_and_its_memory(text_tiny):
    model = text_tiny.load()
    expected, expected_tokens = logits(model, text_tiny), greedy(model, text_tiny)

    use_backend(model, "uniform")
    changed = logits(model, text_tiny)
    use_backend(model, "naive")

    assert (changed - expected).abs().max() > 1e-2
    torch.testing.assert_close(logits(model, text_tiny), expected, atol=1e-4, rtol=0)
    assert greedy(model, text_tiny) == expected_tokens


def test_memory_is_prepared_once_per_layer_and_source(text_tiny, counting_registry, prepared):
    model = use_backend(text_tiny.load(), "counting", registry=counting_registry)
    layers = model.config.decoder_layers

    greedy(model, text_tiny, min_new_tokens=6)  # six decode steps, one memory per layer
    assert len(prepared) == layers
    greedy(model, text_tiny, min_new_tokens=6)  # a new source (a new cache): prepared again
    assert len(prepared) == 2 * layers
    greedy(model, text_tiny, min_new_tokens=6, use_cache=False)  # every step is a new pass
    assert len(prepared) == 2 * layers + 6 * layers


def _t5_with_cross_attention_bias(tiny_models) -> nn.Module:
    """The tiny T5 with a relative position bias in its first cross-attention (later layers
    reuse it, as T5 does): a model whose cross-attention scores get a nonzero bias."""
    model = tiny_models["t5"].load()
    cross = model.decoder.block[0].layer[1].EncDecAttention
    cross.has_relative_attention_bias = True
    buckets = cross.relative_attention_num_buckets
    cross.relative_attention_bias = nn.Embedding(buckets, cross.n_heads)
    nn.init.normal_(cross.relative_attention_bias.weight, std=1.0)
    return model


def test_t5_zero_cross_attention_bias_is_honoured(tiny_models):
    """T5 hands cross-attention a position_bias of zeros with scaling 1.0: an exact backend
    gives SDPA's result, so the bias is taken, not dropped (compare the biased model)."""
    tiny = tiny_models["t5"]
    model = tiny.load()
    expected = logits(model, tiny)
    biased = _t5_with_cross_attention_bias(tiny_models)

    assert (logits(biased, tiny) - expected).abs().max() > 1e-2
    swapped = logits(use_backend(model, "naive"), tiny)
    torch.testing.assert_close(swapped, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("backend", sorted(get_registry().backends))
def test_a_nonzero_cross_attention_bias_is_unsupported_for_every_backend(tiny_models, backend):
    model = use_backend(_t5_with_cross_attention_bias(tiny_models), backend)

    with pytest.raises(UnsupportedAttention, match="nonzero position_bias") as error:
        logits(model, tiny_models["t5"])
    assert error.value.backend == backend
    assert error.value.layer == "decoder.block.0.layer.1.EncDecAttention"


def test_attention_dropout_in_training_is_unsupported(text_tiny):
    model = use_backend(text_tiny.load(), "naive")
    for layer in model.model.decoder.layers:
        layer.encoder_attn.dropout = 0.1
    model.train()

    with pytest.raises(UnsupportedAttention, match="attention dropout 0.1"):
        logits(model, text_tiny)
    model.eval()
    assert logits(model, text_tiny).isfinite().all()


def _sigmoid_registry(monkeypatch) -> Registry:
    """The registry with the example third-party plugin, installed or not (CI installs it
    after the core tests): loaded from its folder it registers in-process."""
    registry = get_registry()
    if "sigmoid" in registry.backends:
        return registry
    spec = importlib.util.spec_from_file_location("xbench_sigmoid", SIGMOID)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "xbench_sigmoid", module)  # its dataclass looks it up
    spec.loader.exec_module(module)
    return load_registry(extra_plugins=[("sigmoid", module)])


def test_the_sigmoid_example_plugin_runs_inside_a_tiny_model(text_tiny, monkeypatch):
    registry = _sigmoid_registry(monkeypatch)
    model = text_tiny.load()
    expected = logits(model, text_tiny)

    use_backend(model, "sigmoid", registry=registry, bias=-1.0)

    assert model.config._attn_implementation == "xbench_sigmoid"
    swapped = logits(model, text_tiny)
    assert swapped.isfinite().all() and (swapped - expected).abs().max() > 1e-2
    assert greedy(model, text_tiny) == greedy(model, text_tiny, use_cache=False)
    with pytest.raises(UserError, match="backend.bias"):
        use_backend(model, "sigmoid", registry=registry, bias="high")


def test_without_transformers_the_integration_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)

    with pytest.raises(UserError, match=r"pip install 'xbench\[transformers\]'"):
        use_backend(nn.Linear(2, 2), "naive")


def _imports_transformers(path: Path) -> list[tuple[int, bool]]:
    """(line, at module level) of each import of transformers in a source file."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        if any(name == "transformers" or name.startswith("transformers.") for name in names):
            found.append((node.lineno, id(node) in top))
    return found


def test_xbench_imports_transformers_only_where_the_integration_needs_it():
    """xbench works without the extra: only the attention-function module imports it at
    module level, and the public module only inside the function that checks for it."""
    allowed_at_top = {"xbench/integrations/transformers_attention.py"}
    allowed_inside = {"xbench/integrations/transformers.py"}
    for path in sorted((ROOT / "xbench").rglob("*.py")):
        where = path.relative_to(ROOT).as_posix()
        for line, at_top in _imports_transformers(path):
            allowed = allowed_at_top if at_top else allowed_inside | allowed_at_top
            assert where in allowed, f"{where}:{line} imports transformers"


def _save_word_tokenizer(folder: Path) -> None:
    """A word-level fast tokenizer of the tiny Marian's vocabulary, built locally."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = ["<pad>", "<s>", "</s>", "<unk>", "a", "short", "one", "longer", "sentence", ","]
    words += [".", "padded"] + [f"w{i}" for i in range(36)]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, "<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", 2)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    fast.save_pretrained(folder)


def test_the_readme_user_script_swaps_a_backend_in_ten_lines(text_tiny, tmp_path, capsys):
    lines = [line for line in USER_SCRIPT.splitlines() if line.strip()]
    assert len(lines) <= 10
    folder = tmp_path / "local-model"
    text_tiny.load().save_pretrained(folder)
    _save_word_tokenizer(folder)
    script = USER_SCRIPT.replace('"Helsinki-NLP/opus-mt-en-de"', repr(str(folder)))

    namespace: dict = {}
    exec(compile(script, "user_script.py", "exec"), namespace)

    printed = ast.literal_eval(capsys.readouterr().out.strip())
    assert isinstance(printed, list) and len(printed) == 2
    assert namespace["model"].config._attn_implementation == "xbench_sparse"
    assert namespace["batch"]["attention_mask"].min() == 0  # the batch was padded
