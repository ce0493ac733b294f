"""Structured channel pruning: remove whole filters/units and rebuild a smaller dense Keras model.

The graph is walked once to find *channel groups*: a group is a set of channels that must stay aligned.
A Conv/Dense/SeparableConv starts a group (its output channels); BatchNormalization, DepthwiseConv
(multiplier 1), PReLU, activations, pooling, padding, dropout and a Reshape that keeps the last axis
((C,) <-> (1, 1, C)) pass their input's channels through; Add / Multiply / ... tie the groups of their
inputs together (a residual stage is one group); Concatenate lays groups side by side; Flatten (or a
Reshape to one axis) repeats them per spatial position (the next Dense is sliced to match). Sequential
models are walked through their functional graph and rebuilt as Sequential models.
A group is pruned only when every layer touching it is understood; a group that reaches a model input
or output, or a layer edgeml does not know, is kept whole and listed as skipped.

Channel importance is the L1 or L2 norm of each producer's filter (normalised per layer and summed over
the group's producers) or the |gamma| of the batch norms in the group. The model is rebuilt with
``keras.models.clone_model`` (smaller ``filters``/``units``) and every weight is sliced to match.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeml.errors import EdgeMLError

PASS_THROUGH = {
    "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
    "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization", "Identity",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D", "GlobalMaxPooling1D",
    "GlobalMaxPooling2D", "GlobalMaxPooling3D", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D",
    "Cropping2D", "Cropping3D", "UpSampling1D", "UpSampling2D", "UpSampling3D",
}
ELEMENTWISE = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"}
CONV = {"Conv1D", "Conv2D", "Conv3D"}
DEPTHWISE = {"DepthwiseConv1D", "DepthwiseConv2D"}
SEPARABLE = {"SeparableConv1D", "SeparableConv2D"}


@dataclass
class Group:
    size: int
    producers: list[Any] = field(default_factory=list)  # layers whose output channels this group is
    norms: list[tuple[Any, int]] = field(default_factory=list)  # (BatchNormalization, offset of this group in it)
    blocked: list[str] = field(default_factory=list)  # why it cannot be pruned


@dataclass
class Chan:
    """Channel layout of a tensor's last axis: groups side by side, repeated ``flat`` times after Flatten."""
    segs: list[tuple[int, int]]  # (group id, channels)
    flat: int = 1

    @property
    def width(self) -> int:
        return sum(n for _, n in self.segs) * self.flat


class Graph:
    def __init__(self, model: Any):
        self.groups: list[Group] = []
        self.parent: list[int] = []
        self.chan: dict[int, Chan] = {}  # id(KerasTensor) -> layout
        self.uses: list[tuple[Any, str, list[Chan]]] = []  # (layer, role, input layouts)
        self.unknown: dict[str, str] = {}  # layer name -> class (kept whole)
        self.reshapes: list[tuple[Any, Chan]] = []  # (Reshape, layout of its output's last axis)
        self._walk(model)

    # union-find over group ids
    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra
            ga, gb = self.groups[ra], self.groups[rb]
            ga.producers += gb.producers
            ga.norms += gb.norms
            ga.blocked += gb.blocked

    def new(self, size: int, producer: Any = None, blocked: str | None = None) -> Chan:
        self.groups.append(Group(size, [producer] if producer is not None else [],
                                 blocked=[blocked] if blocked else []))
        self.parent.append(len(self.groups) - 1)
        return Chan([(len(self.groups) - 1, size)])

    def block(self, chan: Chan, reason: str) -> None:
        for g, _ in chan.segs:
            self.groups[self.find(g)].blocked.append(reason)

    def group(self, g: int) -> Group:
        return self.groups[self.find(g)]

    def _walk(self, model: Any) -> None:
        # Only the nodes of this model's graph count: a layer also keeps the nodes of earlier calls (Keras 3
        # Sequential models call every layer again each time a layer is added, when building the model).
        in_graph = {id(n) for nodes in model._nodes_by_depth.values() for n in nodes}
        for layer in model.operations:
            nodes = [n for n in layer._inbound_nodes if id(n) in in_graph]
            cls = type(layer).__name__
            if cls == "InputLayer":
                for t in layer.output if isinstance(layer.output, list) else [layer.output]:
                    self.chan[id(t)] = self.new(int(t.shape[-1]), blocked="model input")
                continue
            if len(nodes) != 1:
                for n in nodes:
                    self._opaque(layer, n, "shared layer (called more than once)")
                continue
            self._visit(layer, cls, nodes[0])
        for t in model.outputs:
            self.block(self.chan[id(t)], "model output")

    def _opaque(self, layer: Any, node: Any, reason: str) -> None:
        self.unknown[layer.name] = reason
        for t in node.input_tensors:
            self.block(self.chan[id(t)], f"{layer.name}: {reason}")
        for t in node.outputs:
            self.chan[id(t)] = self.new(int(t.shape[-1]) if t.shape else 1, blocked=f"{layer.name}: {reason}")

    def _visit(self, layer: Any, cls: str, node: Any) -> None:
        ins = [self.chan[id(t)] for t in node.input_tensors]
        outs = node.outputs
        last = len(node.input_tensors[0].shape) - 1 if node.input_tensors else -1
        channels_last = getattr(layer, "data_format", "channels_last") == "channels_last"
        if len(outs) != 1 or not channels_last:
            return self._opaque(layer, node, "channels-first or multi-output layer")
        out = outs[0]
        x = ins[0] if ins else None
        if x is not None and x.flat > 1 and cls != "Dense":
            return self._opaque(layer, node, f"{cls} after Flatten")
        if x is None:  # no layer but an InputLayer (handled in _walk) comes without inputs
            return self._opaque(layer, node, f"{cls} without inputs")
        if cls in CONV or cls == "Dense" or cls in SEPARABLE:
            if cls in CONV and getattr(layer, "groups", 1) != 1:
                return self._opaque(layer, node, "grouped convolution")
            if cls in SEPARABLE and layer.depth_multiplier != 1:
                self.block(x, f"{layer.name}: depth_multiplier {layer.depth_multiplier}")
            self.uses.append((layer, "consume", [x]))
            self.chan[id(out)] = self.new(int(out.shape[-1]), producer=layer)
        elif cls in DEPTHWISE:
            if layer.depth_multiplier != 1:
                return self._opaque(layer, node, f"depth_multiplier {layer.depth_multiplier}")
            self.uses.append((layer, "through", [x]))
            self.chan[id(out)] = x
        elif cls == "BatchNormalization":
            axis = layer.axis if isinstance(layer.axis, int) else (layer.axis[0] if len(layer.axis) == 1 else None)
            if axis not in (-1, last):
                return self._opaque(layer, node, f"batch norm over axis {layer.axis}")
            self.uses.append((layer, "through", [x]))
            off = 0
            for g, n in x.segs:
                self.group(g).norms.append((layer, off))
                off += n
            self.chan[id(out)] = x
        elif cls in PASS_THROUGH:
            self.chan[id(out)] = x
        elif cls == "PReLU":
            alpha = tuple(layer.alpha.shape)
            if alpha[-1] == 1:  # slope shared over the channel axis
                self.chan[id(out)] = x
            else:
                self.uses.append((layer, "through", [x]))
                self.chan[id(out)] = x
        elif cls == "Flatten":
            self.chan[id(out)] = Chan(x.segs, flat=math.prod(int(d) for d in node.input_tensors[0].shape[1:-1]))
        elif cls == "Reshape":
            in_shape, out_shape = tuple(node.input_tensors[0].shape), tuple(out.shape)
            if out_shape[-1] == in_shape[-1]:  # row-major: the last axis keeps its channels, e.g. (C,) <-> (1, 1, C)
                self.chan[id(out)] = x
                self.reshapes.append((layer, x))  # its target shape's last entry follows the kept channels
            elif len(out_shape) == 2 and None not in in_shape[1:]:  # a Flatten
                self.chan[id(out)] = Chan(x.segs, flat=math.prod(int(d) for d in in_shape[1:-1]))
                self.reshapes.append((layer, self.chan[id(out)]))
            else:
                self._opaque(layer, node, f"Reshape {in_shape[1:]} -> {out_shape[1:]} moves the channel axis")
        elif cls in ELEMENTWISE:
            shapes = [[n for _, n in c.segs] for c in ins]
            if any(s != shapes[0] for s in shapes[1:]):
                return self._opaque(layer, node, "inputs with different channel layouts")
            for c in ins[1:]:
                for (a, _), (b, _) in zip(ins[0].segs, c.segs):
                    self.union(a, b)
            self.chan[id(out)] = ins[0]
        elif cls == "Concatenate":
            axis = layer.axis if layer.axis >= 0 else last + 1 + layer.axis
            if axis != last:
                return self._opaque(layer, node, "concatenation along a spatial axis")
            self.chan[id(out)] = Chan([s for c in ins for s in c.segs])
        else:
            self._opaque(layer, node, f"{cls} is not supported by channel pruning")


def _scores(group: Group, criterion: str) -> tuple[np.ndarray, str]:
    if criterion == "bn" and group.norms:
        return sum(  # type: ignore[return-value]  # a sum of arrays (norms is not empty)
            np.abs(np.asarray(bn.gamma))[off:off + group.size] if bn.scale else np.ones(group.size)
                   for bn, off in group.norms), "bn"
    total = np.zeros(group.size)
    for layer in group.producers:
        w = np.asarray(layer.pointwise_kernel if hasattr(layer, "pointwise_kernel") else layer.kernel)
        w = w.reshape(-1, w.shape[-1])
        norm = np.abs(w).sum(0) if criterion != "l2" else np.sqrt((w ** 2).sum(0))
        total += norm / max(float(norm.mean()), 1e-12)
    return total, ("l2" if criterion == "l2" else "l1")


def plan(model: Any, sparsity: float, *, criterion: str = "l1", scope: str = "layer",
         exclude: str | None = None) -> tuple[Graph, dict[int, np.ndarray], list[dict], list[str]]:
    """Decide which channels each group keeps: (graph, root -> kept indices, skipped list, notes)."""
    g = Graph(model)
    rx = re.compile(exclude) if exclude else None
    roots = sorted({g.find(i) for i in range(len(g.groups))})
    keep: dict[int, np.ndarray] = {}
    skipped: list[dict] = []
    notes: list[str] = []
    candidates: dict[int, np.ndarray] = {}
    for r in roots:
        grp = g.groups[r]
        names = [p.name for p in grp.producers]
        if rx and any(rx.search(n) for n in names):
            grp.blocked.append("excluded by `exclude`")
        if grp.blocked or not grp.producers:
            keep[r] = np.arange(grp.size)
            if grp.producers:
                skipped.append({"layers": names, "channels": grp.size, "reason": "; ".join(dict.fromkeys(grp.blocked))})
            continue
        score, used = _scores(grp, criterion)
        if criterion == "bn" and used != "bn":
            notes.append(f"{', '.join(names)}: no batch norm, ranked by L1 norm instead")
        candidates[r] = score
    if not candidates:
        raise EdgeMLError(
            "no prunable channels: every Conv/Dense output reaches a model output or an unsupported layer",
            hint="channel pruning supports Conv, DepthwiseConv, SeparableConv, Dense, BatchNormalization, "
                 "Add/Concatenate; or use `method=\"magnitude\"`")
    if scope == "global":
        allv = np.concatenate([s / max(s.mean(), 1e-12) for s in candidates.values()])
        thr = np.sort(allv)[min(len(allv) - 1, int(round(sparsity * len(allv))))] if len(allv) else 0
        for r, s in candidates.items():
            s = s / max(s.mean(), 1e-12)
            floor = max(1, math.ceil(0.1 * len(s)))
            n = max(floor, int((s >= thr).sum()))
            keep[r] = np.sort(np.argsort(-s, kind="stable")[:n])
    else:
        for r, s in candidates.items():
            n = max(1, int(round(len(s) * (1 - sparsity))))
            keep[r] = np.sort(np.argsort(-s, kind="stable")[:n])
    return g, keep, skipped, notes


def _indices(g: Graph, keep: dict[int, np.ndarray], chan: Chan) -> np.ndarray:
    parts, off = [], 0
    for gid, n in chan.segs:
        parts.append(keep[g.find(gid)] + off)
        off += n
    idx = np.concatenate(parts)
    if chan.flat > 1:
        idx = np.concatenate([p * off + idx for p in range(chan.flat)])
    return idx


def rebuild(model: Any, g: Graph, keep: dict[int, np.ndarray]) -> Any:
    """A new model (Functional or Sequential, as ``model`` is) with the kept channels only, weights sliced from
    ``model``; ``g`` is the graph of ``model`` (of its functional graph for a Sequential model)."""
    from edgeml._tf import keras as import_keras

    keras = import_keras()
    out_keep = {}  # producer layer name -> kept output channels
    for r, k in keep.items():
        for p in g.groups[r].producers:
            out_keep[p.name] = k
    in_idx = {layer.name: _indices(g, keep, chans[0]) for layer, _, chans in g.uses}

    reshape_width = {layer.name: len(_indices(g, keep, chan)) for layer, chan in g.reshapes}

    sequential = type(model).__name__ == "Sequential"

    def clone(layer):
        cfg = layer.get_config()
        if sequential:  # the clone gets the model's InputLayer; a Keras 2 first layer still names its input shape
            cfg.pop("batch_input_shape", None)
            cfg.pop("input_shape", None)
        if layer.name in out_keep:
            cfg["units" if "units" in cfg else "filters"] = int(len(out_keep[layer.name]))
        if layer.name in reshape_width:
            cfg["target_shape"] = (*tuple(cfg["target_shape"])[:-1], reshape_width[layer.name])
        return layer.__class__.from_config(cfg)

    new = keras.models.clone_model(model, clone_function=clone)
    for old_layer in model.layers:
        if not old_layer.weights:
            continue
        new_layer = new.get_layer(old_layer.name)
        ws = [np.asarray(w) for w in old_layer.get_weights()]
        name, cls = old_layer.name, type(old_layer).__name__
        i = in_idx.get(name)
        o = out_keep.get(name)
        if cls in CONV or cls == "Dense":
            ws[0] = ws[0].take(i, axis=-2) if i is not None else ws[0]
            if o is not None:
                ws[0] = ws[0].take(o, axis=-1)
                ws[1:] = [b.take(o) for b in ws[1:]]
        elif cls in SEPARABLE:
            if i is not None and old_layer.depth_multiplier == 1:
                ws[0] = ws[0].take(i, axis=-2)
                ws[1] = ws[1].take(i, axis=-2)
            if o is not None:
                ws[1] = ws[1].take(o, axis=-1)
                ws[2:] = [b.take(o) for b in ws[2:]]
        elif cls in DEPTHWISE and i is not None:
            ws[0] = ws[0].take(i, axis=-2)
            ws[1:] = [b.take(i) for b in ws[1:]]
        elif cls == "BatchNormalization" and i is not None:
            ws = [w.take(i) for w in ws]
        elif cls == "PReLU" and i is not None:
            ws[0] = ws[0].take(i, axis=-1)
        new_layer.set_weights(ws)
    return new


def functional(model: Any) -> Any:
    """The functional graph of a Functional or Sequential model; subclassed models cannot be rebuilt."""
    kind = type(model).__name__
    if kind == "Sequential":
        if getattr(model, "_functional", None) is None:
            raise EdgeMLError("the Sequential model has no input shape, so it cannot be rebuilt",
                              hint="build it with keras.Input(shape) as its first layer")
        return model._functional
    if hasattr(model, "operations") and hasattr(model, "_inbound_nodes") and type(model).__name__ == "Functional":
        return model
    raise EdgeMLError(f"channel pruning rebuilds Functional and Sequential Keras models; this is a subclassed "
                      f"model ({kind}) whose structure edgeml cannot see",
                      hint="use `method` magnitude (it keeps the architecture), or rebuild the model functionally")
