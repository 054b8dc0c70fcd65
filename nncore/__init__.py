"""nncore: neural networks with a from-scratch design and a compiled core."""
from . import activations, datasets, initializers, losses, optimizers, utils
from ._native.openmp import openmp_enabled
from ._version import __version__
from .layers import (Activation, ActivationLayer, Dense, FCLayer, Layer, LeakyReLU, ReLU,
                     Sigmoid, Softmax, Tanh)
from .layers import (AveragePooling2D, AvgPool2D, BatchNormalization, Conv2D, ConvLayer,
                     Dropout, Flatten, FlattenLayer, GlobalAveragePooling2D, MaxPool2D,
                     MaxPooling2D)
from .network import Network

__all__ = ["__version__", "openmp_enabled", "Network", "Layer", "Dense", "FCLayer",
           "Activation", "ActivationLayer", "Tanh", "Sigmoid", "ReLU", "LeakyReLU",
           "Softmax", "activations", "datasets", "losses", "optimizers", "initializers",
           "utils",
           "Conv2D", "ConvLayer", "MaxPool2D", "MaxPooling2D", "AvgPool2D",
           "AveragePooling2D", "GlobalAveragePooling2D", "Flatten", "FlattenLayer", "Dropout",
           "BatchNormalization"]
