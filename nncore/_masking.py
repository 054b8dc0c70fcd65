"""Which layers a mask from Embedding(mask_zero=True) reaches, as in Keras.

The mask says which positions of a sample hold padding (index 0).  It is
never a tensor of the plan: a masked recurrent op reads the indices from the
input of the Embedding op that starts its plan's chain of records (see
csrc/recurrent.pyx).  So the mask can only reach layers that keep the
input's steps one for one, and `link_masks` decides, when the network is
built, which recurrent layers it reaches:

* layers that work on each position alone (Dense, Activation, Dropout,
  LayerNormalization, PositionalEmbedding, and Residual blocks of these)
  pass the mask on, as their Keras counterparts do;
* a recurrent layer (or Bidirectional) uses it, and passes it on when it
  returns sequences; otherwise its output has no steps and the mask ends;
* GlobalAveragePooling1D averages over the unmasked steps (its op is then
  the masked mean of csrc/masked_pool.pyx), and the mask ends;
* any other layer that would receive a mask is refused, as Keras refuses a
  layer that does not support masking: Conv1D and the local pools change
  the steps, Flatten and GlobalMaxPooling1D mix them, MultiHeadAttention
  would need the mask in its weights (Keras masks the keys), so each of
  them would silently read the padding.

A network with a mask must run in the native core: a layer written in
Python runs the network layer by layer, where no mask can reach a layer.
"""
from __future__ import annotations

from .errors import in_layer
from .layers.activation import Activation
from .layers.attention import PositionalEmbedding
from .layers.dense import Dense
from .layers.dropout import Dropout
from .layers.layer_normalization import LayerNormalization
from .layers.recurrent import Bidirectional, _Recurrent
from .layers.residual import Residual
from .layers.sequence import Embedding, GlobalAveragePooling1D

#: layers that work on each position alone: the mask passes through them
PASSES = (Dense, Activation, Dropout, LayerNormalization, PositionalEmbedding)


def link_masks(layers) -> None:
    """Point the recurrent layers of a built network at the Embedding op
    whose input masks them (or at none); raise ValueError, naming the layer,
    when a layer that cannot honour the mask would receive it."""
    source = None
    if layers and isinstance(layers[0], Embedding) and layers[0].mask_zero:
        source = layers[0].native_ops()[0]
        for index, layer in enumerate(layers):
            if layer.native_ops() is None:
                raise ValueError(in_layer(index, layer, "runs in Python, and a network with "
                                                        "Embedding(mask_zero=True) must run "
                                                        "every layer in the native core (the "
                                                        "mask cannot reach layers run one by "
                                                        "one)"))
    _link(layers, 1 if source is not None else 0, source, "")


def _link(layers, start: int, source, within: str):
    """Link layers[start:] (source: the masking op while the mask is live);
    returns the source still live after them."""
    for index in range(start, len(layers)):
        layer = layers[index]
        if isinstance(layer, (_Recurrent, Bidirectional)):
            layer.native_ops()[0].set_mask(source)
            layer.receives_mask = source is not None
            if not layer.return_sequences:
                source = None
        elif isinstance(layer, GlobalAveragePooling1D):
            layer.set_mask(source)
            source = None
        elif isinstance(layer, Residual):
            inner = _link(layer.layers, 0, source,
                          f"{within}layer {index} (Residual), its ")
            if inner is not source:
                raise ValueError(f"{within}{in_layer(index, layer, 'its layers end the mask')}")
        elif source is not None and not isinstance(layer, PASSES):
            raise ValueError(within + in_layer(index, layer, (
                "does not support masking, but receives the mask of "
                "Embedding(mask_zero=True); only SimpleRNN, LSTM, GRU, Bidirectional, "
                "GlobalAveragePooling1D and layers that work on each step alone (Dense, "
                "Activation, Dropout, LayerNormalization, PositionalEmbedding) take it; put "
                "a recurrent layer without return_sequences before this one")))
    return source


def refuse_python_training(net, caller: str) -> None:
    """Raise ValueError when `net` has a mask: called where training would
    run the layers one by one (a loss or optimizer written in Python), where
    no mask reaches the recurrent layers."""
    if net.layers and getattr(net.layers[0], "mask_zero", False):
        raise ValueError(f"{caller}: a network with Embedding(mask_zero=True) trains in the "
                         f"native core only, with one of nncore's losses and optimizers; a "
                         f"loss or optimizer written in Python runs the layers one by one, "
                         f"where the mask cannot reach them")
