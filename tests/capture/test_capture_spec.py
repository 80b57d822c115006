"""The capture stage of a job: validation, layer globs and 'all', pooling per layer, spec hash."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from distmi.core.errors import InvalidParameterError, SpecError, UnknownLayerError  # noqa: E402
from distmi.jobs.capture_spec import CaptureSpec, capture_spec_hash  # noqa: E402
from distmi.jobs.spec import parse_spec  # noqa: E402
from distmi.store.capture_session import resolve_pooling_patterns  # noqa: E402
from distmi.store.modules import default_layers, expand_layers  # noqa: E402

INPUTS = {"set": "concept_texts", "params": {"n": 40}}


class Blocks(nn.Module):
    """encoder.layer.0..3 (each with an inner 'dense'), a pooler, like a HuggingFace encoder."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(3, 8)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(
            _Block() for _ in range(4))
        self.pooler = nn.Linear(8, 8)


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(8, 8)
        self.act = nn.GELU()


def _job(capture, **dataset):
    return {"dataset": {"path": "out/x", "capture": capture, **dataset}, "targets": ["topic"],
            "output": "out/r"}


def test_a_valid_capture_section_converts_to_a_request():
    spec = parse_spec(_job({"model": "bert-tiny-random", "inputs": INPUTS,
                            "layers": "encoder.layer.*", "pooling": {"encoder.layer.1": "cls",
                                                                     "default": "mean"},
                            "dtype": "bfloat16", "batch_size": 16, "rows_per_shard": 32}))
    req = spec.dataset.capture.request(threads=1)
    assert req.layers == ("encoder.layer.*",) and req.dtype == "bfloat16"
    assert req.pooling == (("encoder.layer.1", "cls"), ("default", "mean"))
    assert req.model.kind == "config" and req.model.tokenizer == "minilm"
    assert req.inputs.kind == "set" and req.inputs.params == {"n": 40}
    assert req.rows_per_part == 32 and req.threads == 1


@pytest.mark.parametrize(
    ("capture", "dataset", "match"),
    [
        ({"model": "/no/such/model-folder", "inputs": INPUTS},
         {}, r"capture\.model: .*model folder '/no/such/model-folder' does not exist"),
        ({"model": "minilmm", "inputs": INPUTS}, {},
         r"Did you mean the registered model 'minilm'\?"),
        ({"model": "no_such_module:make", "inputs": INPUTS}, {},
         r"cannot import module 'no_such_module'"),
        ({"model": "minilm", "inputs": {"set": "concept_text"}}, {},
         r"unknown input set 'concept_text'.*Did you mean 'concept_texts'\?"),
        ({"model": "minilm", "inputs": {"set": "concept_texts", "path": "x.csv"}}, {},
         r"inputs needs exactly one of set, path or factory, got \['set', 'path'\]"),
        ({"model": "minilm", "inputs": {"set": "concept_texts", "text_column": "t"}}, {},
         r"text_column, columns and targets choose columns of a file"),
        ({"model": "minilm", "inputs": INPUTS, "pooling": "avg"}, {},
         r"pooling must be one of \['none', 'mean', 'cls'"),
        ({"model": "minilm", "inputs": INPUTS, "pooling": {"encoder.layer.*": "sum"}}, {},
         r"pooling of 'encoder\.layer\.\*' must be one of"),
        ({"model": "minilm", "inputs": INPUTS, "device": "gpu"}, {},
         r"device must be auto, cpu, cuda or cuda:N, got 'gpu'"),
        ({"model": "minilm", "inputs": INPUTS, "dtype": "int8"}, {}, r"capture\.dtype"),
        ({"model": "minilm", "inputs": INPUTS, "layers": []}, {}, r"layers needs at least one"),
        ({"model": "minilm", "inputs": INPUTS, "batch_size": "64"}, {}, r"capture\.batch_size"),
        ({"model": "minilm", "inputs": INPUTS, "layer": "all"}, {},
         r"unknown key 'dataset\.capture\.layer'"),
        ({"model": "minilm", "inputs": INPUTS}, {"builtin": "iris"},
         r"give dataset\.builtin .* or dataset\.capture .*, not both"),
    ],
)
def test_bad_capture_sections_are_refused_with_the_field(capture, dataset, match):
    with pytest.raises(SpecError, match=match):
        parse_spec(_job(capture, **dataset))


def test_globs_expand_within_one_name_component_and_all_selects_the_blocks():
    model = Blocks()
    assert expand_layers(model, ["encoder.layer.*"]) == [f"encoder.layer.{i}" for i in range(4)]
    assert expand_layers(model, "encoder.layer.[02]") == ["encoder.layer.0", "encoder.layer.2"]
    assert expand_layers(model, ["encoder.layer.*.dense"])[-1] == "encoder.layer.3.dense"
    assert expand_layers(model, ["encoder.**.act"]) == [f"encoder.layer.{i}.act" for i in range(4)]
    assert expand_layers(model, "all") == default_layers(model) == [
        f"encoder.layer.{i}" for i in range(4)]
    # overlapping entries keep each module once, in request order
    assert expand_layers(model, ["pooler", "encoder.layer.1", "encoder.layer.*"]) == [
        "pooler", "encoder.layer.1", "encoder.layer.0", "encoder.layer.2", "encoder.layer.3"]
    mlp = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert expand_layers(mlp, "all") == ["0", "1", "2"]  # no ModuleList: the leaf modules


@pytest.mark.parametrize(
    ("layers", "error", "match"),
    [
        (["encoder.layers.*"], InvalidParameterError,
         r"layer glob 'encoder\.layers\.\*' matches no module of model Blocks\. Did you mean "
         r"'encoder\.layer\.\*'\?"),
        (["encoder.layer.9*"], InvalidParameterError, r"matches no module"),
        (["encoder.layer.7"], UnknownLayerError,
         r"layer 'encoder\.layer\.7' is not in model Blocks\. Did you mean"),
        ([], InvalidParameterError, r"layers is empty"),
        (["pooler", "pooler"], InvalidParameterError, r"listed more than once"),
    ],
)
def test_layer_requests_that_match_nothing(layers, error, match):
    with pytest.raises(error, match=match):
        expand_layers(Blocks(), layers)


def test_pooling_per_layer_and_glob_first_match_wins():
    layers = ["encoder.layer.0", "encoder.layer.1", "pooler"]
    got = resolve_pooling_patterns(
        {"encoder.layer.1": "cls", "encoder.layer.*": "max", "default": "mean"}, layers, False)
    assert got == {"encoder.layer.0": "max", "encoder.layer.1": "first", "pooler": "mean"}
    # for texts, 'none' keeps one row per token
    assert resolve_pooling_patterns("none", layers, True) == dict.fromkeys(layers, "tokens")
    with pytest.raises(InvalidParameterError, match=r"no pooling for layer 'pooler'"):
        resolve_pooling_patterns({"encoder.layer.*": "mean"}, layers, False)
    with pytest.raises(InvalidParameterError, match=r"pooling names \['decoder\.\*'\], which "
                       r"match no captured layer"):
        resolve_pooling_patterns({"decoder.*": "mean", "default": "mean"}, layers, False)


def test_capture_spec_hash_follows_the_section_and_the_model_folder(tiny_bert_folder, tmp_path):
    base = {"model": "bert-tiny-random", "inputs": INPUTS, "layers": "all"}
    h = capture_spec_hash(CaptureSpec.model_validate(base))
    assert h == capture_spec_hash(CaptureSpec.model_validate(dict(base)))
    assert h != capture_spec_hash(CaptureSpec.model_validate({**base, "pooling": "max"}))
    assert h != capture_spec_hash(CaptureSpec.model_validate({**base, "dtype": "float16"}))
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(tiny_bert_folder, folder)
    spec = CaptureSpec.model_validate({**base, "model": str(folder)})
    before = capture_spec_hash(spec)
    (folder / "config.json").write_text((folder / "config.json").read_text() + " ")
    assert capture_spec_hash(spec) != before  # a model replaced in place is captured again
