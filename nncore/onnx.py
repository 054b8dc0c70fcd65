"""Export a built network to ONNX, to run it in onnxruntime or any other ONNX runtime.

    import nncore.onnx
    model = nncore.onnx.export(net, "mnist_cnn.onnx")

The graph has one input, "input", shaped like the network's input (NHWC
images or feature rows) with a dynamic batch dimension named "batch", and
one output, "output", equal to `net.predict`.  It computes in the network's
dtype: a float64 network gives a float64 graph.

ONNX convolution and pooling are channels first (NCHW), so the graph
transposes an image to NCHW before the first of them and back to NHWC before
any layer that reads the last axis as features (Flatten, Dense) and before
the output; element-wise layers, softmax and batch normalization work in
either layout.  Flatten therefore keeps nncore's (h, w, c) order.

Needs the onnx package (`pip install "nncore[onnx]"`), which is imported
only when `export` is called: `import nncore` never loads it.
"""
from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Callable, Dict, List, NamedTuple, Optional, Sequence

import numpy as np

from ._version import __version__
from ._safe_write import write_file
from .onnx_sequence import converters as sequence_converters
from .layers import (Activation, ActivationLayer, AvgPool2D, BatchNormalization, Conv2D,
                     ConvLayer, Dense, Dropout, FCLayer, Flatten, FlattenLayer,
                     GlobalAveragePooling2D, LeakyReLU, MaxPool2D, ReLU, Sigmoid, Softmax,
                     Residual, Tanh)
from .layers.augmentation import (GaussianNoise, RandomCrop, RandomFlip, RandomRotation,
                                  RandomTranslation, RandomZoom)

if TYPE_CHECKING:
    import onnx

__all__ = ["export", "DEFAULT_OPSET", "MIN_OPSET"]

#: The ONNX opset :func:`export` writes when none is given.
DEFAULT_OPSET = 17
#: The oldest opset :func:`export` writes: the first whose Softmax normalizes
#: over one given axis.
MIN_OPSET = 13
INPUT, OUTPUT = "input", "output"

_ELEMENTWISE = {"tanh": "Tanh", "sigmoid": "Sigmoid", "relu": "Relu"}


def export(network, path=None, *, opset: int = DEFAULT_OPSET) -> "onnx.ModelProto":
    """The ONNX model of a built `network`, also written to `path` if given.

    The file is written as `Network.save` writes (see the README's "Saving"):
    complete or not at all, through symlinks, refusing devices, FIFOs and
    directories.  The weights are read as one version: during a fit in
    another thread, export raises RuntimeError as save does.  `opset` is the ai.onnx opset version
    (13 up to the newest the installed onnx knows); the model's IR version is
    the oldest that supports it, so that older runtimes load it too.  Raises
    ValueError, naming the layer, for a layer that has no ONNX form: a Python
    layer, or an ActivationLayer with Python functions.

    Parameters
    ----------
    network : Network
        A built network.
    path : str or path-like, optional
        Where to write the model.
    opset : int, default DEFAULT_OPSET
        The ai.onnx opset version, from `MIN_OPSET` to the newest the
        installed onnx knows.

    Returns
    -------
    onnx.ModelProto
        The model.

    Raises
    ------
    ImportError
        If the onnx package is not installed.
    RuntimeError
        If the network is not built, or a fit in another thread changes it.
    ValueError
        If a layer has no ONNX form (the message names it) or `opset` is
        out of range.

    Examples
    --------
    >>> import nncore, nncore.onnx
    >>> net = nncore.Network([nncore.Dense(3, activation="relu"), nncore.Dense(1)],
    ...                      input_shape=(4,), seed=0)
    >>> model = nncore.onnx.export(net, "net.onnx")
    >>> model.opset_import[0].version, [node.op_type for node in model.graph.node]
    (17, ['Gemm', 'Relu', 'Gemm'])
    """
    onnx = _import_onnx()
    _check_opset(onnx, opset)
    if not getattr(network, "built", False):
        raise RuntimeError("nncore.onnx.export: the network is not built; call fit, "
                           "predict or build(input_shape) first")
    converters = [_converter(index, layer) for index, layer in enumerate(network.layers)]
    graph = _Graph(onnx, network.dtype)
    tensor = _Tensor(INPUT, tuple(network.input_shape), channels_first=False)
    # the weights are read under the guard of save and copy: one weight version,
    # never the arrays of a fit running in another thread
    with network.guard.reading("nncore.onnx.export"):
        for index, (layer, convert) in enumerate(zip(network.layers, converters)):
            graph.prefix = f"layer{index}_{type(layer).__name__}"
            tensor = convert(graph, layer, tensor)
    graph.prefix = "output"
    graph.name_output(_channels_last(graph, tensor).name)
    model = graph.model(tuple(network.input_shape), tuple(network.output_shape), opset,
                        doc=f"nncore {__version__}: " +
                        " -> ".join(type(layer).__name__ for layer in network.layers))
    onnx.checker.check_model(model, full_check=True)
    if path is not None:
        data = model.SerializeToString()
        write_file(path, lambda f: f.write(data), "nncore.onnx.export")
    return model


def _import_onnx():
    try:
        import onnx
    except ImportError as error:
        raise ImportError('nncore.onnx.export needs the onnx package: '
                          'pip install "nncore[onnx]"') from error
    return onnx


def _check_opset(onnx, opset) -> None:
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) \
            or not MIN_OPSET <= opset <= newest:
        raise ValueError(f"nncore.onnx.export: opset must be an integer from {MIN_OPSET} to "
                         f"{newest} (the newest the installed onnx knows), got {opset!r}")


# ------------------------------------------------------------------ the graph
class _Tensor(NamedTuple):
    """A value of the graph: its name, nncore's shape of one sample, and
    whether an (h, w, c) image is held channels first (NCHW) in the graph."""
    name: str
    shape: tuple
    channels_first: bool


class _Graph:
    """Collects nodes and constants; names them after the layer being converted."""

    def __init__(self, onnx, dtype) -> None:
        self.onnx = onnx
        self.dtype = np.dtype(dtype)
        self.nodes: List = []
        self.constants: List = []
        self.prefix = ""
        self._used: set = set()
        # set by Embedding(mask_zero=True): the unmasked steps of each row
        # (int32, (batch,)) and the padding as 1.0 / 0.0 ((batch, steps, 1))
        self.sequence_lens: Optional[str] = None
        self.padding: Optional[str] = None

    def unique(self, hint: str) -> str:
        name, count = f"{self.prefix}/{hint}", 1
        while name in self._used:
            count += 1
            name = f"{self.prefix}/{hint}_{count}"
        self._used.add(name)
        return name

    def constant(self, array, hint: str, dtype=None) -> str:
        """The name of a new initializer holding `array` (in the graph's dtype
        unless `dtype` is given)."""
        name = self.unique(hint)
        array = np.ascontiguousarray(array, dtype=dtype or self.dtype)
        self.constants.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def shape(self, shape: Sequence[int], hint: str = "shape") -> str:
        """A Reshape target: any batch size, then `shape`."""
        return self.constant(np.array((-1,) + tuple(shape), np.int64), hint, np.int64)

    def node(self, op: str, inputs: List[str], **attributes) -> str:
        """Adds an `op` node and returns the name of its output."""
        name = self.unique(op)
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [name], name=name,
                                                     **attributes))
        return name

    def name_output(self, name: str) -> None:
        """Makes the value `name` the graph's output, named OUTPUT."""
        if self.nodes and self.nodes[-1].output[0] == name:
            self.nodes[-1].output[0] = OUTPUT
        else:                  # the input itself, when every layer is an identity
            self.nodes.append(self.onnx.helper.make_node("Identity", [name], [OUTPUT],
                                                         name=self.unique("Identity")))

    def model(self, input_shape: tuple, output_shape: tuple, opset: int, doc: str):
        helper = self.onnx.helper
        element = helper.np_dtype_to_tensor_dtype(self.dtype)
        graph = helper.make_graph(
            self.nodes, "nncore", initializer=self.constants,
            inputs=[helper.make_tensor_value_info(INPUT, element, ["batch", *input_shape])],
            outputs=[helper.make_tensor_value_info(OUTPUT, element, ["batch", *output_shape])])
        opsets = [helper.make_opsetid("", opset)]
        return helper.make_model(graph, opset_imports=opsets, producer_name="nncore",
                                 producer_version=__version__, doc_string=doc,
                                 ir_version=helper.find_min_ir_version_for(opsets))


def _channels_first(graph: _Graph, tensor: _Tensor) -> _Tensor:
    if tensor.channels_first:
        return tensor
    return _Tensor(graph.node("Transpose", [tensor.name], perm=[0, 3, 1, 2]),
                   tensor.shape, channels_first=True)


def _channels_last(graph: _Graph, tensor: _Tensor) -> _Tensor:
    if not tensor.channels_first:
        return tensor
    return _Tensor(graph.node("Transpose", [tensor.name], perm=[0, 2, 3, 1]),
                   tensor.shape, channels_first=False)


# ------------------------------------------------------------- the layers
Converter = Callable[[_Graph, object, _Tensor], _Tensor]


def _converter(index: int, layer) -> Converter:
    """The function that adds `layer` to a graph, or a ValueError naming the
    layer when it has no ONNX form."""
    where = f"layer {index} ({type(layer).__name__})"
    convert = _CONVERTERS.get(type(layer))
    if convert is None:
        raise ValueError(f"nncore.onnx.export: {where} is not one of nncore's built-in "
                         f"layers; a layer written in Python has no ONNX form")
    if isinstance(layer, ActivationLayer) and not layer.is_native:
        function = getattr(layer.function, "__name__", repr(layer.function))
        raise ValueError(f"nncore.onnx.export: {where} computes the Python function "
                         f"{function!r}, which has no ONNX form; use Activation(name) or "
                         f"the nncore.activations functions")
    return convert


def _activation(graph: _Graph, tensor: _Tensor, name, alpha: float) -> _Tensor:
    """`tensor` through the activation called `name` (None: the identity)."""
    kind = "identity" if name in (None, "linear") else name
    if kind == "identity":
        return tensor
    if kind == "softmax":           # over the channels, wherever the layout holds them
        out = graph.node("Softmax", [tensor.name], axis=1 if tensor.channels_first else -1)
    elif kind == "leaky_relu" and graph.dtype == np.float32:
        out = graph.node("LeakyRelu", [tensor.name], alpha=alpha)
    elif kind == "leaky_relu":      # PRelu's slope keeps a float64 alpha, unlike an attribute
        out = graph.node("PRelu", [tensor.name, graph.constant([alpha], "alpha")])
    else:
        out = graph.node(_ELEMENTWISE[kind], [tensor.name])
    return tensor._replace(name=out)


def _activation_layer(graph: _Graph, layer, tensor: _Tensor) -> _Tensor:
    return _activation(graph, tensor, layer.activation, layer.alpha)


def _dense(graph: _Graph, layer, tensor: _Tensor) -> _Tensor:
    """Gemm on rows of features; MatMul + Add on the last axis of N-D samples."""
    tensor = _channels_last(graph, tensor)
    weights = layer.get_weights()
    kernel = graph.constant(weights[0], "kernel")             # (in, units)
    bias = [graph.constant(weights[1], "bias")] if layer.use_bias else []
    if len(tensor.shape) == 1:
        out = graph.node("Gemm", [tensor.name, kernel] + bias)
    else:
        out = graph.node("MatMul", [tensor.name, kernel])
        if bias:
            out = graph.node("Add", [out, bias[0]])
    return _activation(graph, _Tensor(out, layer.output_shape, False), layer.activation,
                       layer.activation_alpha)


def _pads(layer, window) -> List[int]:
    """ONNX pads [top, left, bottom, right] that give the layer's output size:
    'same' puts any odd extra row or column at the bottom/right."""
    begins, ends = [], []
    for axis in (0, 1):
        n, out = layer.input_shape[axis], layer.output_shape[axis]
        k, s = window[axis], layer.strides[axis]
        covered = (out - 1) * s + k              # rows the windows span
        if layer.padding == "same":
            begin = max(covered - n, 0) // 2
        elif layer.padding == "valid":
            begin = 0
        else:
            begin = layer.padding[axis]
        begins.append(begin)
        ends.append(max(covered - n - begin, 0))
    return begins + ends


def _conv(graph: _Graph, layer, tensor: _Tensor) -> _Tensor:
    tensor = _channels_first(graph, tensor)
    weights = layer.get_weights()
    # nncore's (kh, kw, in, filters) kernel -> ONNX's (filters, in, kh, kw)
    inputs = [tensor.name, graph.constant(weights[0].transpose(3, 2, 0, 1), "kernel")]
    if layer.use_bias:
        inputs.append(graph.constant(weights[1], "bias"))
    out = graph.node("Conv", inputs, kernel_shape=list(layer.kernel_size),
                     strides=list(layer.strides), pads=_pads(layer, layer.kernel_size))
    return _activation(graph, _Tensor(out, layer.output_shape, True), layer.activation,
                       layer.activation_alpha)


def _pool(op: str, graph: _Graph, layer, tensor: _Tensor) -> _Tensor:
    tensor = _channels_first(graph, tensor)
    # AveragePool averages the elements inside the image only
    inside_only = {"count_include_pad": 0} if op == "AveragePool" else {}
    out = graph.node(op, [tensor.name], kernel_shape=list(layer.pool_size),
                     strides=list(layer.strides), pads=_pads(layer, layer.pool_size),
                     **inside_only)
    return _Tensor(out, layer.output_shape, True)


def _global_average(graph: _Graph, layer, tensor: _Tensor) -> _Tensor:
    tensor = _channels_first(graph, tensor)
    pooled = graph.node("GlobalAveragePool", [tensor.name])         # (n, c, 1, 1)
    return _Tensor(graph.node("Flatten", [pooled], axis=1), layer.output_shape, False)


def _flatten(graph: _Graph, layer, tensor: _Tensor) -> _Tensor:
    """Flatten and FlattenLayer: (h, w, c) order, so back to channels last first."""
    tensor = _channels_last(graph, tensor)
    out = graph.node("Reshape", [tensor.name, graph.shape(layer.output_shape)])
    return _Tensor(out, layer.output_shape, False)


def _identity(graph: _Graph, layer, tensor: _Tensor) -> _Tensor:
    return tensor


def _centre_crop(graph: _Graph, layer, tensor: _Tensor) -> _Tensor:
    """RandomCrop at inference: the centre (height, width) window, the
    corner at ((H - height) // 2, (W - width) // 2) as the native kernel."""
    (h, w, _), axes = tensor.shape, [2, 3] if tensor.channels_first else [1, 2]
    top, left = (h - layer.height) // 2, (w - layer.width) // 2

    def indices(values, hint):
        return graph.constant(np.array(values, np.int64), hint, np.int64)

    out = graph.node("Slice", [tensor.name, indices([top, left], "crop_starts"),
                               indices([top + layer.height, left + layer.width], "crop_ends"),
                               indices(axes, "crop_axes")])
    return _Tensor(out, layer.output_shape, tensor.channels_first)


def _batch_normalization(graph: _Graph, layer, tensor: _Tensor) -> _Tensor:
    """ONNX BatchNormalization (inference form, the moving statistics)
    normalizes axis 1: images channels first and feature rows use it as they
    are, other samples go through rows of (n * ..., channels).  epsilon is
    added to the variance here, in float64, as an ONNX attribute is float32."""
    gamma, beta, mean, variance = layer.get_weights()
    statistics = [graph.constant(gamma, "gamma"), graph.constant(beta, "beta"),
                  graph.constant(mean, "moving_mean"),
                  graph.constant(variance.astype(np.float64) + layer.epsilon,
                                 "moving_var_plus_epsilon")]
    as_rows = not tensor.channels_first and len(tensor.shape) != 1
    x = tensor.name
    if as_rows:
        x = graph.node("Reshape", [x, graph.constant(np.array([-1, tensor.shape[-1]], np.int64),
                                                     "rows", np.int64)])
    out = graph.node("BatchNormalization", [x] + statistics, epsilon=0.0)
    if as_rows:
        out = graph.node("Reshape", [out, graph.shape(tensor.shape)])
    return tensor._replace(name=out)


def _residual(graph: _Graph, layer, tensor: _Tensor) -> _Tensor:
    """The block's layers, then an Add of the block's input."""
    prefix = graph.prefix
    skip = out = _channels_last(graph, tensor)
    for index, inner in enumerate(layer.layers):
        graph.prefix = f"{prefix}/{index}_{type(inner).__name__}"
        out = _converter(index, inner)(graph, inner, out)
    graph.prefix = prefix
    out = _channels_last(graph, out)
    return skip._replace(name=graph.node("Add", [skip.name, out.name]))


# exact classes only: a subclass may compute something its base does not
_CONVERTERS: Dict[type, Converter] = {
    Dense: _dense, FCLayer: _dense,
    Conv2D: _conv, ConvLayer: _conv,
    MaxPool2D: partial(_pool, "MaxPool"), AvgPool2D: partial(_pool, "AveragePool"),
    GlobalAveragePooling2D: _global_average,
    Flatten: _flatten, FlattenLayer: _flatten,
    Dropout: _identity,                          # the identity at inference
    RandomFlip: _identity, RandomTranslation: _identity, RandomRotation: _identity,
    RandomZoom: _identity, GaussianNoise: _identity,     # training-only augmentation
    RandomCrop: _centre_crop,                    # the centre window at inference
    BatchNormalization: _batch_normalization,
    Activation: _activation_layer, Tanh: _activation_layer, Sigmoid: _activation_layer,
    ReLU: _activation_layer, LeakyReLU: _activation_layer, Softmax: _activation_layer,
    ActivationLayer: _activation_layer,
    Residual: _residual,
}

_CONVERTERS.update(sequence_converters(_activation))     # see onnx_sequence.py
