from .activation import (Activation, ActivationLayer, LeakyReLU, ReLU, Sigmoid, Softmax,
                         Tanh)
from .base import Layer, NativeLayer
from .dense import Dense, FCLayer

__all__ = ["Layer", "NativeLayer", "Dense", "FCLayer", "Activation", "ActivationLayer",
           "Tanh", "Sigmoid", "ReLU", "LeakyReLU", "Softmax"]
