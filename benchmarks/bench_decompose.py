"""Decomposition benchmark: speed on digits, deletion/insertion vs captum, sanity checks.

Runs in one process, on one device, with the same torch thread count for every method:

1. **Speed**: fit + explain of the digits CNN (fit on the 1437 training images, explain the 359
   test images) per layer, wall-clock and CPU seconds (target: <= 180 s for one layer on
   2 cores); captum's LayerGradCam and IntegratedGradients on the same images are timed beside.
2. **Deletion / insertion** AUCs (accuracy, and the probability of the clean prediction) of
   the decision-related and total maps against LayerGradCam, IntegratedGradients and a random
   ranking (pixels removed to 0, the digits' background; lower deletion AUC is better).
3. **Model randomisation** (Adebayo et al. 2018): Spearman rank correlation between the maps
   of the trained and a re-initialised model (refitted), with Grad-CAM's and IG's for reference.
4. **Synthetic patch** task: share of the decision-related map's positive mass in the class
   patch (target >= 0.8) and of the total map in the distractor patch, for each fill
   (``--fills``), with LayerGradCam's and IG's class-patch shares for reference.
5. ``--text``: all-MiniLM-L6-v2 with a topic head on generated concept texts, token deletion
   AUCs vs token Grad-CAM and LayerIntegratedGradients (slow: minutes on 2 cores).

    .venv/bin/python benchmarks/bench_decompose.py                      # digits + synthetic
    .venv/bin/python benchmarks/bench_decompose.py --layers act2 --skip-randomisation
    .venv/bin/python benchmarks/bench_decompose.py --text
    .venv/bin/python benchmarks/bench_decompose.py --figures docs/decompose   # also PNGs
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Timer:
    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), _cpu()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = _cpu() - self.cpu


def _table(rows: list[dict], columns: list[str]) -> str:
    def fmt(v):
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    widths = [max(len(c), *(len(fmt(r.get(c, ""))) for r in rows)) for c in columns]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(fmt(r.get(c, "")).ljust(w) for c, w in zip(columns, widths, strict=True))
              for r in rows]
    return "\n".join(lines)


def _digits_figures(folder: Path, b, expl, curves, layer: str) -> None:
    from distmi.analyses.decompose import figures as F

    names = ("total", "decision", "redundant")
    for i in (0, 1):
        maps = {k: expl.map(k)[i] for k in names}
        title = f"digits {layer}: label {b.explain_labels[i]}, predicted {expl.predictions[i]}"
        F.save_png(F.decomposition_figure(b.images[i], maps, title),
                   folder / f"digits_{layer}_sample{i}.png", dpi=72)
    F.save_png(F.class_means_figure(expl.class_means(by="label")),
               folder / f"digits_{layer}_class_means.png", dpi=60)
    F.save_png(F.curves_figure([c for c in curves if c.method != "total"],
                               f"digits {layer}: deletion and insertion"),
               folder / f"digits_{layer}_curves.png", dpi=72)


def digits_part(args) -> None:
    import distmi
    from distmi.analyses.decompose import evaluation as E
    from distmi.analyses.decompose.bundled import digits_bundle

    b = digits_bundle(0)
    x_te, y_te = b.explain_inputs, b.explain_labels
    print(f"digits CNN: test accuracy {b.info['test_accuracy']:.3f}, fit on "
          f"{len(b.fit_data[1])} images, explain {len(y_te)}; torch threads {args.threads}")
    speed, auc_rows, rand_rows = [], [], []
    for layer in args.layers:
        with Timer() as t_fit:
            dec = distmi.decompose.fit(b.model, b.fit_data, layer=layer, local="conv",
                                       epochs=args.epochs, threads=args.threads,
                                       fill=args.fill, random_state=0)
        with Timer() as t_exp:
            expl = dec.explain((x_te, y_te))
        torch.set_num_threads(args.threads)
        with Timer() as t_cam:
            cam = E.gradcam_maps(b.model, layer, x_te, expl.predictions)
        with Timer() as t_ig:
            ig = E.integrated_gradients_maps(b.model, x_te, expl.predictions)
        speed.append({"layer": layer, "fit s": t_fit.wall, "fit cpu s": t_fit.cpu,
                      "explain s": t_exp.wall, "fit+explain s": t_fit.wall + t_exp.wall,
                      "LayerGradCam s": t_cam.wall, "IG (50 steps) s": t_ig.wall,
                      "I(Z;X)": float(np.mean(expl.total)),
                      "I(Z;X')": float(np.mean(expl.decision)),
                      "acc": float((expl.predictions == y_te).mean()),
                      "acc X'": float((expl.masked_predictions == y_te).mean())})
        maps = {"decision": expl.upsample((8, 8), "decision"),
                "total": expl.upsample((8, 8), "total"), "LayerGradCam": cam,
                "IntegratedGradients": ig,
                "random": np.random.default_rng(0).random((len(y_te), 8, 8))}
        table, curves = E.compare_methods(b.model, x_te, y_te, maps, local="conv")
        for row in table.to_dict(orient="records"):
            auc_rows.append({"layer": layer, **row})
        if args.figures:
            _digits_figures(Path(args.figures), b, expl, curves, layer)
        if not args.skip_randomisation:
            def baselines(model, layer=layer, target=expl.predictions):
                return {"LayerGradCam": E.gradcam_maps(model, layer, x_te, target),
                        "IntegratedGradients": E.integrated_gradients_maps(model, x_te, target)}

            with Timer() as t_rand:
                rho = E.randomisation_check(dec, b.fit_data[0], x_te, explanation=expl,
                                            extra_maps=baselines)
            rand_rows.append({"layer": layer, **rho, "seconds": t_rand.wall})
    print("\n[speed] digits, one layer per row (target: fit+explain <= 180 s on 2 cores)")
    print(_table(speed, list(speed[0])))
    print("\n[deletion / insertion] digits test images; AUC of accuracy (deletion: lower is "
          "better; insertion: higher is better), *_prob: AUC of the clean-prediction probability")
    print(_table(auc_rows, ["layer", "method", "deletion_auc", "insertion_auc",
                            "deletion_auc_prob", "insertion_auc_prob"]))
    for layer in args.layers:
        rows = {r["method"]: r for r in auc_rows if r["layer"] == layer}
        d, g = rows["decision"]["deletion_auc"], rows["LayerGradCam"]["deletion_auc"]
        print(f"  {layer}: decision deletion AUC {d:.3f} vs LayerGradCam {g:.3f} "
              f"({'no worse' if d <= g else 'WORSE'}; ratio {d / g:.2f})")
    if rand_rows:
        print("\n[model randomisation] mean Spearman rho, trained vs re-initialised model "
              "(near 0 = the map depends on the model)")
        print(_table(rand_rows, list(rand_rows[0])))


def synthetic_part(args) -> None:
    import distmi
    from distmi.analyses.decompose import evaluation as E
    from distmi.analyses.decompose import synthetic as S

    with Timer() as t_model:
        model, acc = S.train_patch_cnn(n_train=2000, epochs=8, seed=0)
    train, test = S.patch_data(2000, 0, "train"), S.patch_data(400, 0, "test")
    cls, dis = S.class_region((8, 8)), S.distractor_region((8, 8))
    print(f"\n[synthetic patch] PatchCNN accuracy {acc['test_accuracy']:.3f} (class), "
          f"{acc['test_distractor_accuracy']:.3f} (distractor head), trained in "
          f"{t_model.wall:.1f} s; share of positive map mass per region (act2, 8 x 8)")
    rows = []
    for fill in args.fills:
        with Timer() as t:
            dec = distmi.decompose.fit(model, (train.x, train.y), layer="act2", local="conv",
                                       epochs=15, fill=fill, threads=args.threads,
                                       random_state=0)
            e = dec.explain((test.x, test.y))
        rows.append({"map": f"decision (fill={fill})",
                     "class patch": float(np.nanmean(e.region_mass(cls, "decision"))),
                     "distractor": float(np.nanmean(e.region_mass(dis, "decision"))),
                     "acc X'": float((e.masked_predictions == e.labels).mean()),
                     "seconds": t.wall})
        rows.append({"map": f"total (fill={fill})",
                     "class patch": float(np.nanmean(e.region_mass(cls, "total"))),
                     "distractor": float(np.nanmean(e.region_mass(dis, "total")))})
        if args.figures and fill == args.fills[0]:
            from distmi.analyses.decompose import figures as F

            names = ("total", "decision", "redundant")
            F.save_png(F.decomposition_figure(
                test.x[0, 0], {k: e.map(k)[0] for k in names},
                f"synthetic patch: class {test.y[0]} top-left, distractor "
                f"{test.distractor[0]} bottom-right (fill={fill})"),
                Path(args.figures) / "synthetic_sample.png", dpi=72)
            F.save_png(F.decomposition_figure(
                test.x[:, 0].mean(0), {k: np.nanmean(e.map(k), axis=0) for k in names},
                "synthetic patch: mean maps over 400 test images"),
                Path(args.figures) / "synthetic_mean.png", dpi=72)
    x = torch.from_numpy(test.x)
    target = torch.from_numpy(test.y)
    for name, sal in (("LayerGradCam", E.gradcam_maps(model, "act2", x, target)),
                      ("IntegratedGradients", E.integrated_gradients_maps(model, x, target))):
        pooled = torch.nn.functional.avg_pool2d(torch.from_numpy(sal)[:, None], 2)[:, 0].numpy()
        pos = np.clip(pooled, 0, None)
        tot = pos.reshape(len(pos), -1).sum(1)
        rows.append({"map": name, "class patch": float(np.nanmean(pos[:, cls].sum(1) / tot)),
                     "distractor": float(np.nanmean(pos[:, dis].sum(1) / tot))})
    print(_table(rows, ["map", "class patch", "distractor", "acc X'", "seconds"]))


def text_part(args) -> None:
    import distmi
    from distmi.analyses.decompose import evaluation as E
    from distmi.analyses.decompose.bundled import minilm_bundle

    with Timer() as t_b:
        b = minilm_bundle(0, n_texts=args.n_texts, n_explain=128)
    print(f"\n[text] all-MiniLM-L6-v2 + topic head: accuracy {b.info['test_accuracy']:.3f}, "
          f"loaded and head trained in {t_b.wall:.1f} s; fit on {args.n_texts} texts")
    rows = []
    for layer in args.text_layers:
        full = f"transformer.{layer}"
        with Timer() as t:
            dec = distmi.decompose.fit(b.model, b.fit_data, layer=full, local="tokens",
                                       representation="pool", epochs=args.text_epochs,
                                       batch_size=32, threads=args.threads, random_state=0)
            e = dec.explain((b.explain_inputs, b.explain_labels))
        torch.set_num_threads(args.threads)
        maps = E.saliency_maps(b.model, full, b.explain_inputs, e, embeddings=b.embeddings,
                               pad_id=b.pad_id)
        table, _ = E.compare_methods(b.model, b.explain_inputs, b.explain_labels, maps,
                                     local="tokens", protected=b.protected)
        for row in table.to_dict(orient="records"):
            rows.append({"layer": layer, "fit+explain s": t.wall, **row})
        if args.figures:
            from distmi.analyses.decompose import figures as F

            for i in (0, 1):
                toks = b.tokens[i]
                maps = {k: e.map(k)[i][:len(toks)] for k in ("total", "decision", "redundant",
                                                              "mask")}
                F.save_png(F.token_figure(toks, maps, f"{layer}: topic "
                                          f"{b.class_names[b.explain_labels[i]]}"),
                           Path(args.figures) / f"minilm_{layer}_text{i}.png", dpi=80)
    print(_table(rows, ["layer", "fit+explain s", "method", "deletion_auc", "insertion_auc",
                        "deletion_auc_prob", "insertion_auc_prob"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", nargs="+", default=["act1", "act2"])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--fill", default="noise", help="fill of the digits fits")
    parser.add_argument("--fills", nargs="+", default=["noise", "mean", "zero"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-randomisation", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--skip-digits", action="store_true")
    parser.add_argument("--text", action="store_true")
    parser.add_argument("--text-layers", nargs="+", default=["embeddings", "encoder.layer.0"])
    parser.add_argument("--text-epochs", type=int, default=10)
    parser.add_argument("--n-texts", type=int, default=512)
    parser.add_argument("--figures", default=None, help="folder for PNG figures")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}, "
          f"{os.cpu_count()} CPUs, cuda {torch.cuda.is_available()}")
    if not args.skip_digits:
        digits_part(args)
    if not args.skip_synthetic:
        synthetic_part(args)
    if args.text:
        text_part(args)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
