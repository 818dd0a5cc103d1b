"""An exponential that compiles to vector instructions.

``math.exp`` compiles to a call into the C library, one element at a time,
and keeps every loop around it scalar: the softmax loss of a 100 x 10 batch
took 7.3 microseconds with it and takes 2.7 with this one. :func:`exp` is
straight-line arithmetic, so LLVM vectorises the loops that call it:

    exp(x) = 2^k exp(r),  k = round(x / ln 2),  r = x - k ln 2,  |r| <= ln 2 / 2

with ``k ln 2`` taken in two parts (Cody and Waite: the high part has enough
trailing zero bits for ``k * LN2_HI`` to be exact), ``exp(r)`` from its
Taylor polynomial of degree 13 (truncation below 2e-18 relative), and ``2^k``
as ``2^(k >> 1) * 2^(k - (k >> 1))``, two floats built from their exponent
bits, so that results far into the subnormals and up to overflow come out
right. Measured against NumPy: within 2 units in the last place everywhere
(tests/test_gradients.py). ``nan`` gives ``nan``, ``inf`` gives ``inf`` and
``-inf`` gives 0.

It is compiled with fused multiply-add as its only fast-math flag:
re-association would undo the two-part reduction.
"""

import math

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ..config import jit

LOG2E = 1.4426950408889634
LN2_HI = 6.93147180369123816490e-01    # 0x3fe62e42fee00000: 32 trailing zero bits
LN2_LO = 1.90821492927058770002e-10
#: Inputs are clamped to +-CLAMP (beyond it the result is 0 or inf anyway), so
#: that both halves of ``k`` stay normal exponents.
CLAMP = 1400.0
EXPONENT_BIAS = 1023
MANTISSA_BITS = 52


@intrinsic
def _float_from_bits(typingctx, bits):
    """The float64 whose IEEE-754 bits are the int64 ``bits``."""
    if bits != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@jit(inline="always")
def _power_of_two(k):
    """``2.0 ** k`` for ``-1022 <= k <= 1023``."""
    return _float_from_bits((k + EXPONENT_BIAS) << MANTISSA_BITS)


@jit(fastmath={"contract"})
def exp(x):
    """``e ** x`` in float64, vectorisable (see the module docstring)."""
    xc = x if x > -CLAMP else -CLAMP       # nan goes to -CLAMP here, back at the end
    xc = xc if xc < CLAMP else CLAMP
    kf = math.floor(xc * LOG2E + 0.5)
    r = (xc - kf * LN2_HI) - kf * LN2_LO
    # Taylor coefficients 1/n!, n = 0..13, evaluated in Estrin's scheme (pairs,
    # then powers r^2, r^4, r^8): a shallow dependency chain
    r2 = r * r
    r4 = r2 * r2
    r8 = r4 * r4
    p01 = 1.0 + r
    p23 = 0.5 + r * (1.0 / 6.0)
    p45 = 1.0 / 24.0 + r * (1.0 / 120.0)
    p67 = 1.0 / 720.0 + r * (1.0 / 5040.0)
    p89 = 1.0 / 40320.0 + r * (1.0 / 362880.0)
    p1011 = 1.0 / 3628800.0 + r * (1.0 / 39916800.0)
    p1213 = 1.0 / 479001600.0 + r * (1.0 / 6227020800.0)
    p03 = p01 + r2 * p23
    p47 = p45 + r2 * p67
    p811 = p89 + r2 * p1011
    p07 = p03 + r4 * p47
    p813 = p811 + r4 * p1213
    p = p07 + r8 * p813
    k = int(kf)
    half = k >> 1
    result = p * _power_of_two(half) * _power_of_two(k - half)
    return result if x == x else x
