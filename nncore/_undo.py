"""All-or-nothing network calls: `Snapshot(net)` records what a call that
builds or sets up a network may change (the layer list and every layer's
attributes, the input shape, the random generator and shuffle state, the
optimizers' attributes, the plans' bookkeeping), and `restore()` puts it
back when the call raises.  Weights are not copied: the calls that use a
snapshot never write into existing weight arrays before they can no longer
fail (building creates new arrays, set_weights checks everything first)."""
from __future__ import annotations

from ._plans import NetworkPlans

NETWORK_FIELDS = ("input_shape", "built", "loss", "optimizer", "metrics", "loss_from_functions",
                  "history", "training_optimizer", "default_optimizer", "stop_training",
                  "stopped_on_nan")


class Snapshot:
    def __init__(self, net, *extra_layers) -> None:
        self.net = net
        self.fields = {name: getattr(net, name) for name in NETWORK_FIELDS}
        self.layers = list(net.layers)
        self.layer_states = [(layer, dict(layer.__dict__))
                             for layer in _with_inner(self.layers + list(extra_layers))]
        self.rng = net.rng.bit_generator.state
        shuffle = net.shuffle_state
        self.shuffle = None if shuffle is None else shuffle.copy()
        self.optimizers = [(o, dict(o.__dict__)) for o in
                           {id(o): o for o in (net.optimizer, net.training_optimizer,
                                               net.default_optimizer) if o is not None}.values()]
        self.plans = net.plans
        self.plan_fields = {k: v for k, v in vars(net.plans).items() if k != "_local"}

    def restore(self) -> None:
        net = self.net
        for name, value in self.fields.items():
            setattr(net, name, value)
        net.layers[:] = self.layers
        for layer, state in self.layer_states:
            layer.__dict__.clear()
            layer.__dict__.update(state)
        net.rng.bit_generator.state = self.rng
        net.shuffle_state = self.shuffle
        for optimizer, state in self.optimizers:
            optimizer.__dict__.clear()
            optimizer.__dict__.update(state)
        if self.fields["built"]:
            net.plans = self.plans
            vars(net.plans).update(self.plan_fields)
        else:             # plans made for layers built by the failed call
            net.plans = NetworkPlans()

    def __enter__(self) -> "Snapshot":
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is not None:
            self.restore()


def _with_inner(layers) -> list:
    """The layers and, after each, the layers inside it (a Residual block's)."""
    found = []
    for layer in layers:
        found.append(layer)
        found.extend(_with_inner(getattr(layer, "layers", ())))
    return found
