"""Total, decision-related and redundant information maps (Gu, "Explaining Representation by
Mutual Information"), available as ``distmi.decompose``.

    dec = distmi.decompose.fit(model, (x, y), layer="act2", local="conv", bound="jsd",
                               c=0.5, epochs=30, random_state=0)
    maps = dec.explain(x_test)          # maps.total / .decision / .redundant: (n, H, W)
    dec.save("out/dec"); dec = distmi.decompose.load("out/dec")

Token maps of transformers use ``local="tokens"`` (maps (n, T)). Quantitative checks
(deletion/insertion curves against captum's LayerGradCam and IntegratedGradients, model
randomisation, the synthetic-patch task) live in :mod:`.evaluation` and :mod:`.synthetic`;
figures in :mod:`.figures`; many layers as one job in :mod:`.job`. See ``docs/decompose.md``.
"""

from __future__ import annotations

from distmi.analyses.decompose.config import DecomposeConfig
from distmi.analyses.decompose.decomposition import Decomposition, fit
from distmi.analyses.decompose.explain import MAP_NAMES, Explanation
from distmi.analyses.decompose.io import load

__all__ = ["MAP_NAMES", "DecomposeConfig", "Decomposition", "Explanation", "fit", "load"]
