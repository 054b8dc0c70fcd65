"""Run by tests/test_mpi_fit.py under `mpiexec -n N`: every rank trains the
same seeded network on its rows with nncore.mpi.fit; rank 0 saves the
weights, the generator states and the losses to the file argv[2]."""
import sys

import numpy as np
from mpi4py import MPI

import nncore
import nncore.mpi


def network(case):
    if case == "mlp":
        net = nncore.Network([nncore.Dense(16, activation="tanh"), nncore.Dense(8, "relu"),
                              nncore.Dense(2)], input_shape=(6,), dtype="float64", seed=3)
        return net.use("mse", optimizer=nncore.optimizers.Adam(0.01))
    net = nncore.Network([nncore.RandomFlip("horizontal"), nncore.Flatten(),
                          nncore.Dense(16, activation="tanh"), nncore.Dropout(0.4),
                          nncore.Dense(3)], input_shape=(6, 6, 1), dtype="float64", seed=7)
    return net.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True),
                   optimizer=nncore.optimizers.SGD(0.1, momentum=0.9))


def data(case):
    rng = np.random.default_rng(2)
    if case == "mlp":
        x = rng.normal(size=(301, 6))
        return x, np.stack([x[:, 0] * 2 - x[:, 1], np.sin(x[:, 2])], axis=1)
    return rng.normal(size=(150, 6, 6, 1)), rng.integers(0, 3, 150)


def main():
    case, out, shared = sys.argv[1], sys.argv[2], sys.argv[3] == "shared"
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    x, y = data(case)
    if not shared:          # uneven parts: rank r holds rows [r * n // size - 7 ...)
        cuts = [0] + [max(0, r * len(x) // size - 7) for r in range(1, size)] + [len(x)]
        x, y = x[cuts[rank]:cuts[rank + 1]], y[cuts[rank]:cuts[rank + 1]]
    net = network(case)
    history = nncore.mpi.fit(net, x, y, epochs=3, batch_size=64, shared=shared, verbose=0,
                             threads_per_rank=1)
    weights = comm.gather(net.get_weights())
    if rank == 0:
        for other in weights[1:]:       # the replicas stayed equal, bit for bit
            assert all(np.array_equal(a, b) for a, b in zip(weights[0], other))
        states = [s for layer in net.layers for s in layer.state if s.dtype.kind == "u"]
        np.savez(out, loss=np.array(history.history["loss"]),
                 *(list(net.get_weights()) + states))


if __name__ == "__main__":
    main()
