"""The text of `Network.summary()`: every layer with its output shape and
parameter count.  Shapes come from the built layers or, before the network
is built, from whatever the layers state themselves (the article's
`FCLayer(784, 100)` its sizes, `ConvLayer` its input shape)."""
from __future__ import annotations

import re
from typing import Optional, Tuple

import numpy as np

from ._lowering import lower

# a shape whose leading axes are unknown: only its last axes are known
TAIL = "tail"
FULL = "full"
# leading axes tried to learn whether a layer needs them (see _tail_step)
PROBES = ((1,), (2, 3))


def summary_text(net) -> str:
    rows = [("#", "Layer (type)", "Output Shape", "Param #")]
    total, complete = 0, True
    for i, (layer, (shape, count)) in enumerate(zip(net.layers, _known_shapes(net))):
        rows.append((str(i), repr(layer), shape, "?" if count is None else f"{count:,}"))
        total += count or 0
        complete = complete and count is not None
    widths = [max(len(r[c]) for r in rows) for c in range(4)]

    def line(row):
        return "  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip()

    rule = "-" * len(line(rows[0]))
    input_text = _input_text(net)
    totals = f"Total params: {total:,}" if complete else (
        f"Total params: {total:,} known; the others depend on the input shape "
        f"(pass input_shape= or call build)")
    return "\n".join([f"Network ({net.dtype}, input {input_text})", rule, line(rows[0]), rule]
                     + [line(r) for r in rows[1:]] + [rule, totals])


def plan_text(net) -> str:
    """The ops that run the network, for inference and for training: the
    layers each one computes and how (see _lowering)."""
    if not net.built:
        return "Plan: made when the network is built (fit, predict or build(input_shape))"
    names = [layer_name(i, layer) for i, layer in enumerate(net.layers)]
    lines = []
    for training in (False, True):
        steps = lower(net.layers, training)
        lines.append("Plan for " + ("training:" if training else "inference:"))
        if steps is None:
            lines.append("  the layers run one by one in Python (a layer is a Python layer)")
            continue
        covered = [" + ".join(names[i] for i in step.layers) for step in steps]
        width = max(len(text) for text in covered)
        lines += [f"  {text.ljust(width)} -> {step.algorithm}"
                  for text, step in zip(covered, steps)]
    return "\n".join(lines)


def layer_name(index: int, layer) -> str:
    """The layer's name, or its class in snake case and its index."""
    if layer.name:
        return str(layer.name)
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z][a-z])", "_", type(layer).__name__).lower() + f"_{index}"


def _input_text(net) -> str:
    if net.input_shape is not None:
        return str((None,) + tuple(net.input_shape))
    stated = _stated_input(net.layers[0]) if net.layers else None
    if stated is None:
        return "unknown until the first fit or predict"
    return _shape_text(stated)


def _shape_text(known) -> str:
    kind, shape = known
    if kind == FULL:
        return str((None,) + shape)
    return "(None, ..., " + ", ".join(map(str, shape)) + ")"


def _known_shapes(net):
    """(output shape text, parameter count or None) for every layer."""
    known: Optional[Tuple[str, tuple]] = None
    if net.input_shape is not None:
        known = (FULL, tuple(net.input_shape))
    for layer in net.layers:
        if layer.built:
            known = (FULL, tuple(layer._built_output_shape()))
            yield str((None,) + known[1]), layer.count_params()
            continue
        if known is None:
            known = _stated_input(layer)
        if known is None:
            yield "?", None
            continue
        known, count = (_full_step if known[0] == FULL else _tail_step)(layer, known[1])
        yield ("?" if known is None else _shape_text(known)), count


def _stated_input(layer):
    """The input a layer states it takes: a whole sample shape, or only its
    last axis (a layer with a fixed input size)."""
    shape = getattr(layer, "expected_input", None)
    if shape is not None:
        return FULL, tuple(shape)
    size = getattr(layer, "input_size", None)
    if isinstance(size, int):
        return TAIL, (size,)
    return None


def _param_count(shapes) -> Optional[int]:
    if shapes is None:
        return None
    return int(sum(int(np.prod(s, dtype=np.int64)) for s in shapes))


def _full_step(layer, shape):
    try:
        out = tuple(layer.compute_output_shape(shape))
    except Exception:       # any layer may refuse: then nothing more is known
        return None, None
    try:
        count = _param_count(layer.weight_shapes(shape))
    except Exception:
        count = None
    return (FULL, out), count


def _tail_step(layer, tail):
    """Run a layer on inputs whose leading axes are unknown: try it with
    different leading axes; if the output keeps them and ends the same way,
    its last axes (and parameter count) do not depend on them."""
    outs, counts = [], []
    for lead in PROBES:
        try:
            out = tuple(layer.compute_output_shape(lead + tail))
            counts.append(_param_count(layer.weight_shapes(lead + tail)))
        except Exception:
            return None, None
        if out[:len(lead)] != lead:
            return None, None
        outs.append(out[len(lead):])
    count = counts[0] if counts[0] == counts[1] else None
    if outs[0] != outs[1]:
        return None, count
    return (TAIL, outs[0]), count
