"""exp and log that numba can vectorise: the transcendental core of the compiled EM kernels.

Calls to libm's ``exp``/``log`` stop LLVM's loop vectoriser (numba has no vector math library
unless Intel's SVML runtime is installed), and an EM E-step is one exp per point and component.
These two functions are branch-free polynomial evaluations plus integer bit manipulation, so a
loop over points compiles to SIMD code:

- ``exp(x)`` for x <= 0: x = k ln2 + r with k = round(x / ln2), |r| <= ln2 / 2 (ln2 split into
  a high and a low part, Cody-Waite), exp(r) by its degree-11 Taylor polynomial (truncation
  error below r^12 / 12! < 2e-15 relative), times 2^k built from the exponent bits. Arguments
  below -708 are clamped (the result, ~3e-308, is far below anything that matters here).
- ``log(s)`` for normal s > 0: s = 2^e m with m in [sqrt(1/2), sqrt(2)) (found by integer
  arithmetic on the bits, without a branch), log m = 2 atanh(z),
  z = (m - 1) / (m + 1), |z| < 0.172, by the odd series to z^17 (truncation error
  < 2 z^19 / 19 < 3e-16).

Measured error against numpy inside the kernels' loops (``FAST_FLAGS``): < 1e-13 relative for
exp on [-700, 0], < 5e-16 absolute for log.
"""

from __future__ import annotations

import math

try:
    import numba
    from numba.core import types
    from numba.extending import intrinsic

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - numba is a dependency; the torch path covers its absence
    HAVE_NUMBA = False

LOG2E = 1.4426950408889634
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
SQRT_HALF_BITS = 0x3FE6A09E667F3BCD  # the float64 bits of sqrt(1/2)
EXP_FLOOR = -708.0
# Floating-point flags of the compiled kernels ("fastmath" minus reassociation): no NaN/Inf/
# signed-zero bookkeeping, reciprocal and fused multiply-add allowed, but sums are never
# reordered. With full fastmath ("reassoc") the bits of a result depended on how LLVM inlined
# and vectorised a reduction, which differs between a kernel compiled fresh and one loaded from
# numba's cache: a Ray actor and the driver gave estimates 1e-16 apart, breaking "same seed,
# same numbers". The benchmark GMM sweep (`benchmarks/bench_gmm.py --cases sweep`,
# BENCHMARKS.md) took 3.24 s with these flags against 2.72 s with full fastmath; contraction
# is stable across compilations
# (tests/test_gmm_compiled.py::test_fresh_and_cached_kernels_give_the_same_bits).
FAST_FLAGS = frozenset({"nnan", "ninf", "nsz", "arcp", "contract", "afn"})

if HAVE_NUMBA:

    @intrinsic
    def int_bits_as_float(typingctx, value):  # pragma: no cover - compiled
        """Reinterpret the 64 bits of an int64 as a float64 (no conversion)."""
        sig = types.float64(types.int64)

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(types.float64))

        return sig, codegen

    @intrinsic
    def float_bits_as_int(typingctx, value):  # pragma: no cover - compiled
        """Reinterpret the 64 bits of a float64 as an int64 (no conversion)."""
        sig = types.int64(types.float64)

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(types.int64))

        return sig, codegen

    @numba.njit(inline="always", fastmath=set(FAST_FLAGS), cache=True)
    def exp_nonpositive(x: float) -> float:  # pragma: no cover - compiled
        """exp(x) for x <= 0 (x below -708 is clamped); vectorisable."""
        x = max(x, EXP_FLOOR)
        k = math.floor(x * LOG2E + 0.5)
        r = (x - k * LN2_HI) - k * LN2_LO
        p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6 + r * (1.0 / 24 + r * (
            1.0 / 120 + r * (1.0 / 720 + r * (1.0 / 5040 + r * (1.0 / 40320 + r * (
                1.0 / 362880 + r * (1.0 / 3628800 + r * (1.0 / 39916800)))))))))))
        return p * int_bits_as_float((numba.int64(k) + 1023) << 52)

    @numba.njit(inline="always", fastmath=set(FAST_FLAGS), cache=True)
    def log_positive(s: float) -> float:  # pragma: no cover - compiled
        """log(s) for a normal float64 s > 0; vectorisable (no branches)."""
        # subtracting the bits of sqrt(1/2) makes the exponent field count from there, so the
        # mantissa lands in [sqrt(1/2), sqrt(2)) without a comparison
        ix = float_bits_as_int(s) - SQRT_HALF_BITS
        # (reading the exponent through the bits of 2^52 + e instead of converting it looks
        # cheaper, but under fastmath the compiler folds the subtraction of 2^52 into the
        # products below and cancels catastrophically)
        e = float(ix >> 52)
        m = int_bits_as_float((ix & 0x000FFFFFFFFFFFFF) + SQRT_HALF_BITS)
        z = (m - 1.0) / (m + 1.0)
        z2 = z * z
        p = z * (2.0 + z2 * (2.0 / 3 + z2 * (2.0 / 5 + z2 * (2.0 / 7 + z2 * (2.0 / 9 + z2 * (
            2.0 / 11 + z2 * (2.0 / 13 + z2 * (2.0 / 15 + z2 * (2.0 / 17)))))))))
        return e * LN2_HI + (p + e * LN2_LO)
