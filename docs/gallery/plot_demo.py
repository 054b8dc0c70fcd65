"""
The demo: XOR, then handwritten digits
======================================

``examples/demo.py`` is the first of the two commands: XOR with the article's
API, then scikit-learn's 8x8 digits with mini-batches and softmax
cross-entropy.  Here the digits network trains for five epochs
(``--epochs 5``).
"""
from _run_example import run_example

example = run_example("demo.py", "--epochs", "5")
