"""
The article's fully connected MNIST network
===========================================

``examples/mnist_fc.py`` trains the article's 784-100-50-10 tanh network per
sample with mean squared error.  Here it runs for one epoch (``--epochs 1``)
on the 5,000-image training subset; the figures show the confusion matrix on
the 10,000 test images and some of the digits it gets wrong.
"""
import matplotlib.pyplot as plt
import numpy as np

from _run_example import run_example

example = run_example("mnist_fc.py", "--epochs", "1")
predicted, truth = example["predicted"], example["y_test"]

# %%
# Confusion matrix: row = true digit, column = predicted digit.
confusion = np.zeros((10, 10), dtype=int)
np.add.at(confusion, (truth, predicted), 1)
figure, axes = plt.subplots(figsize=(5.2, 4.4))
image = axes.imshow(confusion, cmap="Blues")
for row in range(10):
    for column in range(10):
        axes.text(column, row, confusion[row, column], ha="center", va="center", fontsize=7,
                  color="white" if confusion[row, column] > confusion.max() / 2 else "black")
axes.set(xticks=range(10), yticks=range(10), xlabel="predicted", ylabel="true",
         title="confusion matrix on the test set")
figure.colorbar(image, ax=axes)
plt.show()

# %%
# The first twelve misclassified test digits, with what the network said.
wrong = np.flatnonzero(predicted != truth)[:12]
figure, grid = plt.subplots(2, 6, figsize=(7.2, 2.8))
for axes, index in zip(grid.ravel(), wrong):
    axes.imshow(example["x_test"][index].reshape(28, 28), cmap="gray_r")
    axes.set_title(f"{truth[index]} -> {predicted[index]}", fontsize=9)
    axes.axis("off")
figure.suptitle("misclassified digits (true -> predicted)")
plt.show()
