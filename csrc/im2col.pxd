# The geometry of a 2-D convolution over NHWC samples and one im2col row,
# shared by the convolution op and the fused convolution + pooling op (convpool.pyx).
from libc.string cimport memset
from core cimport real, address


cdef enum:
    # convolutions work through their samples in groups (Op.work_group) whose
    # scratch takes about this many bytes, so that it stays in cache between the steps
    GROUP_BYTES = 1 << 19


cdef struct ConvCfg:
    Py_ssize_t H, W, C             # input sample
    Py_ssize_t OH, OW, F           # output sample
    Py_ssize_t kh, kw, sh, sw      # kernel size and strides
    Py_ssize_t pt, pl              # zero padding at the top and the left
    bint direct                    # 1x1, stride 1, no padding: x is its own im2col
    int activation                 # the epilogue's activation (epilogue.pxd), in place
    double alpha                   # its slope below 0 (leaky relu)
    void* kernel
    void* bias                     # NULL without bias


# dst (kh*kw*C) = the receptive field of output position (oh, ow) of x (H, W, C),
# zeros where it overlaps the padding
cdef inline void im2col_row(real* dst, const real* x, const ConvCfg* c, Py_ssize_t oh,
                            Py_ssize_t ow) noexcept nogil:
    cdef Py_ssize_t i, k, ih, C = c.C, row = c.kw * c.C
    cdef Py_ssize_t iw0 = ow * c.sw - c.pl
    cdef Py_ssize_t j0 = max(0, -iw0)                # kernel columns inside the image: [j0, j1)
    cdef Py_ssize_t j1 = min(c.kw, c.W - iw0)
    cdef const real* src
    for i in range(c.kh):
        ih = oh * c.sh - c.pt + i
        if ih < 0 or ih >= c.H or j1 <= j0:
            memset(dst, 0, row * sizeof(real))
        else:
            if j0 > 0:
                memset(dst, 0, j0 * C * sizeof(real))
            src = x + (ih * c.W + iw0 + j0) * C
            for k in range((j1 - j0) * C):
                dst[j0 * C + k] = src[k]
            if j1 < c.kw:
                memset(dst + j1 * C, 0, (c.kw - j1) * C * sizeof(real))
        dst += row


# x (H, W, C) += the row src (kh*kw*C) put back on the receptive field of output
# position (oh, ow), the reverse of im2col_row (entries on the padding are dropped)
cdef inline void col2im_row(real* x, const real* src, const ConvCfg* c, Py_ssize_t oh,
                            Py_ssize_t ow) noexcept nogil:
    cdef Py_ssize_t i, k, ih, C = c.C, row = c.kw * c.C
    cdef Py_ssize_t iw0 = ow * c.sw - c.pl
    cdef Py_ssize_t j0 = max(0, -iw0)
    cdef Py_ssize_t j1 = min(c.kw, c.W - iw0)
    cdef real* dst
    for i in range(c.kh):
        ih = oh * c.sh - c.pt + i
        if ih >= 0 and ih < c.H and j1 > j0:
            dst = x + (ih * c.W + iw0 + j0) * C
            for k in range((j1 - j0) * C):
                dst[k] += src[j0 * C + k]
        src += row


# c's geometry and arrays: kernel (kh, kw, C, F); bias (F,) or None; the sizes
# validated by the layer
cdef inline int set_geometry(ConvCfg* c, kernel, bias, input_hw,
                             output_hw, strides, padding_top_left, int activation, double alpha) except -1:
    c.kh, c.kw, c.C, c.F = kernel.shape
    c.H, c.W = input_hw
    c.OH, c.OW = output_hw
    c.sh, c.sw = strides
    c.pt, c.pl = padding_top_left
    c.activation = activation
    c.alpha = alpha
    c.kernel = address(kernel)
    c.bias = address(bias) if bias is not None else NULL
    return 0
