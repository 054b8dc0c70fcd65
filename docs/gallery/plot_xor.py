"""
XOR, the article's way
======================

``examples/xor.py`` trains the article's 2-3-1 tanh network per sample with
mean squared error.  It runs here with its defaults (1000 epochs, about a
tenth of a second); the figure shows the function the network learned over
the unit square, with the four training points.
"""
import matplotlib.pyplot as plt
import numpy as np

from _run_example import run_example

example = run_example("xor.py")
net = example["net"]

grid = np.linspace(-0.25, 1.25, 121)
xx, yy = np.meshgrid(grid, grid)
points = np.stack([xx.ravel(), yy.ravel()], axis=1).reshape(-1, 1, 2)
surface = np.asarray(net.predict(points)).reshape(xx.shape)

figure, axes = plt.subplots(figsize=(4.8, 4))
image = axes.contourf(xx, yy, surface, levels=20, cmap="RdBu_r")
figure.colorbar(image, ax=axes, label="network output")
corners = example["x_train"].reshape(-1, 2)
axes.scatter(corners[:, 0], corners[:, 1], c=example["y_train"].ravel(), cmap="RdBu_r",
             edgecolors="black", s=120)
axes.set(xlabel="first input", ylabel="second input", title="XOR learned by nncore")
plt.show()
