from .augmentation import (GaussianNoise, RandomCrop, RandomFlip, RandomRotation,
                           RandomTranslation, RandomZoom)
from .activation import Activation, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .base import Layer, NativeLayer
from .conv import Conv2D
from .dense import Dense
from .dropout import Dropout
from .normalization import BatchNormalization
from .pooling import (AveragePooling2D, AvgPool2D, GlobalAveragePooling2D, MaxPool2D,
                      MaxPooling2D)
from .reshape import Flatten
from .layer_normalization import LayerNormalization
from .recurrent import GRU, LSTM, Bidirectional, SimpleRNN
from .attention import MultiHeadAttention, PositionalEmbedding
from .residual import Residual
from .sequence import (AveragePooling1D, AvgPool1D, Conv1D, Embedding, GlobalAveragePooling1D,
                       GlobalMaxPooling1D, MaxPool1D, MaxPooling1D)
# the article's layers, built on the ones above
from ..article import ActivationLayer, ConvLayer, FCLayer, FlattenLayer

__all__ = ["Layer", "NativeLayer", "Dense", "FCLayer", "Activation", "ActivationLayer",
           "Tanh", "Sigmoid", "ReLU", "LeakyReLU", "Softmax",
           # convolutional networks
           "Conv2D", "ConvLayer", "MaxPool2D", "MaxPooling2D", "AvgPool2D",
           "AveragePooling2D", "GlobalAveragePooling2D", "Flatten", "FlattenLayer", "Dropout",
           "BatchNormalization",
           # augmentation (training only)
           "RandomFlip", "RandomTranslation", "RandomRotation", "RandomZoom", "RandomCrop",
           "GaussianNoise",
           # sequences
           "Embedding", "Conv1D", "MaxPool1D", "MaxPooling1D", "AveragePooling1D", "AvgPool1D",
           "GlobalMaxPooling1D", "GlobalAveragePooling1D", "LayerNormalization",
           "SimpleRNN", "LSTM", "GRU", "Bidirectional",
           # attention and residual blocks
           "MultiHeadAttention", "PositionalEmbedding", "Residual"]
