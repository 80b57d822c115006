"""Planner: stable batch ids, shards, unit selections, pair modes, errors against the dataset."""

from __future__ import annotations

import numpy as np
import pytest
from engine_data import N, make_activations, tiny_spec

from distmi.core.errors import SpecError
from distmi.core.seeds import derive_seed
from distmi.engine.plan import make_plan
from distmi.store import open_dataset


def _plan(ds_path, tmp_path, **over):
    return make_plan(tiny_spec(ds_path, tmp_path / "o", **over).plan_request(), open_dataset(ds_path))


def test_unit_target_batches_cover_every_pair_once(tiny_dataset, tmp_path):
    plan = _plan(tiny_dataset, tmp_path)
    assert plan.n_pairs == (6 + 4) * 2
    seen = [(b.layer, int(u), b.partner.name) for b in plan.batches for u in b.x_units]
    assert len(seen) == len(set(seen)) == plan.n_pairs
    for b in plan.batches:
        assert b.n_pairs <= 3
        assert b.shard[0] <= b.x_units.min() and b.x_units.max() < b.shard[1]
        assert b.seed == derive_seed(7, "pairs", b.layer, "target", b.partner.name)
    # ids depend on content only: planning again gives the same ids
    assert [b.batch_id for b in plan.batches] == [b.batch_id for b in _plan(tiny_dataset, tmp_path).batches]


def test_unit_selections(tiny_dataset, tmp_path):
    plan = _plan(tiny_dataset, tmp_path, layers=[{"name": "a", "units": {"top_k_variance": 2}},
                                                 {"name": "b", "units": {"indices": [3, 1]}}])
    layers, _ = make_activations()
    var = layers["a"].astype(np.float64).var(0)
    assert plan.layers["a"].tolist() == sorted(np.argsort(-var)[:2].tolist())
    assert plan.layers["b"].tolist() == [1, 3]
    plan = _plan(tiny_dataset, tmp_path, units={"range": [1, 3]})
    assert {k: v.tolist() for k, v in plan.layers.items()} == {"a": [1, 2], "b": [1, 2]}


def test_pair_modes(tiny_dataset, tmp_path):
    uu = _plan(tiny_dataset, tmp_path, pairs="unit-unit", targets=[])
    assert uu.n_pairs == 6 * 5 // 2 + 4 * 3 // 2
    assert all((b.x_units < b.y_units).all() for b in uu.batches)
    adj = _plan(tiny_dataset, tmp_path, pairs="adjacent-layers", targets=[])
    assert adj.n_pairs == 6 * 4 and {b.partner.name for b in adj.batches} == {"b"}
    lt = _plan(tiny_dataset, tmp_path, pairs="layer-target")
    assert lt.n_pairs == 4 and all(b.layer_units.size for b in lt.batches)


def test_plan_errors_name_the_fix(tiny_dataset, tmp_path):
    with pytest.raises(SpecError, match=r"layers: layer 'aa' is not in dataset .* Did you mean 'a'"):
        _plan(tiny_dataset, tmp_path, layers=["aa"])
    with pytest.raises(SpecError, match=r"targets: target 'labels' .* Did you mean 'label'"):
        _plan(tiny_dataset, tmp_path, targets=["labels"])
    with pytest.raises(SpecError, match=r"exceeds its 4 units; use a stop <= 4"):
        _plan(tiny_dataset, tmp_path, units={"range": [0, 5]})
    with pytest.raises(SpecError, match=r"more than max_pairs=5 pairs"):
        _plan(tiny_dataset, tmp_path, max_pairs=5)
    with pytest.raises(SpecError, match=r"needs at least two layers"):
        _plan(tiny_dataset, tmp_path, pairs="adjacent-layers", targets=[], layers=["a"])
    with pytest.raises(SpecError, match=r"needs >= 2 units in layer 'a'"):
        _plan(tiny_dataset, tmp_path, pairs="unit-unit", targets=[], layers=["a"], units={"indices": [N % 6]})
