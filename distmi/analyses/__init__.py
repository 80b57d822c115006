"""Analyses built on the engine: neuron-level information flow (``nif``), information planes
over training (``infoplane``) and total/decision/redundant information maps (``decompose``).

They sit above the engine and the estimators: they plan work, call batched estimators or run
jobs, and reduce tables; nothing below imports from here. Each analysis is its own subpackage.
"""
