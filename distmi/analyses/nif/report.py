"""The whole NIF study of one classifier: flow, pruning, curves, comparison, figures, on disk.

:func:`run_study` is what ``distmi nif --builtin NAME --out DIR`` and ``jobs/nif_*.yaml`` run:

1. the flow on the training split (links on the engine, in ``DIR/engine``, resumable);
2. pruning of the zero-flow neurons: test accuracy before/after, largest logit change,
   parameters zeroed, the pruned weights (``pruned_model.pt``);
3. the pruning curve on the test split (NIF order vs L1 magnitude vs random);
4. the comparison with Integrated Gradients and SHAP (K-S table, Spearman, top-k, deletion);
5. figures (PNG) and ``report.json`` with the timings (wall and CPU seconds per stage).

Output folder::

    DIR/flow/            the saved Flow (distmi.nif.load)
    DIR/engine/          activation dataset and committed link jobs (resume)
    DIR/pruning.json     accuracy before/after, parameters, units pruned
    DIR/pruning_curve.csv, DIR/comparison/*.csv, DIR/figures/*.png, DIR/report.json
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from distmi.analyses.nif.api import _cpu_seconds, information_flow


class _Clock:
    def __init__(self) -> None:
        self.stages: dict[str, dict[str, float]] = {}

    def __call__(self, name: str):
        clock = self

        class _Stage:
            def __enter__(self):
                self.w, self.c = time.perf_counter(), _cpu_seconds()

            def __exit__(self, *exc: Any) -> None:
                clock.stages[name] = {"wall_s": round(time.perf_counter() - self.w, 3),
                                      "cpu_s": round(_cpu_seconds() - self.c, 3)}

        return _Stage()


def run_study(
    bundle: Any,
    out: str | Path,
    *,
    estimator: str | None = None,
    estimator_params: dict[str, Any] | None = None,
    beta: str | float = "mean",
    redundancy_order: str = "relevance",
    n_bootstrap: int = 20,
    n_permutations: int = 9999,
    alpha: float = 0.05,
    seed: int = 0,
    outputs: str = "classes",
    bound: str = "per-link",
    compare: bool = True,
    curve: bool = True,
    executor: Any = "local",
    workers: int = 2,
    address: str | None = None,
    batch_size: int = 256,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the study of ``bundle`` (a :class:`distmi.examples.tabular.Bundle`) into ``out``.

    Returns:
        The content of ``report.json``.
    """
    import torch

    from distmi.analyses.nif import figures
    from distmi.analyses.nif.api import DEFAULT_ESTIMATOR
    from distmi.analyses.nif.pruning import accuracy, curve_summary, predict, pruning_curve

    say = log or (lambda _m: None)
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    clock = _Clock()
    x_train, y_train = bundle.train
    x_test, y_test = bundle.test
    say(f"{bundle.name}: NIF on {len(x_train)} training rows")
    with clock("flow"):
        flow = information_flow(
            bundle.model, x_train, y_train, estimator=estimator or DEFAULT_ESTIMATOR,
            beta=beta, n_bootstrap=n_bootstrap, random_state=seed,
            estimator_params=estimator_params, redundancy_order=redundancy_order,
            outputs=outputs, bound=bound, alpha=alpha, n_permutations=n_permutations,
            feature_names=bundle.feature_names, class_names=bundle.class_names,
            executor=executor, workers=workers, address=address, batch_size=batch_size,
            work_dir=str(root / "engine"), overwrite=overwrite, log=say)
        flow.save(root / "flow")
    with clock("prune"):
        pruned = flow.prune(bundle.model)
        rep = flow.last_prune
        before, after = accuracy(bundle.model, x_test, y_test), accuracy(pruned, x_test, y_test)
        change = float(np.abs(predict(pruned, bundle.x) - predict(bundle.model, bundle.x)).max())
        torch.save(pruned.state_dict(), root / "pruned_model.pt")
    hidden = flow.neurons[flow.neurons["kind"] == "hidden"]
    pruning = {
        "test_accuracy_before": before, "test_accuracy_after": after,
        "accuracy_change": after - before, "max_logit_change_all_rows": change,
        "n_hidden": len(hidden), "n_pruned": len(rep.pruned),
        "pruned": [list(p) for p in rep.pruned], "skipped": [list(s) for s in rep.skipped],
        "params_zeroed": rep.params_zeroed, "params_total": rep.params_total,
        "zero_flow_inputs": [u for layer, u in flow.zero_flow if layer == "input"],
    }
    (root / "pruning.json").write_text(json.dumps(pruning, indent=2))
    report: dict[str, Any] = {"data": bundle.name, "accuracy": bundle.accuracy,
                              "flow": flow.summary(), "pruning": pruning,
                              "settings": flow.settings}
    figdir = root / "figures"
    figdir.mkdir(exist_ok=True)
    if curve:
        with clock("pruning_curve"):
            curve_tab = pruning_curve(bundle.model, flow.graph, flow.neurons, x_test, y_test,
                                      seed=seed)
            curve_tab.to_csv(root / "pruning_curve.csv", index=False)
            report["pruning_curve"] = curve_summary(curve_tab).to_dict(orient="records")
            figures.pruning_curve_figure(curve_tab, f"{bundle.name}: pruning curve").savefig(
                figdir / "pruning_curve.png", dpi=120)
    if compare:
        from distmi.analyses.nif.comparison import compare_attributions

        with clock("comparison"):
            comp = compare_attributions(flow, bundle.model, x_train, x_test, y_test, seed=seed)
            cdir = root / "comparison"
            cdir.mkdir(exist_ok=True)
            for name, table in comp.items():
                table.to_csv(cdir / f"{name}.csv", index=False)
            figures.deletion_curve_figure(comp["deletion"], f"{bundle.name}: deletion curve"
                                          ).savefig(figdir / "deletion_curve.png", dpi=120)
        report["comparison"] = {k: comp[k].to_dict(orient="records")
                                for k in ("ks", "agreement", "deletion_area")}
    with clock("figures"):
        figures.flow_graph(flow.links, flow.neurons, title=f"{bundle.name}: information flow"
                           ).savefig(figdir / "flow_graph.png", dpi=120)
        figures.attribution_heatmap(flow.attribution, f"{bundle.name}: NIF attribution"
                                    ).savefig(figdir / "attribution.png", dpi=120)
    report["timings"] = {"stages": clock.stages, "flow_detail": flow.info["timings"],
                         "total_wall_s": round(sum(s["wall_s"] for s in clock.stages.values()), 3),
                         "total_cpu_s": round(sum(s["cpu_s"] for s in clock.stages.values()), 3)}
    report["engine"] = flow.info["engine"]
    (root / "report.json").write_text(json.dumps(report, indent=2, default=_json_default))
    return report


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)
