"""nncore: neural networks with a from-scratch design and a compiled core."""
from . import activations, datasets, initializers, losses, optimizers, utils
from ._native.openmp import openmp_enabled
from ._threads import get_num_threads, set_num_threads, threads
from ._version import __version__
from .errors import ModelFormatError
from .layers import (Activation, ActivationLayer, Dense, FCLayer, Layer, LeakyReLU, ReLU,
                     Sigmoid, Softmax, Tanh)
from .network import Network
from .registry import register_layer
from .saving import load

__all__ = ["__version__", "openmp_enabled", "get_num_threads", "set_num_threads", "threads", "Network", "Layer", "Dense", "FCLayer",
           "Activation", "ActivationLayer", "Tanh", "Sigmoid", "ReLU", "LeakyReLU",
           "Softmax", "activations", "datasets", "losses", "optimizers", "initializers",
           "utils", "ModelFormatError", "register_layer", "load"]
