"""``distmi methods`` and ``distmi estimate``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from distmi.cli import _load_commands, app

_load_commands()
runner = CliRunner()


def test_methods_lists_registry():
    out = runner.invoke(app, ["methods"])
    assert out.exit_code == 0
    assert "gmm" in out.output and "ksg" in out.output


def test_estimate_from_csv(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.normal(size=1000)
    frame = pd.DataFrame({"a": a, "b": 0.6 * a + 0.8 * rng.normal(size=1000),
                          "label": (a > 0).astype(int)})
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    out = runner.invoke(app, ["estimate", str(path), "--x", "a", "--y", "b",
                              "--n-bootstrap", "10", "--json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.output)
    assert result["unit"] == "nat" and abs(result["value"] - 0.2231) < 0.08
    out = runner.invoke(app, ["estimate", str(path), "--x", "a", "--y", "label", "--discrete-y",
                              "--n-bootstrap", "5"])
    assert out.exit_code == 0 and out.output.startswith("I(X;Y) = ")


def test_estimate_reports_bad_input(tmp_path):
    path = tmp_path / "data.csv"
    pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [1.0, 1.0, 1.0]}).to_csv(path, index=False)
    out = runner.invoke(app, ["estimate", str(path), "--x", "a", "--y", "zz"])
    assert out.exit_code == 2 and "columns ['zz'] are not in" in out.output
    out = runner.invoke(app, ["estimate", str(path), "--x", "a", "--y", "b"])
    assert out.exit_code == 2 and "y column 0 is constant" in out.output
    out = runner.invoke(app, ["estimate", str(tmp_path / "missing.csv"), "--x", "a", "--y", "b"])
    assert out.exit_code == 2 and "does not exist" in out.output
