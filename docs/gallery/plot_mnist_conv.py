"""
The article's convolutional network
===================================

``examples/mnist_conv.py`` trains the article's ConvLayer network per sample
on 1,000 training images.  Here it runs for two epochs (``--epochs 2``); its
printed output is below.
"""
from _run_example import run_example

example = run_example("mnist_conv.py", "--epochs", "2")
