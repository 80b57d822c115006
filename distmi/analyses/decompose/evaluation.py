"""Quantitative checks of saliency maps: deletion/insertion curves and model randomisation.

**Deletion and insertion** (Petsiuk et al. 2018, "RISE"): rank the input's positions by a map,
then remove the top-ranked ones step by step (deletion: they take the ``fill`` value) or start
from an input with everything removed and put them back (insertion), and follow the model's
accuracy (against the labels) and the mean probability of the class the model predicts on the
clean input. A map that finds what the decision needs makes the deletion curve fall fast (low
area under the curve) and the insertion curve rise fast (high area). Areas are trapezoids over
the removed/inserted fraction in [0, 1].

- images: positions are pixels (all channels together); maps at a layer's resolution are
  bilinearly upsampled to the input first. Ties (e.g. Grad-CAM's zeros) are broken in a seeded
  random order.
- tokens: positions are the content tokens (special tokens and padding are never touched);
  removal sets the token's ``attention_mask`` to 0, so no other token attends to it and mean
  pooling skips it. Each sentence removes the same *fraction* of its content tokens per step.

Baselines: captum's ``LayerGradCam`` on the same layer and ``IntegratedGradients`` on the input
(zero baseline) for images; for tokens, ``LayerIntegratedGradients`` on the word embeddings
(``[PAD]`` baseline) and Grad-CAM computed per token (weights = gradients averaged over tokens;
captum's ``LayerGradCam`` averages gradients over the trailing dimensions, which for (B, T, D)
hidden states would be the hidden features rather than the tokens).

**Model randomisation** (Adebayo et al. 2018, "Sanity checks for saliency maps"): re-initialise
every weight of the model, fit the decomposition again with the same settings (on the random
model's own predictions) and compare the maps of the same inputs by Spearman rank correlation
per sample. A map that explains the trained model must change: correlations near 1 would mean
the map reflects the input or the method, not the model.
"""

from __future__ import annotations

from distmi.analyses.decompose.baselines import (
    gradcam_maps,
    integrated_gradients_maps,
    saliency_maps,
    token_gradcam_maps,
    token_integrated_gradients_maps,
)
from distmi.analyses.decompose.curves import (
    CURVE_KINDS,
    Curve,
    compare_methods,
    image_curve,
    ranking,
    token_curve,
)
from distmi.analyses.decompose.sanity import randomisation_check, randomised_copy, rank_correlation

__all__ = [
    "CURVE_KINDS",
    "Curve",
    "compare_methods",
    "gradcam_maps",
    "image_curve",
    "integrated_gradients_maps",
    "randomisation_check",
    "randomised_copy",
    "rank_correlation",
    "ranking",
    "saliency_maps",
    "token_curve",
    "token_gradcam_maps",
    "token_integrated_gradients_maps",
]
