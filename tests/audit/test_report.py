"""distmi.report: each figure function, the page, and the page rendered by headless Chromium
(the screenshot is not blank; every image loads)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from audit_data import capture, job_doc
from matplotlib.figure import Figure
from typer.testing import CliRunner

from distmi.cli import _load_commands, app
from distmi.jobs import parse_spec, run_job
from distmi.jobs.audit import run_audit
from distmi.reduce import compare
from distmi.report import figures, write_report
from distmi.report.tables import layer_order, significance

runner = CliRunner()
_load_commands()
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--hide-scrollbars"]


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


def sweep_table(layers=("encoder.layer.0", "encoder.layer.2", "encoder.layer.10"), units=24,
                targets=("topic", "sentiment"), seed=0, extra=()):
    rng = np.random.default_rng(seed)
    recs = []
    for li, layer in enumerate(layers):
        for u in range(units):
            for t in targets:
                est = float(rng.gamma(1.0, 0.05) + (0.8 * li / len(layers) if u % 7 == 0 else 0))
                std = 0.02 + 0.1 * est
                recs.append({"layer": layer, "unit": u, "target": t, "target_unit": -1,
                             "estimate": est, "std": std, "ci_low": est - 2 * std,
                             "ci_high": est + 2 * std, "null_mean": 0.01, "n_samples": 256,
                             "status": "ok"})
    t = pd.DataFrame(recs)
    if "p_value" in extra:
        t["p_value"] = np.clip(np.exp(-t["estimate"] * 30), 0, 1)
    if "q_value" in extra:
        t["q_value"] = np.clip(np.exp(-t["estimate"] * 20), 0, 1)
    if "significant" in extra:
        t["significant"] = t["estimate"] > 0.3
        t["stage"] = np.where(t["significant"], "gmm", "screen")
    return t


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """A committed baseline and an audit with drift in layer ``late``."""
    root = tmp_path_factory.mktemp("report")
    capture(root / "base_data", seed=0)
    capture(root / "drift_data", seed=2, drift_layer="late")
    run_job(parse_spec(job_doc(root / "base_data", root / "baseline")))
    run_audit(parse_spec(job_doc(root / "drift_data", root / "audit")), root / "baseline")
    return root


@pytest.mark.parametrize("extra", [(), ("p_value",), ("q_value",), ("significant",)])
def test_every_figure_is_a_figure_with_or_without_test_columns(extra):
    t = sweep_table(extra=extra)
    mask, rule = significance(t)
    assert mask.dtype == bool and 0 < mask.sum() < len(t), rule
    figs = [figures.layer_target_heatmap(t), figures.mi_vs_depth(t), figures.top_units_ci(t, 5),
            *(figures.unit_target_heatmap(t, layer) for layer in layer_order(t))]
    for fig in figs:
        assert isinstance(fig, Figure) and fig.axes


def test_significance_rules():
    t = sweep_table(extra=("significant", "q_value", "p_value"))
    assert significance(t)[1].startswith("significant")
    assert significance(t.drop(columns="significant"))[1] == "q-value <= 0.05"
    m, rule = significance(t.drop(columns=["significant", "q_value"]))
    assert rule.startswith("BH q-value")
    p = t["p_value"].to_numpy()
    from scipy.stats import false_discovery_control

    np.testing.assert_array_equal(m.to_numpy(), false_discovery_control(p) <= 0.05)
    bare = t.drop(columns=["significant", "q_value", "p_value"])
    m, rule = significance(bare)
    np.testing.assert_array_equal(m.to_numpy(), (bare.estimate - bare.null_mean) > 2 * bare["std"])
    assert "heuristic" in rule
    m, rule = significance(bare.drop(columns=["null_mean"]))
    assert not m.any() and rule.startswith("no significance")


def test_layers_in_model_order():
    t = sweep_table()
    assert layer_order(t) == ["encoder.layer.0", "encoder.layer.2", "encoder.layer.10"]
    manifest = {"spec": {"layers": ["encoder.layer.10", {"name": "encoder.layer.0"}]}}
    assert layer_order(t, manifest) == ["encoder.layer.10", "encoder.layer.0", "encoder.layer.2"]


def test_unit_unit_and_layer_target_tables():
    rng = np.random.default_rng(1)
    uu = pd.DataFrame([{"layer": "a", "unit": i, "target": "a", "target_unit": j,
                        "estimate": rng.uniform(), "std": 0.01, "null_mean": 0.0}
                       for i in range(6) for j in range(i + 1, 6)])
    assert isinstance(figures.unit_target_heatmap(uu, "a"), Figure)
    lt = pd.DataFrame([{"layer": lay, "unit": -1, "target": "y", "target_unit": -1,
                        "estimate": v, "std": 0.01, "ci_low": v - .02, "ci_high": v + .02,
                        "null_mean": 0.0} for lay, v in (("l1", 0.2), ("l2", 0.5))])
    for fig in (figures.layer_target_heatmap(lt), figures.mi_vs_depth(lt),
                figures.top_units_ci(lt)):
        assert isinstance(fig, Figure)
    nan = lt.assign(estimate=np.nan)
    assert isinstance(figures.layer_target_heatmap(nan), Figure)


def test_drift_figures_on_a_comparison():
    base = sweep_table()
    new = sweep_table().assign(estimate=lambda f: f["estimate"] + np.where(
        (f["layer"] == "encoder.layer.2") & (f["unit"] % 3 == 0), 0.5, 0.0))
    c = compare(base, new, min_effect=0.1)
    assert isinstance(figures.drift_scatter(c.rows), Figure)
    from distmi.reduce.drift import judge_layers

    drift, _, layers = judge_layers(c, 0.1)
    assert drift and layers["layer"].iloc[0] == "encoder.layer.2"
    fig = figures.drift_by_layer(layers, 0.1, layer_order(base))
    assert isinstance(fig, Figure)


def test_report_reads_tables_only_and_never_touches_pyplot(audited, tmp_path):
    code = textwrap.dedent(f"""
        import sys
        from distmi.report import write_report
        write_report({str(audited / 'audit')!r}, {str(tmp_path / 'r')!r})
        bad = [m for m in sys.modules if m.startswith(("distmi.engine", "distmi.jobs", "ray"))
               or m == "matplotlib.pyplot"]
        assert not bad, bad
        print("clean")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    assert out.returncode == 0 and "clean" in out.stdout, out.stderr


def _render(page: Path, tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """Screenshot ``page`` and count its images that loaded, with headless Chromium."""
    exe = chromium()
    if exe is None:
        pytest.skip("chromium is not installed (Debian package `chromium`; .ci/run installs it): "
                    "the HTML render check did not run")
    shot = tmp_path / "shot.png"
    base = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    subprocess.run([*base, "--window-size=1280,2400", f"--screenshot={shot}", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    probe = page.with_name("_probe.html")  # beside the page, so relative images resolve alike
    script = ("<script>window.addEventListener('load', () => { const im = [...document.images];"
              "document.body.dataset.images = im.length; document.body.dataset.loaded ="
              " im.filter(i => i.complete && i.naturalWidth > 0).length; });</script>")
    probe.write_text(page.read_text().replace("</body>", script + "</body>"))
    dom = subprocess.run([*base, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    probe.unlink()
    counts = {k: int(v) for k, v in re.findall(r'data-(images|loaded)="(\d+)"', dom)}
    return shot, counts


def _not_blank(shot: Path) -> None:
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape[0] >= 1000 and img.shape[1] >= 1000
    ink = (np.abs(img - 255).sum(axis=2) > 60).mean()
    colors = len(np.unique(img.reshape(-1, 3), axis=0))
    assert ink > 0.03 and colors > 200, (ink, colors)


@pytest.mark.parametrize("embed", [True, False])
def test_page_renders_in_chromium_with_every_image(audited, tmp_path, embed):
    page = write_report(audited / "audit", tmp_path / "rep", embed=embed)
    html = page.read_text()
    assert "http://" not in html and "https://" not in html and "<script" not in html
    n_img = html.count("<img ")
    assert n_img == 7  # drift x2, layer x target, depth, top units, 2 layers
    if embed:
        assert html.count('src="data:image/png;base64,') == n_img
    else:
        assert html.count('src="figures/') == n_img
    assert "DRIFT" in html and "layer late" in html
    assert len(list((tmp_path / "rep" / "figures").glob("*.png"))) == n_img
    shot, counts = _render(page, tmp_path)
    _not_blank(shot)
    assert counts == {"images": n_img, "loaded": n_img}


def test_a_broken_image_is_detected(audited, tmp_path):
    """The render check can fail: a page whose figure file is missing loads one image fewer."""
    page = write_report(audited / "baseline", tmp_path / "rep", embed=False)
    (tmp_path / "rep" / "figures" / "top_units.png").unlink()
    _, counts = _render(page, tmp_path)
    assert counts["loaded"] == counts["images"] - 1


def test_report_cli_and_run_option(audited, tmp_path):
    res = runner.invoke(app, ["report", str(audited / "baseline"), "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    html = (tmp_path / "r" / "index.html").read_text()
    assert "MI report: fake-audit" in html and "Audit</h2>" not in html
    res = runner.invoke(app, ["report", str(audited / "baseline"), "--baseline",
                              str(audited / "baseline"), "--out", str(tmp_path / "self")])
    assert res.exit_code == 0, res.output
    assert "No drift" in (tmp_path / "self" / "index.html").read_text()
    # an audit folder finds its baseline through audit.json
    res = runner.invoke(app, ["report", str(audited / "audit"), "--out", str(tmp_path / "a"),
                              "--max-drift-fraction", "0.9"])
    assert res.exit_code == 0 and "No drift" in (tmp_path / "a" / "index.html").read_text()
    res = runner.invoke(app, ["report", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "does not exist" in res.output
    (tmp_path / "half" / "parts").mkdir(parents=True)
    res = runner.invoke(app, ["report", str(tmp_path / "half"), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "holds no committed results" in res.output
    job = tmp_path / "job.yaml"
    import yaml

    job.write_text(yaml.safe_dump(job_doc(audited / "base_data", audited / "baseline")))
    res = runner.invoke(app, ["run", str(job), "--quiet", "--report", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "run" / "index.html").is_file() and "report:" in res.output
