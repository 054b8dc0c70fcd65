from .augmentation import (GaussianNoise, RandomCrop, RandomFlip, RandomRotation,
                           RandomTranslation, RandomZoom)
from .activation import (Activation, ActivationLayer, LeakyReLU, ReLU, Sigmoid, Softmax,
                         Tanh)
from .base import Layer, NativeLayer
from .conv import Conv2D, ConvLayer
from .dense import Dense, FCLayer
from .dropout import Dropout
from .normalization import BatchNormalization
from .pooling import (AveragePooling2D, AvgPool2D, GlobalAveragePooling2D, MaxPool2D,
                      MaxPooling2D)
from .reshape import Flatten, FlattenLayer

__all__ = ["Layer", "NativeLayer", "Dense", "FCLayer", "Activation", "ActivationLayer",
           "Tanh", "Sigmoid", "ReLU", "LeakyReLU", "Softmax",
           # convolutional networks
           "Conv2D", "ConvLayer", "MaxPool2D", "MaxPooling2D", "AvgPool2D",
           "AveragePooling2D", "GlobalAveragePooling2D", "Flatten", "FlattenLayer", "Dropout",
           "BatchNormalization",
           # augmentation (training only)
           "RandomFlip", "RandomTranslation", "RandomRotation", "RandomZoom", "RandomCrop",
           "GaussianNoise"]
