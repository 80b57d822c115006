"""The NIF graph of a model: which layers are node columns, and how they are wired.

Nodes are the input features, the post-activation outputs of hidden layers (a Linear or Conv
followed by an activation), and the outputs: the class indicators 1[y = c] (default) or the
logits. A Conv layer's nodes are its channels, each summarised by its spatial mean.

``layers=None`` walks the leaf modules of the model in registration order (``named_modules``),
which for ``nn.Sequential`` and MLPs written like it is the order of the forward pass, and
takes every weight module (Linear, Conv) that is followed by an activation as a hidden layer
(the activation module's output is captured); the last weight module is the logits.
Explicit names (``layers=["act1", "act2"]``) work for any model: their outputs are captured
in the given order. For pruning, each hidden layer records its *producer* (the last weight
module before it) and its *consumer* (the first weight module after it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from distmi.core.errors import InvalidInputError, InvalidParameterError, UnknownLayerError

INPUT = "input"
LOGITS = "logits"
CLASSES = "classes"
OUTPUTS = ("classes", "logits")
_WEIGHT_TYPES = ("Linear", "Conv1d", "Conv2d", "Conv3d")
# module class names treated as activations (torch.nn.modules.activation, minus the
# normalising ones that mix units)
_ACTIVATIONS = ("ReLU", "ReLU6", "LeakyReLU", "PReLU", "RReLU", "ELU", "SELU", "CELU", "GELU",
                "SiLU", "Mish", "Sigmoid", "Tanh", "Softplus", "Softsign", "Hardtanh",
                "Hardswish", "Hardsigmoid", "Tanhshrink", "LogSigmoid", "Threshold")


@dataclass(frozen=True)
class NodeLayer:
    """One column of the NIF graph.

    Attributes:
        name: layer name in tables and the activation store (``"input"``, a module path,
            ``"logits"`` or ``"classes"``).
        kind: ``"input"``, ``"hidden"``, ``"logits"`` or ``"classes"``.
        n_units: number of nodes.
        unit_names: one name per node.
        module: ``named_modules()`` path whose output is captured (hidden layers).
        producer: weight module computing the layer's pre-activation (hidden, logits).
        consumer: weight module that reads the layer (input, hidden).
        conv: nodes are Conv channels (spatial means).
    """

    name: str
    kind: str
    n_units: int
    unit_names: tuple[str, ...] = ()
    module: str | None = None
    producer: str | None = None
    consumer: str | None = None
    conv: bool = False


@dataclass(frozen=True)
class FlowGraph:
    """The node columns in order: input, hidden..., output."""

    layers: tuple[NodeLayer, ...]
    outputs: str = "classes"
    model_class: str = ""
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    @property
    def hidden(self) -> list[NodeLayer]:
        return [layer for layer in self.layers if layer.kind == "hidden"]

    def layer(self, name: str) -> NodeLayer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise UnknownLayerError(f"the NIF graph has no layer {name!r}; layers are {self.names}.")

    def to_dict(self) -> dict[str, Any]:
        return {"outputs": self.outputs, "model_class": self.model_class,
                "layers": [{**layer.__dict__, "unit_names": list(layer.unit_names)}
                           for layer in self.layers]}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> FlowGraph:
        layers = tuple(NodeLayer(**{**d, "unit_names": tuple(d["unit_names"])})
                       for d in doc["layers"])
        return cls(layers, doc.get("outputs", "classes"), doc.get("model_class", ""))


def _leaf_modules(model: Any) -> list[tuple[str, Any]]:
    return [(name, m) for name, m in model.named_modules()
            if name and not any(True for _ in m.children())]


def _kind(module: Any) -> str:
    name = type(module).__name__
    if name in _WEIGHT_TYPES:
        return "weight"
    if name in _ACTIVATIONS:
        return "activation"
    return "other"


def _check_model(model: Any) -> None:
    if not hasattr(model, "named_modules") or not callable(model):
        raise InvalidInputError(
            f"model must be a torch.nn.Module classifier, got {type(model).__name__}."
        )


def discover_hidden(model: Any) -> list[str]:
    """Module paths of the hidden activations of a Sequential-like model (see module doc)."""
    _check_model(model)
    leaves = _leaf_modules(model)
    hidden: list[str] = []
    last_weight = None
    for name, module in leaves:
        kind = _kind(module)
        if kind == "weight":
            last_weight = name
        elif kind == "activation" and last_weight is not None:
            hidden.append(name)
            last_weight = None
    if not hidden:
        found = [f"{n} ({type(m).__name__})" for n, m in leaves][:12]
        raise InvalidInputError(
            "found no Linear/Conv layer followed by an activation in the model's modules "
            f"{found}; pass layers=[...] with the module paths whose outputs are the hidden "
            "neurons (see distmi.store.list_layers(model))."
        )
    return hidden


def build_graph(model: Any, layers: Sequence[str] | None, outputs: str) -> FlowGraph:
    """Resolve the node layers of ``model`` (unit counts are filled in by the capture).

    Raises:
        UnknownLayerError: a name in ``layers`` is not a module of the model.
        InvalidParameterError: ``outputs`` is not ``"classes"`` or ``"logits"``.
    """
    _check_model(model)
    if outputs not in OUTPUTS:
        raise InvalidParameterError(
            f"outputs must be one of {list(OUTPUTS)}, got {outputs!r}: 'classes' links the last "
            "hidden layer to the class indicators, 'logits' to the model's output units."
        )
    modules = dict(model.named_modules())
    if layers is None:
        names = discover_hidden(model)
    else:
        if isinstance(layers, str) or not isinstance(layers, Sequence) or not layers:
            raise InvalidParameterError(
                f"layers must be None or a non-empty list of module paths, got {layers!r}."
            )
        names = [str(n) for n in layers]
        reserved = {INPUT, LOGITS, CLASSES} & set(names)
        if reserved:
            raise InvalidParameterError(
                f"module name(s) {sorted(reserved)} clash with NIF's reserved layer names "
                f"{[INPUT, LOGITS, CLASSES]}; pass the activation modules that follow them instead."
            )
        missing = [n for n in names if n not in modules or n == ""]
        if missing:
            import difflib

            available = [n for n in modules if n]
            close = difflib.get_close_matches(missing[0], available, n=3)
            hint = f" Did you mean {close}?" if close else ""
            raise UnknownLayerError(
                f"the model ({type(model).__name__}) has no module(s) {missing}; its modules are "
                f"{available[:30]}{' ...' if len(available) > 30 else ''}.{hint} Pass layers=None "
                "to find the Linear/Conv + activation layers automatically."
            )
        if len(set(names)) != len(names):
            raise InvalidParameterError(f"layers lists a module twice: {names}.")
    order = [n for n, _ in _leaf_modules(model)]
    weights = [n for n, m in _leaf_modules(model) if _kind(m) == "weight"]

    def position(name: str) -> int:
        if name in order:
            return order.index(name)
        # a container: its last leaf
        inside = [i for i, n in enumerate(order) if n.startswith(name + ".")]
        return inside[-1] if inside else -1

    def producer(name: str) -> str | None:
        pos = position(name)
        before = [w for w in weights if order.index(w) <= pos]
        return before[-1] if before else None

    def consumer(name: str) -> str | None:
        pos = position(name)
        after = [w for w in weights if order.index(w) > pos]
        return after[0] if after else None

    nodes = [NodeLayer(INPUT, "input", 0, consumer=weights[0] if weights else None)]
    for n in names:
        prod = producer(n)
        conv = prod is not None and type(modules[prod]).__name__.startswith("Conv")
        nodes.append(NodeLayer(n, "hidden", 0, module=n, producer=prod, consumer=consumer(n),
                               conv=conv))
    last = weights[-1] if weights else None
    if outputs == "logits":
        nodes.append(NodeLayer(LOGITS, "logits", 0, producer=last))
    else:
        nodes.append(NodeLayer(CLASSES, "classes", 0))
    return FlowGraph(tuple(nodes), outputs, type(model).__name__)


def with_sizes(graph: FlowGraph, sizes: dict[str, int], names: dict[str, Sequence[str]]
               ) -> FlowGraph:
    """The graph with unit counts and unit names filled in."""
    layers = tuple(replace(layer, n_units=int(sizes[layer.name]),
                           unit_names=tuple(str(u) for u in names[layer.name]))
                   for layer in graph.layers)
    return replace(graph, layers=layers)
