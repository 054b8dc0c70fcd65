"""ONNX forms of the sequence layers (used by nncore.onnx.export).

Samples are (steps, features); the graph holds them as (batch, steps,
features).  Conv1D and the 1-D pools run as ONNX Conv / MaxPool /
AveragePool on (batch, features, steps); the recurrent layers as ONNX RNN,
LSTM, GRU on (steps, batch, features), with go_backwards as a reversed
input; LayerNormalization as MatMul-based means (any opset); Embedding as
Gather of the table at the indices cast to int64; MultiHeadAttention as
MatMul / Softmax on (batch, heads, steps, key_dim), its causal mask a
constant Add; PositionalEmbedding as an Add of the table's first rows;
Bidirectional as one RNN / LSTM / GRU node with direction="bidirectional".

Masking: ONNX's recurrent nodes take a length per row (sequence_lens), not
a mask.  Embedding(mask_zero=True) exports the count of nonzero indices of
each row as that length, and the masked layers read it (go_backwards as
direction="reverse" on the input as it is, its outputs then put in step
order).  This is the layer's masking exactly when each row's padding comes
after its last token (right padding, as PyTorch's packed sequences); the
graph reads zeros between tokens as tokens.
"""
from __future__ import annotations

from functools import partial
from typing import Dict

import numpy as np

from .layers import (GRU, LSTM, AveragePooling1D, Bidirectional, Conv1D, Embedding,
                     GlobalAveragePooling1D, GlobalMaxPooling1D, LayerNormalization, MaxPool1D,
                     MultiHeadAttention, PositionalEmbedding, SimpleRNN)
from .layers.sequence import window_1d

# Keras' LSTM blocks (i, f, c, o) in ONNX's order (i, o, f, c)
LSTM_TO_ONNX = [0, 3, 1, 2]


def _steps_last(graph, name: str) -> str:
    return graph.node("Transpose", [name], perm=[0, 2, 1])


def _embedding(graph, layer, tensor):
    if layer.mask_zero:
        kinds = graph.onnx.TensorProto
        padding = graph.node("Equal", [tensor.name, graph.constant([0], "zero")])   # (n, T)
        valid = graph.node("Cast", [graph.node("Not", [padding])], to=kinds.INT32)
        graph.sequence_lens = graph.node("ReduceSum", [valid, graph.constant([1], "axes",
                                                                             np.int64)],
                                         keepdims=0)
        graph.padding = graph.node("Unsqueeze", [graph.node("Cast", [padding],
                                                            to=graph.onnx.helper.
                                                            np_dtype_to_tensor_dtype(
                                                                graph.dtype)),
                                                 graph.constant([2], "axes", np.int64)])
    indices = graph.node("Cast", [tensor.name], to=graph.onnx.TensorProto.INT64)
    table = graph.constant(layer.get_weights()[0], "embeddings")
    return tensor._replace(name=graph.node("Gather", [table, indices], axis=0),
                           shape=layer.output_shape)


def _window_pads(layer, size: int, stride: int, dilation: int):
    steps, out = layer.input_shape[0], layer.output_shape[0]
    _, left = window_1d(layer, steps, size, stride, dilation, layer.padding)
    span = (size - 1) * dilation + 1
    return [left, max(0, (out - 1) * stride + span - steps - left)]


def _conv1d(activation, graph, layer, tensor):
    weights = layer.get_weights()
    inputs = [_steps_last(graph, tensor.name),
              graph.constant(weights[0].transpose(2, 1, 0), "kernel")]     # (F, C, k)
    if layer.use_bias:
        inputs.append(graph.constant(weights[1], "bias"))
    out = graph.node("Conv", inputs, kernel_shape=[layer.kernel_size], strides=[layer.strides],
                     dilations=[layer.dilation_rate],
                     pads=_window_pads(layer, layer.kernel_size, layer.strides,
                                       layer.dilation_rate))
    out = tensor._replace(name=_steps_last(graph, out), shape=layer.output_shape)
    return activation(graph, out, layer.activation, layer.activation_alpha)


def _pool1d(op: str, graph, layer, tensor):
    inside_only = {"count_include_pad": 0} if op == "AveragePool" else {}
    pads = _window_pads(layer, layer.pool_size, layer.strides, 1)
    out = graph.node(op, [_steps_last(graph, tensor.name)], kernel_shape=[layer.pool_size],
                     strides=[layer.strides], pads=pads, **inside_only)
    return tensor._replace(name=_steps_last(graph, out), shape=layer.output_shape)


def _global_pool1d(op: str, graph, layer, tensor):
    pooled = graph.node(op, [_steps_last(graph, tensor.name)])          # (n, c, 1)
    return tensor._replace(name=graph.node("Flatten", [pooled], axis=1),
                           shape=layer.output_shape)


def _global_average1d(graph, layer, tensor):
    """GlobalAveragePool, or after a mask the sum over the unmasked steps
    divided by their count (at least 1); exact for any mask."""
    if not (layer.receives_mask and graph.padding is not None):
        return _global_pool1d("GlobalAveragePool", graph, layer, tensor)
    valid = graph.node("Sub", [graph.constant([1], "one"), graph.padding])       # (n, T, 1)
    axes = graph.constant([1], "axes", np.int64)
    total = graph.node("ReduceSum", [graph.node("Mul", [tensor.name, valid]), axes],
                       keepdims=0)                                              # (n, C)
    count = graph.node("ReduceSum", [valid, axes], keepdims=0)                  # (n, 1)
    count = graph.node("Max", [count, graph.constant([1], "one")])
    return tensor._replace(name=graph.node("Div", [total, count]), shape=layer.output_shape)


def _layer_normalization(graph, layer, tensor):
    """(x - mean) / sqrt(var + epsilon) * gamma + beta, means as MatMul by 1/D."""
    gamma, beta = layer.get_weights()
    features = gamma.shape[0]
    average = graph.constant(np.full((features, 1), 1 / features), "average")
    mean = graph.node("MatMul", [tensor.name, average])
    centred = graph.node("Sub", [tensor.name, mean])
    variance = graph.node("MatMul", [graph.node("Mul", [centred, centred]), average])
    spread = graph.node("Sqrt", [graph.node("Add", [variance,
                                                    graph.constant([layer.epsilon],
                                                                   "epsilon")])])
    scaled = graph.node("Mul", [graph.node("Div", [centred, spread]),
                                graph.constant(gamma, "gamma")])
    return tensor._replace(name=graph.node("Add", [scaled, graph.constant(beta, "beta")]))


def _onnx_weights(op: str, weights):
    """ONNX's W, R, B of one direction from Keras' kernel, recurrent, bias."""
    kernel, recurrent, bias = weights
    units = recurrent.shape[0]
    gates = kernel.shape[1] // units
    order = LSTM_TO_ONNX if op == "LSTM" else list(range(gates))
    columns = np.concatenate([np.arange(units) + g * units for g in order])
    if op == "GRU":
        biases = np.concatenate([bias[0], bias[1]])
    else:
        biases = np.concatenate([bias[columns], np.zeros(gates * units)])
    return kernel[:, columns].T, recurrent[:, columns].T, biases


def _reverse_steps(graph, name: str, axis: int) -> str:
    return graph.node("Slice", [name, graph.constant([-1], "start", np.int64),
                                graph.constant([-(1 << 62)], "end", np.int64),
                                graph.constant([axis], "axis", np.int64),
                                graph.constant([-1], "step", np.int64)])


def _recurrent_node(op: str, graph, layer, inputs: str, directions, direction: str):
    """Y (T, dirs, n, U) and Y_h (dirs, n, U) of one ONNX node over inputs
    (T, n, D); `directions`: the (kernel, recurrent, bias) of each."""
    parts = [_onnx_weights(op, weights) for weights in directions]
    masked = getattr(layer, "receives_mask", False) and graph.sequence_lens is not None
    extra = {"linear_before_reset": 1} if op == "GRU" else {}
    sequence, last = graph.unique(op + "_Y"), graph.unique(op + "_Y_h")
    graph.nodes.append(graph.onnx.helper.make_node(
        op, [inputs, graph.constant(np.stack([w for w, _, _ in parts]), "W"),
             graph.constant(np.stack([r for _, r, _ in parts]), "R"),
             graph.constant(np.stack([b for _, _, b in parts]), "B")]
        + ([graph.sequence_lens] if masked else []),
        [sequence, last], name=graph.unique(op), hidden_size=directions[0][1].shape[0],
        direction=direction, **extra))
    return sequence, last, masked


def _recurrent(op: str, graph, layer, tensor):
    weights = layer.get_weights()
    inputs = graph.node("Transpose", [tensor.name], perm=[1, 0, 2])      # (T, n, D)
    masked = getattr(layer, "receives_mask", False) and graph.sequence_lens is not None
    # masked, go_backwards reads the padding first (state zero) and then the
    # valid steps last to first: ONNX's reverse direction over the lengths
    direction = "reverse" if layer.go_backwards and masked else "forward"
    if layer.go_backwards and not masked:
        inputs = _reverse_steps(graph, inputs, 0)
    sequence, last, masked = _recurrent_node(op, graph, layer, inputs, [weights], direction)
    last = graph.node("Squeeze", [last, graph.constant([0], "axes", np.int64)])     # (n, U)
    if layer.return_sequences:      # (T, 1, n, U) -> (n, T, U)
        out = graph.node("Squeeze", [sequence, graph.constant([1], "axes", np.int64)])
        out = graph.node("Transpose", [out], perm=[1, 0, 2])
        if direction == "reverse":      # in step order, as go_backwards returns them
            out = _reverse_steps(graph, out, 1)
        elif masked:        # a padded step outputs the state carried over it: the last
            carried = graph.node("Unsqueeze", [last, graph.constant([1], "axes", np.int64)])
            out = graph.node("Add", [out, graph.node("Mul", [graph.padding, carried])])
    else:
        out = last
    return tensor._replace(name=out, shape=layer.output_shape)


ONNX_OPS = {SimpleRNN: "RNN", LSTM: "LSTM", GRU: "GRU"}


def _bidirectional(graph, layer, tensor):
    op = ONNX_OPS[type(layer.forward_layer)]
    weights = layer.get_weights()
    inputs = graph.node("Transpose", [tensor.name], perm=[1, 0, 2])      # (T, n, D)
    sequence, last, _ = _recurrent_node(op, graph, layer, inputs, [weights[:3], weights[3:]],
                                        "bidirectional")
    units = layer.forward_layer.units
    if layer.return_sequences:      # (T, 2, n, U) -> (n, T, 2, U)
        out = graph.node("Transpose", [sequence], perm=[2, 0, 1, 3])
        axis, shape = 2, (layer.input_shape[0], 2 * units)
    else:                           # (2, n, U) -> (n, 2, U)
        out = graph.node("Transpose", [last], perm=[1, 0, 2])
        axis, shape = 1, (2 * units,)
    if layer.merge_mode == "concat":
        return tensor._replace(name=graph.node("Reshape", [out, graph.shape(shape)]),
                               shape=layer.output_shape)
    a, b = (graph.node("Squeeze", [graph.node("Gather", [out, graph.constant(
        [i], "direction", np.int64)], axis=axis), graph.constant([axis], "axes", np.int64)])
        for i in range(2))
    if layer.merge_mode == "mul":
        merged = graph.node("Mul", [a, b])
    else:
        merged = graph.node("Add", [a, b])
        if layer.merge_mode == "ave":
            merged = graph.node("Mul", [merged, graph.constant([0.5], "half")])
    return tensor._replace(name=merged, shape=layer.output_shape)


def _attention(graph, layer, tensor):
    """Projections as MatMul + Add; per head softmax(Q K^T / sqrt(K) + mask) V."""
    steps, features = layer.input_shape
    heads, size = layer.num_heads, layer.key_dim
    weights = layer.get_weights()
    kernels = (weights[0], weights[2]) if layer.use_bias else tuple(weights)

    def project(name, kernel, bias):
        out = graph.node("MatMul", [name, graph.constant(kernel, "kernel")])
        return graph.node("Add", [out, graph.constant(bias, "bias")]) if layer.use_bias \
            else out

    qkv = project(tensor.name, kernels[0], weights[1] if layer.use_bias else None)
    qkv = graph.node("Reshape", [qkv, graph.shape((steps, 3, heads, size))])
    qkv = graph.node("Transpose", [qkv], perm=[0, 2, 3, 1, 4])     # (n, 3, H, T, K)
    q, k, v = (graph.node("Gather", [qkv, graph.constant([i], "part", np.int64)], axis=1)
               for i in range(3))                                 # (n, 1, H, T, K)
    scores = graph.node("MatMul", [q, graph.node("Transpose", [k], perm=[0, 1, 2, 4, 3])])
    scores = graph.node("Mul", [scores, graph.constant(1 / np.sqrt(size), "scale")])
    if layer.causal:          # a large negative weight: exp() gives exactly 0
        mask = np.triu(np.full((steps, steps), -1e9), 1)
        scores = graph.node("Add", [scores, graph.constant(mask, "causal_mask")])
    heads_out = graph.node("MatMul", [graph.node("Softmax", [scores], axis=-1), v])
    joined = graph.node("Transpose", [heads_out], perm=[0, 1, 3, 2, 4])   # (n, 1, T, H, K)
    joined = graph.node("Reshape", [joined, graph.shape((steps, heads * size))])
    out = project(joined, kernels[1], weights[3] if layer.use_bias else None)
    return tensor._replace(name=out)


def _positional(graph, layer, tensor):
    table = layer.get_weights()[0][:layer.input_shape[0]]
    return tensor._replace(name=graph.node("Add", [tensor.name,
                                                   graph.constant(table, "positions")]))


def converters(activation) -> Dict[type, object]:
    """The converters of the sequence layers; `activation(graph, tensor,
    name, alpha)` adds a fused activation (nncore.onnx's)."""
    return {
        Embedding: _embedding, Conv1D: partial(_conv1d, activation),
        MaxPool1D: partial(_pool1d, "MaxPool"),
        AveragePooling1D: partial(_pool1d, "AveragePool"),
        GlobalMaxPooling1D: partial(_global_pool1d, "GlobalMaxPool"),
        GlobalAveragePooling1D: _global_average1d,
        LayerNormalization: _layer_normalization,
        SimpleRNN: partial(_recurrent, "RNN"), LSTM: partial(_recurrent, "LSTM"),
        GRU: partial(_recurrent, "GRU"), Bidirectional: _bidirectional,
        MultiHeadAttention: _attention, PositionalEmbedding: _positional,
    }
