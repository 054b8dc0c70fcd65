# A small, fast, seedable random generator (xoshiro256**) for shuffling and
# dropout masks inside nogil loops.  The state is 4 uint64 words that live
# in a NumPy array owned by Python, so runs are reproducible from a seed.
from libc.stdint cimport uint64_t, int64_t


cdef inline uint64_t _rotl(uint64_t x, int k) noexcept nogil:
    return (x << k) | (x >> (64 - k))


cdef inline uint64_t next_u64(uint64_t* s) noexcept nogil:
    cdef uint64_t result = _rotl(s[1] * 5, 7) * 9
    cdef uint64_t t = s[1] << 17
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = _rotl(s[3], 45)
    return result


# uniform double in [0, 1)
cdef inline double next_double(uint64_t* s) noexcept nogil:
    return (next_u64(s) >> 11) * (1.0 / 9007199254740992.0)


# state (4) from one seed word, through splitmix64
cdef inline void seed_state(uint64_t* s, uint64_t seed) noexcept nogil:
    cdef int i
    cdef uint64_t z
    for i in range(4):
        seed += 0x9E3779B97F4A7C15ULL
        z = seed
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL
        s[i] = z ^ (z >> 31)


# Fisher-Yates shuffle of a (n) in place
cdef inline void shuffle(int64_t* a, Py_ssize_t n, uint64_t* s) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef int64_t t
    for i in range(n - 1, 0, -1):
        j = <Py_ssize_t>(next_u64(s) % <uint64_t>(i + 1))
        t = a[i]
        a[i] = a[j]
        a[j] = t


# order (n) = a random permutation of 0..n-1 drawn from s
cdef inline void new_order(int64_t* order, Py_ssize_t n, uint64_t* s) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        order[i] = i
    shuffle(order, n, s)


# s (4) = the generator of sample r of a batch whose key is `key`
cdef inline void sample_state(uint64_t* s, uint64_t key, Py_ssize_t r) noexcept nogil:
    seed_state(s, key + <uint64_t>r * 0xD1B54A32D192ED03ULL)
