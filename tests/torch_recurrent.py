"""PyTorch references of masked recurrent networks: Embedding(mask_zero=True)
followed by SimpleRNN / LSTM / GRU or Bidirectional, run on right-padded
batches through torch.nn.utils.rnn.pack_padded_sequence, with the outputs
arranged the way nncore (and Keras) define them."""
import numpy as np
import torch

MODULES = {"simple": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}


def _order(cell, units):
    # Keras' GRU blocks (z, r, h) are PyTorch's (r, z, n)
    if cell == "gru":
        return np.r_[units:2 * units, 0:units, 2 * units:3 * units]
    return np.arange({"simple": 1, "lstm": 4}[cell] * units)


def copy_direction(module, cell, params, suffix=""):
    """Copy one direction's Keras weights (kernel, recurrent, bias) into
    `module`'s weight_*_l0{suffix}."""
    kernel, recurrent, bias = params
    order = _order(cell, recurrent.shape[0])
    kernel, recurrent, bias = kernel[:, order], recurrent[:, order], bias[..., order]
    ih, hh = bias if cell == "gru" else (bias, np.zeros_like(bias))
    with torch.no_grad():
        for name, value in (("weight_ih", kernel.T), ("weight_hh", recurrent.T),
                            ("bias_ih", ih), ("bias_hh", hh)):
            getattr(module, f"{name}_l0{suffix}").copy_(torch.tensor(value))


def direction_grads(module, cell, units, suffix=""):
    """The gradients of one direction in Keras' layout."""
    back = np.argsort(_order(cell, units))
    get = lambda name: getattr(module, f"{name}_l0{suffix}").grad.numpy()
    gk, gr = get("weight_ih").T[:, back], get("weight_hh").T[:, back]
    gi, gh = get("bias_ih")[back], get("bias_hh")[back]
    return [gk, gr, np.stack([gi, gh]) if cell == "gru" else gi]


def _gather_steps(values, index):
    # values (n, T', U) at steps index (n, T) -> (n, T, U)
    return values.gather(1, torch.tensor(index)[:, :, None].expand(-1, -1, values.shape[2]))


def masked_reference(cell, weights, ids, target, sequences, backwards=False,
                     bidirectional=False, merge="concat"):
    """(output, gradients of mean((output - target)^2) w.r.t. the weights)
    of Embedding(mask_zero=True) + the layer on right-padded `ids` (every
    row has at least one nonzero index, then only zeros).  `weights`: the
    table, then each direction's (kernel, recurrent, bias)."""
    n, steps = ids.shape
    lengths = (ids != 0).sum(axis=1)
    table = torch.tensor(weights[0], requires_grad=True)
    units = weights[2].shape[0]
    module = MODULES[cell](weights[1].shape[0], units, batch_first=True,
                           bidirectional=bidirectional).double()
    copy_direction(module, cell, weights[1:4])
    if bidirectional:
        copy_direction(module, cell, weights[4:7], "_reverse")
    t = np.arange(steps)[None, :]
    index = ids
    if backwards:       # the valid steps of each row reversed, its padding kept in place
        index = np.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)
        index = np.take_along_axis(ids, index, axis=1)
    embedded = table[torch.tensor(index.astype(np.int64))]
    packed = torch.nn.utils.rnn.pack_padded_sequence(embedded, torch.tensor(lengths),
                                                     batch_first=True, enforce_sorted=False)
    out, state = module(packed)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=steps)
    last = state[0] if cell == "lstm" else state
    if bidirectional:
        parts = (out[..., :units], out[..., units:]) if sequences else (last[0], last[1])
        a, b = parts
        y = {"concat": lambda: torch.cat([a, b], -1), "sum": lambda: a + b,
             "mul": lambda: a * b, "ave": lambda: (a + b) / 2}[merge]()
    elif not sequences:
        y = last[0]
    elif not backwards:     # a masked step outputs the state carried over it
        y = _gather_steps(out, np.minimum(t, lengths[:, None] - 1))
    else:                   # the padding is read first: zero state, then the valid steps
        first = steps - lengths[:, None]
        y = _gather_steps(out, np.maximum(t - first, 0)) * torch.tensor(
            (t >= first)[:, :, None].astype(np.float64))
    loss = ((y - torch.tensor(target)) ** 2).mean()
    loss.backward()
    grads = [table.grad.numpy()] + direction_grads(module, cell, units)
    if bidirectional:
        grads += direction_grads(module, cell, units, "_reverse")
    return y.detach().numpy(), grads
