"""``distmi.nif.information_flow``: neuron-level information flow of a trained classifier.

Pipeline (seed: Davis et al., "NIF: neural information flow"; docs/nif.md):

1. **graph** (:mod:`.graph`): input features -> hidden activations -> class indicators
   (or logits), captured by running the model over X (:mod:`.capture`);
2. **links** (:mod:`.links`): MI of every link between adjacent columns, of every
   within-layer unit pair (redundancy) and of every feature with every class indicator, with
   ``n_bootstrap`` shared half-sample replicates and the rank statistic of the zero-flow
   test, as engine jobs (in this process or on Ray actors);
3. **eq. 2** (:mod:`.redundancy`): link value = relevance - beta * redundancy, clipped at 0;
   or the shared-critic bound of eq. 3 (:mod:`.shared_critic`);
4. **eq. 4** (:mod:`.attribution`): attribution = N^1 N^2 ... N^L with replicate intervals;
5. **zero flow** (:mod:`.zeroflow`): permutation tests per node, Benjamini-Hochberg.
"""

from __future__ import annotations

import resource
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from distmi.analyses.nif.build import NEURAL, build_tables
from distmi.analyses.nif.capture import capture_activations, check_labels
from distmi.analyses.nif.flow import Flow
from distmi.analyses.nif.graph import CLASSES, INPUT, LOGITS, FlowGraph, NodeLayer, build_graph
from distmi.analyses.nif.links import EngineSettings, run_link_jobs
from distmi.analyses.nif.redundancy import check_beta, check_order
from distmi.core.errors import InvalidInputError, InvalidParameterError, LengthMismatchError
from distmi.core.seeds import check_seed, derive_seed
from distmi.core.validation import check_int

#: The default link estimator: the most accurate of ksg, gmm and mine on held-out 1-D pairs
#: with known MI (benchmarks/nif_link_accuracy.py; docs/nif.md, "Choosing the link estimator").
DEFAULT_ESTIMATOR = "ksg"
BOUNDS = ("per-link", "shared-critic")


def _cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


@contextmanager
def _timed(timings: dict[str, Any], name: str):
    w0, c0 = time.perf_counter(), _cpu_seconds()
    yield
    timings[name] = {"wall_s": round(time.perf_counter() - w0, 3),
                     "cpu_s": round(_cpu_seconds() - c0, 3)}


def default_params(base: str, n: int, n_bootstrap: int, params: Mapping[str, Any] | None
                   ) -> dict[str, Any]:
    """The base estimator's parameters with NIF's small-sample defaults filled in.

    Neural bounds get ``batch_size`` no larger than the training rows of a half-sample
    (their default of 128 needs n >= 256 rows per fit); GMM-MI gets ``max_components=4``
    below 1000 samples.
    """
    p = dict(params or {})
    if base in NEURAL and "batch_size" not in p:
        rows = n // 2 if n_bootstrap > 0 else n
        n_train = rows - round(rows * float(p.get("holdout_fraction", 0.5)))
        p["batch_size"] = int(max(2, min(128, n_train)))
    if base == "gmm" and "max_components" not in p and n < 1000:
        p["max_components"] = 4
    return p


def _versions() -> dict[str, str | None]:
    from importlib import metadata

    from distmi.core.version import __version__

    out: dict[str, str | None] = {"distmi": __version__}
    for dist in ("torch", "numpy", "ray"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _names(given: Sequence[str] | None, n: int, what: str, default: Sequence[str]) -> list[str]:
    if given is None:
        return list(default)
    names = [str(v) for v in given]
    if len(names) != n:
        raise LengthMismatchError(f"{what} has {len(names)} names for {n} {what.split('_')[0]}s.")
    if len(set(names)) != n:
        raise InvalidParameterError(f"{what} must be unique, got {names}.")
    return names


def information_flow(
    model: Any,
    X: Any,
    y: Any,
    layers: Sequence[str] | None = None,
    estimator: str = DEFAULT_ESTIMATOR,
    beta: str | float = "mean",
    n_bootstrap: int = 20,
    random_state: int | None = 0,
    *,
    estimator_params: Mapping[str, Any] | None = None,
    redundancy_order: str = "relevance",
    outputs: str = "classes",
    bound: str = "per-link",
    alpha: float = 0.05,
    n_permutations: int = 9999,
    fdr: str = "bh",
    feature_names: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    executor: Any = "local",
    workers: int = 2,
    address: str | None = None,
    batch_size: int = 256,
    work_dir: str | None = None,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
) -> Flow:
    """Neuron-level information flow (NIF) of a trained classifier on (X, y).

    Args:
        model: a torch classifier returning one logit per class, shape (n, C).
        X: inputs, shape (n, ...) (array or tensor); rows are samples.
        y: class indices 0..C-1, shape (n,).
        layers: module paths of the hidden activations, in forward order; ``None`` finds the
            Linear/Conv + activation sequence of an ``nn.Sequential``-like model.
        estimator: link MI estimator (``"ksg"`` default, ``"gmm"``, ``"mine"`` as in the
            seed, ``"nwj"``, ``"smile"``, ``"infonce"``); see docs/nif.md for the measured
            accuracy of each.
        beta: redundancy weight of eq. 2: ``"mean"`` (1/(i-1), default), ``"none"`` or a
            float >= 0.
        n_bootstrap: shared half-sample replicates for link and attribution intervals.
        random_state: root seed; the same seed gives the same numbers on any executor.
        estimator_params: parameters of the link estimator.
        redundancy_order: which units count as "earlier" in eq. 2's redundancy sum:
            ``"relevance"`` (decreasing relevance, default) or ``"index"`` (the seed's).
        outputs: ``"classes"`` (class indicators 1[y = c]) or ``"logits"``.
        bound: ``"per-link"`` (eq. 2 from separate estimates) or ``"shared-critic"`` (eq. 3).
        alpha: FDR level of the zero-flow test; ``fdr``: ``"bh"`` or ``"by"``.
        n_permutations: size of the permutation null tables of the zero-flow test.
        feature_names, class_names: names for the attribution table.
        executor: ``"local"``, ``"ray"`` or an executor object; ``workers``, ``address``,
            ``batch_size``: Ray actors, cluster address, pairs per work unit.
        work_dir: folder of the activation dataset and the link jobs (kept; a rerun with the
            same data and settings resumes there). ``None``: a temporary folder.
        overwrite: replace a ``work_dir`` that holds a run of other data or settings.
        log: called with progress messages.

    Returns:
        A :class:`~distmi.analyses.nif.flow.Flow` (``links``, ``attribution``,
        ``attribution_ci``, ``zero_flow``, ``prune(model)``, ``save(path)``).
    """
    timings: dict[str, Any] = {}
    graph = build_graph(model, layers, outputs)
    with _timed(timings, "capture"):
        acts, logits, graph = capture_activations(model, graph, X)
    labels = check_labels(y, len(logits), logits.shape[1])
    return flow_from_activations(
        acts, labels, graph=graph, estimator=estimator, beta=beta, n_bootstrap=n_bootstrap,
        random_state=random_state, estimator_params=estimator_params,
        redundancy_order=redundancy_order, bound=bound, alpha=alpha,
        n_permutations=n_permutations, fdr=fdr, feature_names=feature_names,
        class_names=class_names, executor=executor, workers=workers, address=address,
        batch_size=batch_size, work_dir=work_dir, overwrite=overwrite, log=log,
        timings=timings,
    )


def _graph_from_activations(acts: Mapping[str, Any], labels: np.ndarray | None) -> FlowGraph:
    names = list(acts)
    if len(names) < 2:
        raise InvalidInputError(
            f"activations need at least two layers (input and one hidden layer), got {names}."
        )
    layers = [NodeLayer(INPUT if k == 0 else n, "input" if k == 0 else "hidden",
                        np.asarray(acts[n]).shape[1])
              for k, n in enumerate(names[: None if labels is not None else -1])]
    if labels is not None:
        layers.append(NodeLayer(CLASSES, "classes", int(labels.max()) + 1))
        outputs = CLASSES
    else:
        layers.append(NodeLayer(LOGITS, "logits", np.asarray(acts[names[-1]]).shape[1]))
        outputs = LOGITS
    return FlowGraph(tuple(layers), outputs, "activations")


def flow_from_activations(
    activations: Mapping[str, Any],
    y: Any = None,
    *,
    graph: FlowGraph | None = None,
    estimator: str = DEFAULT_ESTIMATOR,
    beta: str | float = "mean",
    n_bootstrap: int = 20,
    random_state: int | None = 0,
    estimator_params: Mapping[str, Any] | None = None,
    redundancy_order: str = "relevance",
    bound: str = "per-link",
    alpha: float = 0.05,
    n_permutations: int = 9999,
    fdr: str = "bh",
    feature_names: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    executor: Any = "local",
    workers: int = 2,
    address: str | None = None,
    batch_size: int = 256,
    work_dir: str | None = None,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
    timings: dict[str, Any] | None = None,
) -> Flow:
    """NIF from activations already in hand: ``{layer: (n, units)}`` in forward order.

    The first layer is the input features. With class labels ``y`` the outputs are the
    class indicators; with ``y=None`` the last layer is the (continuous) output layer. Other
    arguments as in :func:`information_flow`; ``flow.prune`` needs a model-built ``graph``.
    """
    timings = {} if timings is None else timings
    t_all = time.perf_counter()
    seed = check_seed(random_state)
    beta_v = check_beta(beta)
    order = check_order(redundancy_order)
    n_boot = check_int(n_bootstrap, "n_bootstrap", minimum=0)
    n_perm = check_int(n_permutations, "n_permutations", minimum=19)
    if not 0.0 < float(alpha) < 1.0:
        raise InvalidParameterError(f"alpha must lie in (0, 1), got {alpha!r}.")
    if bound not in BOUNDS:
        raise InvalidParameterError(f"bound must be one of {list(BOUNDS)}, got {bound!r}.")
    if fdr not in ("bh", "by"):
        raise InvalidParameterError(f"fdr must be 'bh' or 'by', got {fdr!r}.")
    from distmi.estimators.registry import get_method

    base = str(estimator).lower()
    if get_method(base).estimate_pairs is None or base.startswith("nif"):
        raise InvalidParameterError(f"estimator {estimator!r} has no batched estimate_pairs.")
    acts = {str(k): np.ascontiguousarray(np.asarray(v, dtype=np.float32).reshape(len(v), -1))
            for k, v in activations.items()}
    n = len(next(iter(acts.values())))
    for k, v in acts.items():
        if len(v) != n:
            raise LengthMismatchError(f"layer {k!r} has {len(v)} rows, the input has {n}.")
        if not np.isfinite(v).all():
            from distmi.core.errors import NonFiniteInputError

            raise NonFiniteInputError(f"layer {k!r} holds NaN or Inf activations.")
    labels = None if y is None else check_labels(y, n, None if graph is None
                                                 else graph.layers[-1].n_units)
    if graph is None:
        graph = _graph_from_activations(acts, labels)
        if labels is None:
            acts[LOGITS] = acts.pop(list(acts)[-1])
        acts[INPUT] = acts.pop(next(iter(acts)))
        acts = {layer.name: acts[layer.name] for layer in graph.layers if layer.name in acts}
    graph = _named(graph, feature_names, class_names)
    params = default_params(base, n, n_boot, estimator_params)
    settings = {"estimator": base, "estimator_params": params, "beta": beta_v,
                "redundancy_order": order, "bound": bound,
                "n_bootstrap": n_boot, "random_state": seed, "alpha": float(alpha),
                "n_permutations": n_perm, "fdr": fdr, "outputs": graph.outputs,
                "n_samples": n, "replicates": "half-sample (n // 2 rows, shared by all links)",
                "test": "rank-KSG permutation test per link, Bonferroni min-p per side, "
                        "intersection-union per node, BH across nodes"}
    engine = EngineSettings(executor=executor, workers=workers, address=address,
                            batch_size=batch_size)
    tmp = None
    if work_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="distmi-nif-")
        root = tmp.name
    else:
        root = work_dir
    try:
        with _timed(timings, "links"):
            est = run_link_jobs(root, acts, labels, graph, base=base, base_params=params,
                                n_bootstrap=n_boot, seed=seed, redundancy=beta_v != "none",
                                engine=engine, overwrite=overwrite, log=log)
    finally:
        if tmp is not None:
            tmp.cleanup()
    shared = None
    if bound == "shared-critic":
        from functools import partial

        from distmi.analyses.nif.shared_critic import shared_critic_values

        shared = partial(shared_critic_values, acts, labels, graph, seed=seed)
    with _timed(timings, "flow"):
        tables = build_tables(est, acts, labels, graph, base=base, beta=beta_v,
                              alpha=float(alpha), n_permutations=n_perm,
                              tie_seed=derive_seed(seed, "nif", "rank-ties"), seed=seed,
                              fdr=fdr, order=order, shared_critic=shared)
    timings["total_wall_s"] = round(time.perf_counter() - t_all + timings.get("capture", {})
                                    .get("wall_s", 0.0), 3)
    info = {"versions": _versions(), "engine": est.info, "timings": timings,
            "work_dir": None if tmp is not None else str(root)}
    return Flow(graph, tables.links, tables.neurons, tables.attribution, tables.attribution_ci,
                tables.raw_mi, tables.raw_table, settings, info, tables.nif_replicates,
                tables.attribution_replicates)


def _named(graph: FlowGraph, feature_names: Sequence[str] | None,
           class_names: Sequence[str] | None) -> FlowGraph:
    from dataclasses import replace

    layers = list(graph.layers)
    first, last = layers[0], layers[-1]
    layers[0] = replace(first, unit_names=tuple(_names(
        feature_names, first.n_units, "feature_names",
        first.unit_names or [f"x{i}" for i in range(first.n_units)])))
    layers[-1] = replace(last, unit_names=tuple(_names(
        class_names, last.n_units, "class_names",
        last.unit_names or [str(c) for c in range(last.n_units)])))
    for k in range(1, len(layers) - 1):
        if not layers[k].unit_names:
            layers[k] = replace(layers[k], unit_names=tuple(str(u) for u in
                                                            range(layers[k].n_units)))
    return replace(graph, layers=tuple(layers))
