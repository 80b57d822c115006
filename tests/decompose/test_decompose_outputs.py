"""Writing a token layer's outputs: maps, per-class token table, token figures."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from decompose_data import keyword_texts

import distmi
from distmi.analyses.decompose import evaluation as E
from distmi.analyses.decompose.bundled import Bundle
from distmi.analyses.decompose.outputs import write_layer


def test_token_layer_outputs(token_model, tmp_path):
    inputs, labels, _ = keyword_texts(200, seed=2)
    test_inputs, test_labels, _ = keyword_texts(24, seed=3)
    tokens = [[f"t{int(i)}" for i, m in zip(row, mask, strict=True) if m]
              for row, mask in zip(test_inputs["input_ids"], test_inputs["attention_mask"],
                                   strict=True)]
    bundle = Bundle(name="tiny", model=token_model, local="tokens", layers=("embed",),
                    default_layer="embed", representation="pool", fit_data=(inputs, labels),
                    explain_inputs=test_inputs, explain_labels=test_labels.numpy(),
                    class_names=("without", "with"), tokens=tokens,
                    protected=np.zeros((24, 10), bool), embeddings="embed")
    dec = distmi.decompose.fit(token_model, (inputs, labels), layer="embed", local="tokens",
                               epochs=2)
    expl = dec.explain((test_inputs, test_labels))
    maps = E.saliency_maps(token_model, "embed", test_inputs, expl, embeddings="embed")
    evaluation = E.compare_methods(token_model, test_inputs, test_labels.numpy(), maps,
                                   local="tokens", protected=bundle.protected)
    summary = write_layer(tmp_path / "embed", dec, expl, bundle, n_figures=2,
                          evaluation=evaluation)
    assert summary["layer"] == "embed" and summary["n_explained"] == 24
    assert (tmp_path / "embed" / "figures" / "tokens_1.png").exists()
    table = pd.read_csv(tmp_path / "embed" / "class_tokens.csv")
    assert set(table["class"]) <= {"without", "with"} and table["count"].sum() == sum(map(len,
                                                                                          tokens))
    methods = {r["method"] for r in json.loads((tmp_path / "embed" / "evaluation.json")
                                               .read_text())}
    assert methods == {"decision", "total", "Grad-CAM (tokens)", "IntegratedGradients", "random"}
    loaded = distmi.decompose.load(tmp_path / "embed" / "decomposition", token_model)
    np.testing.assert_array_equal(loaded.explain(test_inputs).total, expl.total)
