"""The audit example: all-MiniLM-L6-v2 as a production model whose layers are audited.

Every audit needs "today's activations": the model run on a fresh sample of the inputs it
serves. Here the inputs are the generated concept texts (:func:`distmi.examples.texts.concept_texts`):
each ``seed`` draws a new sample of the same distribution, so two captures with different seeds
are what a nightly re-capture of an unchanged model looks like. A *changed* model has the
weights of one encoder layer perturbed (:func:`perturb_layer`), like a layer retrained or
corrupted in a deployment; an audit should flag that layer, rank it first, and leave the layers
before it alone.

    python -m distmi.examples.audit_minilm capture out/minilm-audit/baseline-data --seed 0
    python -m distmi.examples.audit_minilm capture out/minilm-audit/today --seed 1
    python -m distmi.examples.audit_minilm capture out/minilm-audit/changed --seed 2 \\
        --change-layer encoder.layer.5

(``jobs/audits/minilm_audit.yaml`` is the job these datasets are audited with; docs/audit.md
walks through it.)
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from distmi.core.seeds import derive_seed
from distmi.examples.texts import MINILM_LAYERS, concept_texts, load_minilm, tokenize

MODEL_ID = "all-MiniLM-L6-v2"
#: weights of an encoder layer that :func:`perturb_layer` changes (its attention and MLP)
PERTURBED = ("attention.self.query", "attention.self.key", "attention.self.value",
             "attention.output.dense", "intermediate.dense", "output.dense")


def perturb_layer(model: Any, layer: str, scale: float = 1.0, seed: int = 0) -> list[str]:
    """Add Gaussian noise of ``scale`` x each weight matrix's own standard deviation to the
    attention and feed-forward weights of ``layer`` (e.g. ``"encoder.layer.5"``), in place.

    Returns:
        the names of the changed parameters.
    """
    import torch

    modules = dict(model.named_modules())
    if layer not in modules:
        raise KeyError(f"{layer!r} is not a module of the model; layers: {list(MINILM_LAYERS)}")
    gen = torch.Generator().manual_seed(derive_seed(seed, "perturb", layer))
    changed = []
    with torch.no_grad():
        for suffix in PERTURBED:
            weight = modules[f"{layer}.{suffix}"].weight
            noise = torch.randn(weight.shape, generator=gen, dtype=weight.dtype)
            weight.add_(scale * weight.std() * noise)
            changed.append(f"{layer}.{suffix}.weight")
    return changed


def capture_sample(out_dir: str | Path, *, seed: int, n_texts: int = 256,
                   change_layer: str | None = None, scale: float = 1.0,
                   layers: tuple[str, ...] = MINILM_LAYERS, overwrite: bool = False):
    """Capture the (optionally changed) model's layers, mean-pooled, on sample ``seed``.

    Returns:
        the :class:`~distmi.store.reader.ActivationDataset`.
    """
    from distmi.store.capture import capture

    model, tokenizer = load_minilm()
    info = {"sample_seed": seed}
    if change_layer is not None:
        info["perturbed"] = perturb_layer(model, change_layer, scale=scale, seed=seed)
        info["perturbation_scale"] = scale
    texts, concepts = concept_texts(n_texts, seed)
    return capture(model, tokenize(tokenizer, texts), list(layers), out_dir, pooling="mean",
                   targets=concepts, batch_size=32, model_id=MODEL_ID, model_info=info,
                   overwrite=overwrite)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m distmi.examples.audit_minilm")
    sub = parser.add_subparsers(dest="command", required=True)
    cap = sub.add_parser("capture", help="capture a sample of concept texts")
    cap.add_argument("out")
    cap.add_argument("--seed", type=int, required=True, help="sample seed (a new sample per seed)")
    cap.add_argument("--n-texts", type=int, default=256)
    cap.add_argument("--change-layer", default=None, help="perturb this encoder layer's weights")
    cap.add_argument("--scale", type=float, default=1.0, help="noise sd / weight sd")
    cap.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    ds = capture_sample(args.out, seed=args.seed, n_texts=args.n_texts,
                        change_layer=args.change_layer, scale=args.scale, overwrite=args.overwrite)
    print(f"captured {ds.n_samples} texts into {ds.path} (manifest sha256 {ds.manifest_hash[:12]})")


if __name__ == "__main__":
    main()
