"""nncore: neural networks with a from-scratch design and a compiled core."""
from ._native import SIMD as _SIMD      # first: says what to run when the core is not built
from . import (activations, callbacks, datasets, initializers, losses, metrics, optimizers,
               regularizers, schedules, utils)
from ._native.openmp import openmp_enabled
from ._budget import get_memory_budget, set_memory_budget
from ._threads import get_num_threads, set_num_threads, threads
from ._version import __version__
from .errors import ModelFormatError
from .layers import (Activation, ActivationLayer, AveragePooling2D, AvgPool2D,
                     BatchNormalization, Conv2D, ConvLayer, Dense, Dropout, FCLayer, Flatten,
                     FlattenLayer, GlobalAveragePooling2D, Layer, LeakyReLU, MaxPool2D,
                     MaxPooling2D, ReLU, Sigmoid, Softmax, Tanh, RandomFlip, RandomTranslation,
                     RandomRotation, RandomZoom, RandomCrop, GaussianNoise)
from .layers import (AveragePooling1D, AvgPool1D, Conv1D, Embedding, GlobalAveragePooling1D,
                     GlobalMaxPooling1D, GRU, LayerNormalization, LSTM, MaxPool1D,
                     MaxPooling1D, SimpleRNN)
from .layers import Bidirectional, MultiHeadAttention, PositionalEmbedding, Residual
from .network import Network, load
from .gradient_check import check_gradients
from .inference import InferenceSession
from .layers.base import register_layer
from . import onnx          # imports the onnx package only when export is called


def simd_level() -> str:
    """The instruction set the loaded kernels were built for.

    Returns
    -------
    str
        "avx2" (the kernel modules that have an AVX2 build use it) or
        "baseline" (see NNCORE_SIMD).

    Examples
    --------
    >>> import nncore
    >>> nncore.simd_level() in ("avx2", "baseline")
    True
    """
    return _SIMD


__all__ = [
    "__version__", "openmp_enabled", "simd_level", "get_num_threads", "set_num_threads",
    "threads", "get_memory_budget", "set_memory_budget",
    "Network", "InferenceSession", "Layer", "Dense", "FCLayer", "Activation", "ActivationLayer", "Tanh",
    "Sigmoid", "ReLU", "LeakyReLU", "Softmax", "Conv2D", "ConvLayer", "MaxPool2D",
    "MaxPooling2D", "AvgPool2D", "AveragePooling2D", "GlobalAveragePooling2D", "Flatten",
    "FlattenLayer", "Dropout", "BatchNormalization", "RandomFlip", "RandomTranslation",
    "RandomRotation", "RandomZoom", "RandomCrop", "GaussianNoise",
    "Embedding", "Conv1D", "MaxPool1D", "MaxPooling1D", "AveragePooling1D", "AvgPool1D",
    "GlobalMaxPooling1D", "GlobalAveragePooling1D", "LayerNormalization",
    "SimpleRNN", "LSTM", "GRU", "Bidirectional", "MultiHeadAttention", "PositionalEmbedding", "Residual",
    "activations", "callbacks", "datasets", "initializers", "losses", "metrics",
    "optimizers", "regularizers", "schedules", "utils", "ModelFormatError", "register_layer",
    "load", "check_gradients",
]
