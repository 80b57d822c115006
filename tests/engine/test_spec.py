"""Job specs: validation messages name the field, the value and the allowed values."""

from __future__ import annotations

from pathlib import Path

import pytest

from distmi.core.errors import SpecError
from distmi.jobs.spec import load_spec, parse_spec, spec_hash

BASE = {"dataset": {"path": "out/x"}, "targets": ["label"], "output": "out/r"}
JOBS = sorted((Path(__file__).parents[2] / "jobs").rglob("*.yaml"))


def test_minimal_spec_has_documented_defaults():
    spec = parse_spec(BASE)
    assert spec.pairs == "unit-target" and spec.layers == "all" and spec.units == "all"
    assert spec.estimator.method == "gmm" and spec.scaling.executor == "ray"
    assert spec.n_bootstrap == 20 and spec.retries == 3


def test_unknown_key_is_rejected_with_its_path():
    with pytest.raises(SpecError, match=r"unknown key 'scaling.wokers'"):
        parse_spec({**BASE, "scaling": {"wokers": 2}})


def test_bad_literal_lists_allowed_values():
    with pytest.raises(SpecError, match=r"pairs: got 'unit-pairs', allowed values: 'unit-target'"):
        parse_spec({**BASE, "pairs": "unit-pairs"})


def test_bad_number_names_field_and_value():
    with pytest.raises(SpecError, match=r"scaling.workers: .*greater than or equal to 1 \(got 0\)"):
        parse_spec({**BASE, "scaling": {"workers": 0}})


def test_unit_selection_forms():
    spec = parse_spec({**BASE, "layers": ["a", {"name": "b", "units": {"top_k_variance": 3}}],
                       "units": {"range": [0, 4]}})
    from distmi.engine.requests import LayerRequest, TopVarianceUnits, UnitRange

    request = spec.plan_request()
    assert request.layers == (LayerRequest("a"), LayerRequest("b", TopVarianceUnits(3)))
    assert request.default_units == UnitRange(0, 4)
    with pytest.raises(SpecError, match=r"start < stop"):
        parse_spec({**BASE, "units": {"range": [4, 2]}})


def test_mode_and_targets_must_agree():
    with pytest.raises(SpecError, match=r"needs at least one target"):
        parse_spec({**BASE, "targets": []})
    with pytest.raises(SpecError, match=r"remove targets or use pairs: unit-target"):
        parse_spec({**BASE, "pairs": "unit-unit"})
    with pytest.raises(SpecError, match=r"lists \['a'\] more than once"):
        parse_spec({**BASE, "layers": ["a", "a"]})


def test_spec_hash_ignores_how_the_job_runs():
    a = parse_spec(BASE)
    b = parse_spec({**BASE, "name": "other", "output": "elsewhere", "retries": 0,
                    "scaling": {"executor": "local", "workers": 9}})
    c = parse_spec({**BASE, "seed": 1})
    assert spec_hash(a) == spec_hash(b) != spec_hash(c)


def test_load_spec_errors(tmp_path):
    with pytest.raises(SpecError, match=r"does not exist"):
        load_spec(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: [unclosed\n")
    with pytest.raises(SpecError, match=r"not valid YAML"):
        load_spec(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(SpecError, match=r"must be a mapping"):
        load_spec(bad)


@pytest.mark.parametrize("path", JOBS, ids=[p.name for p in JOBS])
def test_bundled_jobs_are_valid(path):
    """Every bundled job file passes its schema (NIF and information-plane jobs have their own)."""
    if path.parent.name == "infoplane":  # `distmi infoplane --spec` files
        from distmi.analyses.infoplane.spec import load_plane_spec

        assert load_plane_spec(path).output.startswith("out/")
        return
    if path.name.startswith("nif_"):  # `distmi nif --job` files: the NIF job schema
        from distmi.analyses.nif.job import load_nif_job

        load_nif_job(path)
        return
    spec = load_spec(path)
    assert spec.output.startswith("out/")


def test_builtin_datasets_are_registered_not_hard_coded(tmp_path):
    from distmi.jobs import builtin_datasets, register_builtin_dataset

    with pytest.raises(SpecError, match=r"unknown bundled dataset 'irs'.*Did you mean 'iris'"):
        parse_spec({**BASE, "dataset": {"path": str(tmp_path / "d"), "builtin": "irs"}})
    calls = []
    register_builtin_dataset("planted-test", lambda path: calls.append(path))
    try:
        assert "planted-test" in builtin_datasets()
        spec = parse_spec({**BASE, "dataset": {"path": str(tmp_path / "d"),
                                               "builtin": "planted-test"}})
        assert spec.dataset.builtin == "planted-test"
        with pytest.raises(Exception, match="already registered"):
            register_builtin_dataset("planted-test", lambda path: None)
    finally:
        from distmi.jobs import datasets

        datasets._BUILDERS.pop("planted-test", None)


def test_engine_does_not_import_jobs():
    import ast
    from pathlib import Path

    import distmi

    root = Path(distmi.__file__).parent
    offenders = []
    for layer in ("core", "kernels", "estimators", "store", "reduce", "engine"):
        for f in (root / layer).rglob("*.py"):
            tree = ast.parse(f.read_text())
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                for name in names:
                    if name == "distmi" or name.startswith(("distmi.jobs", "distmi.cli",
                                                            "distmi.analyses", "distmi.report")):
                        offenders.append(f"{f.relative_to(root)} imports {name}")
    assert not offenders, offenders


def test_upper_layers_never_import_the_root_or_the_cli():
    """analyses, report, jobs and testing sit below the public ``distmi`` API and the CLI."""
    import ast
    from pathlib import Path

    import distmi

    root = Path(distmi.__file__).parent
    offenders = []
    for layer in ("analyses", "report", "jobs", "testing"):
        for f in (root / layer).rglob("*.py"):
            for node in ast.walk(ast.parse(f.read_text())):
                names = []
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                offenders += [f"{f.relative_to(root)} imports {name}" for name in names
                              if name == "distmi" or name.startswith("distmi.cli")]
    assert not offenders, offenders
