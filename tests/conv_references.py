"""Direct sliding-window NumPy references for the convolution and pooling tests."""
import numpy as np

from reference import numeric_gradient as numerical_gradient  # noqa: F401


def same_padding(n, k, s):
    """(before, after) zero padding of Keras 'same' along one axis."""
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def paddings(x_shape, k, s, padding):
    """((top, bottom), (left, right)) for 'valid', 'same' or an int pair."""
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        return same_padding(x_shape[1], k[0], s[0]), same_padding(x_shape[2], k[1], s[1])
    return (padding[0], padding[0]), (padding[1], padding[1])


def windows(x_shape, k, s, pads):
    """Yield (i, j, rows slice, cols slice) of each output position, in padded coordinates."""
    (pt, pb), (pl, pr) = pads
    oh = (x_shape[1] + pt + pb - k[0]) // s[0] + 1
    ow = (x_shape[2] + pl + pr - k[1]) // s[1] + 1
    for i in range(oh):
        for j in range(ow):
            yield i, j, slice(i * s[0], i * s[0] + k[0]), slice(j * s[1], j * s[1] + k[1])


def output_hw(x_shape, k, s, pads):
    (pt, pb), (pl, pr) = pads
    return (x_shape[1] + pt + pb - k[0]) // s[0] + 1, (x_shape[2] + pl + pr - k[1]) // s[1] + 1


def conv_forward(x, kernel, bias, s, padding):
    k = kernel.shape[:2]
    pads = paddings(x.shape, k, s, padding)
    xp = np.pad(x.astype(np.float64), ((0, 0),) + pads + ((0, 0),))
    y = np.zeros((x.shape[0],) + output_hw(x.shape, k, s, pads) + (kernel.shape[3],))
    for i, j, rs, cs in windows(x.shape, k, s, pads):
        y[:, i, j, :] = np.tensordot(xp[:, rs, cs, :], kernel, axes=([1, 2, 3], [0, 1, 2]))
    return y + (0 if bias is None else bias)


def conv_backward(x, kernel, dy, s, padding):
    """(dx, dkernel, dbias)"""
    k = kernel.shape[:2]
    pads = paddings(x.shape, k, s, padding)
    xp = np.pad(x.astype(np.float64), ((0, 0),) + pads + ((0, 0),))
    dxp = np.zeros_like(xp)
    dk = np.zeros(kernel.shape)
    for i, j, rs, cs in windows(x.shape, k, s, pads):
        g = dy[:, i, j, :]
        dxp[:, rs, cs, :] += np.tensordot(g, kernel, axes=([1], [3]))
        dk += np.tensordot(xp[:, rs, cs, :], g, axes=([0], [0]))
    (pt, _), (pl, _) = pads
    dx = dxp[:, pt:pt + x.shape[1], pl:pl + x.shape[2], :]
    return dx, dk, dy.sum(axis=(0, 1, 2))


def pool_forward(x, kind, k, s, padding):
    """Max or mean over the elements of each window that lie inside the image."""
    pads = paddings(x.shape, k, s, padding)
    xp = np.pad(x.astype(np.float64), ((0, 0),) + pads + ((0, 0),), constant_values=np.nan)
    y = np.zeros((x.shape[0],) + output_hw(x.shape, k, s, pads) + (x.shape[3],))
    for i, j, rs, cs in windows(x.shape, k, s, pads):
        window = xp[:, rs, cs, :]
        y[:, i, j, :] = np.nanmax(window, axis=(1, 2)) if kind == "max" else \
            np.nanmean(window, axis=(1, 2))
    return y


def pool_backward(x, dy, kind, k, s, padding):
    pads = paddings(x.shape, k, s, padding)
    xp = np.pad(x.astype(np.float64), ((0, 0),) + pads + ((0, 0),), constant_values=np.nan)
    dxp = np.zeros_like(xp)
    n, c = x.shape[0], x.shape[3]
    for i, j, rs, cs in windows(x.shape, k, s, pads):
        window = xp[:, rs, cs, :]
        g = dy[:, i, j, :]
        if kind == "max":
            flat = np.where(np.isnan(window), -np.inf, window).reshape(n, -1, c)
            hit = np.zeros_like(flat)
            np.put_along_axis(hit, flat.argmax(axis=1)[:, None, :], 1.0, axis=1)
            dxp[:, rs, cs, :] += hit.reshape(window.shape) * g[:, None, None, :]
        else:
            inside = ~np.isnan(window)
            dxp[:, rs, cs, :] += inside * (g / inside.sum(axis=(1, 2)))[:, None, None, :]
    (pt, _), (pl, _) = pads
    return dxp[:, pt:pt + x.shape[1], pl:pl + x.shape[2], :]


def relative_error(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-30)
