# How an op finds the mask of Embedding(mask_zero=True): the indices are the
# input of the first record of the array the op runs in, when that record is
# the masking Embedding op (recognised by the address of its cfg).  Each
# record knows its index in its array (core.pxd: Op.index), so every copy of
# the array a plan makes (per worker, per shard) reads the rows it runs.
from cpython.pycapsule cimport PyCapsule_GetPointer
from core cimport Op


# The indices (n, T; row stride *ld) that mask `op`, or NULL when mask_cfg is
# NULL or the first record is not the op it names (a layer run alone, in a
# plan of its own, has no mask); position (s, t) is masked when its index is 0
cdef inline const void* mask_indices(Op* op, const void* mask_cfg,
                                     Py_ssize_t* ld) noexcept nogil:
    cdef Op* first = op - op.index
    if mask_cfg == NULL or first.cfg != mask_cfg:
        return NULL
    ld[0] = first.in_size
    return first.x


# the cfg of the op behind `source` (an op object with a capsule), or NULL for None
cdef inline const void* op_cfg(source) except? NULL:
    if source is None:
        return NULL
    return (<Op*>PyCapsule_GetPointer(source.capsule(), "nncore.Op")).cfg
