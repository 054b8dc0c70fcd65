"""Self-attention over sequences: MultiHeadAttention and PositionalEmbedding."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .. import initializers
from .._native.attention import AttentionOp
from .._native.dense import DenseOp
from .._native.positional import PositionalOp
from .base import NativeLayer, Shape
from .sequence import _positive_int, sequence_shape


class MultiHeadAttention(NativeLayer):
    """Multi-head self-attention over (steps, features) samples.

    Each of the `num_heads` heads projects every position to a query, a key
    and a value of `key_dim` values, mixes the values of all positions
    (with `causal`, of positions up to its own) by the softmax of the
    query-key products divided by sqrt(key_dim), and the heads' outputs,
    side by side, are projected back to the input's feature size:
    (T, D) samples give (T, D) outputs, as Keras' MultiHeadAttention called
    on (x, x) and PyTorch's ``nn.MultiheadAttention(x, x, x)``.

    Parameters
    ----------
    num_heads : int
        The number of heads H, a positive integer.
    key_dim : int
        The size K of each head's queries, keys and values.
    causal : bool, default False
        Whether position t attends to positions up to t only.
    use_bias : bool, default True
        Whether the projections add biases.
    kernel_initializer : str, default "glorot_uniform"
        How the projection kernels are drawn (fans: D and K for the
        query, key and value projections; H*K and D for the output).
    name : str, optional
        The layer's name in summaries and saved files.

    Notes
    -----
    The parameters are ``[qkv_kernel (D, 3HK), qkv_bias (3HK),
    output_kernel (HK, D), output_bias (D)]``: columns [0, HK) of the first
    two project the queries, [HK, 2HK) the keys, [2HK, 3HK) the values, head h
    at columns h*K to h*K+K of each.  With HK = D this is PyTorch's
    ``in_proj_weight.T``, ``in_proj_bias``, ``out_proj.weight.T`` and
    ``out_proj.bias``; Keras' query kernel (D, H, K) is
    ``qkv_kernel[:, :HK].reshape(D, H, K)`` and its output kernel (H, K, D)
    is ``output_kernel.reshape(H, K, D)``.  The projections run as dense
    ops (BLAS GEMM over all positions), the attention itself as one op whose
    products are GEMMs per sample and head; backward keeps the attention
    weights (H*T*T values per sample).

    Raises
    ------
    ValueError
        If `num_heads` or `key_dim` is not a positive integer, or the input
        is not (steps, features).

    Examples
    --------
    >>> import numpy as np, nncore
    >>> layer = nncore.MultiHeadAttention(num_heads=2, key_dim=3, causal=True)
    >>> net = nncore.Network([layer], input_shape=(4, 6), seed=0)
    >>> net.predict(np.ones((1, 4, 6), np.float32)).shape
    (1, 4, 6)
    >>> [w.shape for w in layer.get_weights()]
    [(6, 18), (18,), (6, 6), (6,)]
    """

    def __init__(self, num_heads: int, key_dim: int, causal: bool = False,
                 use_bias: bool = True, kernel_initializer="glorot_uniform",
                 name: Optional[str] = None):
        super().__init__(name)
        self.num_heads = _positive_int(self, num_heads, "num_heads")
        self.key_dim = _positive_int(self, key_dim, "key_dim")
        for what, value in (("causal", causal), ("use_bias", use_bias)):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{type(self).__name__}: {what} must be True or False, "
                                f"got {value!r}")
        self.causal = bool(causal)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        sequence_shape(self, input_shape)
        return tuple(input_shape)

    def build(self, input_shape: Sequence[int]) -> None:
        self.compute_output_shape(tuple(input_shape))
        features = int(input_shape[-1])
        width = self.num_heads * self.key_dim
        blocks = [initializers.draw(self.kernel_initializer, self.rng, (features, width),
                                    features, self.key_dim, self.dtype) for _ in range(3)]
        self.qkv_kernel = np.ascontiguousarray(np.concatenate(blocks, axis=1))
        self.output_kernel = initializers.draw(self.kernel_initializer, self.rng,
                                               (width, features), width, features, self.dtype)
        self.params = [self.qkv_kernel, self.output_kernel]
        if self.use_bias:
            self.qkv_bias = np.zeros(3 * width, self.dtype)
            self.output_bias = np.zeros(features, self.dtype)
            self.params = [self.qkv_kernel, self.qkv_bias, self.output_kernel,
                           self.output_bias]
        self.grads = [np.zeros_like(p) for p in self.params]
        super().build(input_shape)

    def make_ops(self) -> list:
        steps = self._built_input_shape()[0]
        grads = self.grads if self.use_bias else [self.grads[0], None, self.grads[1], None]
        bias = (self.qkv_bias, self.output_bias) if self.use_bias else (None, None)
        return [DenseOp(self.qkv_kernel, bias[0], grads[0], grads[1], steps),
                AttentionOp(self.dtype, steps, self.num_heads, self.key_dim, self.causal),
                DenseOp(self.output_kernel, bias[1], grads[2], grads[3], steps)]

    def get_config(self) -> dict:
        return {"num_heads": self.num_heads, "key_dim": self.key_dim, "causal": self.causal,
                "use_bias": self.use_bias,
                "kernel_initializer": initializers.name_of(self.kernel_initializer),
                "name": self.name}

    def weight_shapes(self, input_shape: Shape):
        self.compute_output_shape(tuple(input_shape))
        features, width = int(input_shape[-1]), self.num_heads * self.key_dim
        if not self.use_bias:
            return [(features, 3 * width), (width, features)]
        return [(features, 3 * width), (3 * width,), (width, features), (features,)]

    def __repr__(self) -> str:
        causal = ", causal=True" if self.causal else ""
        return f"MultiHeadAttention({self.num_heads}, {self.key_dim}{causal})"


class PositionalEmbedding(NativeLayer):
    """Adds a learned vector per position: y[t] = x[t] + table[t] for the
    (steps, dim) samples, table (max_len, dim), steps <= max_len.

    Place it after an Embedding to tell attention layers where each token
    is (attention alone does not see order).  Rows of the table past the
    input's steps are not used and get zero gradients.

    Parameters
    ----------
    max_len : int
        The number of positions the table holds, a positive integer.
    dim : int
        The feature size of the input (and of the table's rows).
    embeddings_initializer : str, default "glorot_uniform"
        How the table is drawn (a name of `nncore.initializers`).
    name : str, optional
        The layer's name in summaries and saved files.

    Raises
    ------
    ValueError
        If `max_len` or `dim` is not a positive integer, or the input has
        more steps than `max_len` or another feature size than `dim`.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.Network([nncore.Embedding(10, 4), nncore.PositionalEmbedding(8, 4)],
    ...                      input_shape=(6,), seed=0)
    >>> net.predict(np.zeros((2, 6), np.float32)).shape
    (2, 6, 4)
    """

    def __init__(self, max_len: int, dim: int, embeddings_initializer="glorot_uniform",
                 name: Optional[str] = None):
        super().__init__(name)
        self.max_len = _positive_int(self, max_len, "max_len")
        self.dim = _positive_int(self, dim, "dim")
        self.embeddings_initializer = initializers.get(embeddings_initializer)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        steps, features = sequence_shape(self, input_shape)
        if steps > self.max_len or features != self.dim:
            raise ValueError(f"{type(self).__name__}: expected input of shape (None, steps "
                             f"<= {self.max_len}, {self.dim}), received "
                             f"{(None,) + tuple(input_shape)}")
        return tuple(input_shape)

    def build(self, input_shape: Sequence[int]) -> None:
        self.compute_output_shape(tuple(input_shape))
        self.embeddings = initializers.draw(self.embeddings_initializer, self.rng,
                                            (self.max_len, self.dim), self.max_len, self.dim,
                                            self.dtype)
        self.params = [self.embeddings]
        self.grads = [np.zeros_like(self.embeddings)]
        super().build(input_shape)

    def make_ops(self) -> list:
        return [PositionalOp(self.embeddings, self.grads[0], self._built_input_shape()[0])]

    def get_config(self) -> dict:
        return {"max_len": self.max_len, "dim": self.dim,
                "embeddings_initializer": initializers.name_of(self.embeddings_initializer),
                "name": self.name}

    def weight_shapes(self, input_shape: Shape):
        self.compute_output_shape(tuple(input_shape))
        return [(self.max_len, self.dim)]

    def __repr__(self) -> str:
        return f"PositionalEmbedding({self.max_len}, {self.dim})"
