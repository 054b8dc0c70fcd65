"""
A modern convolutional network on MNIST
=======================================

``examples/mnist_cnn.py`` trains the network of the user guide's
"Convolutional networks" page with mini-batches and softmax cross-entropy.
Here it runs for one epoch (``--epochs 1``) on the 5,000-image training
subset; the figure shows its training curve, drawn by ``History.plot``, and
the last cell prints the plan the network runs as (its layers lowered to
fused native ops).
"""
import matplotlib.pyplot as plt

from _run_example import run_example

example = run_example("mnist_cnn.py", run_name="gallery")     # defines main() only
net, history = example["main"](["--epochs", "1"])
history.plot()
plt.show()

# %%
# The plan: which native ops the layers became.
print(net.summary(print_fn=None, plan=True))
