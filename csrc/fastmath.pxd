# Float32 exp, sigmoid and tanh written as straight-line arithmetic, so that
# loops calling them vectorize (a call into libm does not).  Accurate to a
# few units in the last place of float32; float64 code keeps libm's.  Every
# build rounds them alike (plain IEEE operations, no contraction).
cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    /* e^x: x = k ln2 + r, |r| <= ln2/2, e^r by its Taylor series to r^7,
       2^k put in the exponent bits; x is clamped to [-87, 88] */
    static inline float nncore_expf(float x) {
        float k, r, p, scale;
        int32_t bits;
        x = x < -87.0f ? -87.0f : x;
        x = x > 88.0f ? 88.0f : x;
        k = (x * 1.44269504f + 12582912.0f) - 12582912.0f;   /* round to nearest */
        r = (x - k * 0.693145752f) - k * 1.42860677e-06f;
        p = 1.0f / 5040.0f;
        p = p * r + 1.0f / 720.0f;
        p = p * r + 1.0f / 120.0f;
        p = p * r + 1.0f / 24.0f;
        p = p * r + 1.0f / 6.0f;
        p = p * r + 0.5f;
        p = p * r + 1.0f;
        p = p * r + 1.0f;
        bits = ((int32_t)k + 127) << 23;
        memcpy(&scale, &bits, sizeof scale);
        return p * scale;
    }
    static inline float nncore_sigmoidf(float x) {
        return 1.0f / (1.0f + nncore_expf(-x));
    }
    /* tanh: an odd Taylor polynomial near 0, 1 - 2 / (e^2|x| + 1) elsewhere */
    static inline float nncore_tanhf(float x) {
        float a = x < 0 ? -x : x, a2 = a * a;
        float small = a * (1.0f + a2 * (-1.0f / 3.0f + a2 * (2.0f / 15.0f
                      + a2 * (-17.0f / 315.0f))));
        float large = 1.0f - 2.0f / (nncore_expf(2.0f * a) + 1.0f);
        float t = a < 0.0625f ? small : large;
        return x < 0 ? -t : t;
    }
    """
    float fast_exp "nncore_expf"(float x) noexcept nogil
    float fast_sigmoid "nncore_sigmoidf"(float x) noexcept nogil
    float fast_tanh "nncore_tanhf"(float x) noexcept nogil
