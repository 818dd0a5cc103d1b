"""Row-major matrix products through BLAS ``gemm``.

``matmul_inplace`` is the one product every other kernel uses. It computes

    C <- alpha * op(A) @ op(B) + beta * C

for C-contiguous 2-D arrays, where ``op(M)`` is ``M`` or ``M.T``. Large products
go to the BLAS ``?gemm`` that NumPy-in-Numba also uses (``scipy.linalg.cython_blas``,
reached through Numba's own ``numba_xxgemm`` helper), so ``alpha`` and ``beta``
are available: the plain SGD update is a single gemm with ``beta = 1 - lr*l2``
and ``alpha = -lr``. OpenBLAS's small-matrix kernels beat hand-written Numba
loops even for one sample through a 64-32 layer (measured: 76 ns against 158 ns
for ``A @ W``); the one exception kept is the input delta of one sample
through a narrow layer, a handful of short dot products.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.linalg import ensure_blas

from ..config import jit
from .dtypes import like

ensure_blas()

# BLAS ``trans`` arguments: the characters "t" and "n"
TRANSPOSE = ord("t")
NO_TRANSPOSE = ord("n")

#: ``A @ B.T`` with fewer rows than this and at most ``SMALL_PRODUCT``
#: multiply-adds runs as dot products, not BLAS (measured faster).
DOT_ROWS = 4
SMALL_PRODUCT = 2048

#: OpenBLAS (SkylakeX kernels and later) runs a product of at most this many
#: multiply-adds through its small-matrix kernels, without packing the operands;
#: just above, its packed path is much slower, so products up to twice this
#: size run as two halves (:func:`gemm_inplace`). Measured, halves against one
#: call: 0.70x the time for 200x64x100 (the digits at batch 200), 0.60x for its
#: weight gradient (64x100 over 200 rows), 0.80x for 32x256x128 (MNIST-shaped
#: at batch 32), 0.69x for 256x64x100; but 1.12x for 128x256x128, which is why
#: larger products stay whole.
SMALL_KERNEL_WORK = 1_000_000

#: ``A @ B.T`` with ``B`` of at most ``NARROW_COLUMNS`` columns and
#: ``NARROW_ROWS`` rows (the input delta through an output layer of a few
#: classes) runs as ``A @ C`` with ``C`` a copy of ``B.T``: OpenBLAS's kernels
#: for a transposed narrow operand are slow. Measured, copy and product against
#: the transposed product (``m`` rows of ``A``, ``B`` of shape ``(n, k)``): 0.56x
#: the time at m=16 k=10 n=32, 0.60x at m=100 k=10 n=100, 0.68x at m=128 k=10
#: n=128, 1.03x at m=256 k=10 n=1024, 1.78x at m=128 k=128 n=256.
NARROW_COLUMNS = 16
NARROW_ROWS = 256
#: Scratch elements :func:`matmul_bt_inplace` needs for the copy.
TRANSPOSE_SCRATCH = NARROW_COLUMNS * NARROW_ROWS


@intrinsic
def _xgemm(typingctx, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """Column-major BLAS ``?gemm`` on array data pointers (Fortran argument order)."""
    if not isinstance(c, types.Array):
        return None
    dtype = c.dtype
    if dtype not in (types.float32, types.float64):
        return None
    kind = ord("s" if dtype == types.float32 else "d")
    sig = types.void(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)

    def codegen(context, builder, signature, args):
        (ta, tb, m_, n_, k_, alpha_, a_, lda_, b_, ldb_, beta_, c_, ldc_) = args
        argtys = signature.args
        char = ir.IntType(8)
        intp = context.get_value_type(types.intp)
        voidp = cgutils.voidptr_t
        fnty = ir.FunctionType(
            ir.IntType(32),
            [char, char, char, intp, intp, intp, voidp, voidp, intp, voidp, intp,
             voidp, voidp, intp],
        )
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")

        def as_intp(value, ty):
            return context.cast(builder, value, ty, types.intp)

        def as_char(value, ty):
            return builder.trunc(as_intp(value, ty), char)

        def data(value, ty):
            array = context.make_array(ty)(context, builder, value)
            return builder.bitcast(array.data, voidp)

        def slot(value, ty):
            ptr = cgutils.alloca_once_value(
                builder, context.cast(builder, value, ty, dtype))
            return builder.bitcast(ptr, voidp)

        builder.call(fn, [
            ir.Constant(char, kind),
            as_char(ta, argtys[0]), as_char(tb, argtys[1]),
            as_intp(m_, argtys[2]), as_intp(n_, argtys[3]), as_intp(k_, argtys[4]),
            slot(alpha_, argtys[5]), data(a_, argtys[6]), as_intp(lda_, argtys[7]),
            data(b_, argtys[8]), as_intp(ldb_, argtys[9]),
            slot(beta_, argtys[10]), data(c_, argtys[11]), as_intp(ldc_, argtys[12]),
        ])
        return context.get_dummy_value()

    return sig, codegen


@jit
def gemm_inplace(trans_a, trans_b, alpha, A, B, beta, C):
    """Overwrite ``C`` with ``alpha * op(A) @ op(B) + beta * C`` through BLAS.

    A product of between ``SMALL_KERNEL_WORK`` and twice as many multiply-adds
    runs as two halves: the rows of ``C`` in two, or for ``A.T @ B`` the sum over
    ``k`` in two (the second half added with ``beta = 1``).

    Parameters
    ----------
    trans_a, trans_b : bool
        Use ``A.T`` (``B.T``) instead of ``A`` (``B``).
    alpha, beta : float
    A : ndarray, shape (m, k), or (k, m) when ``trans_a``; C-contiguous
    B : ndarray, shape (k, n), or (n, k) when ``trans_b``; C-contiguous
    C : ndarray, shape (m, n); C-contiguous, written in place
    """
    m, n = C.shape
    k = A.shape[0] if trans_a else A.shape[1]
    if SMALL_KERNEL_WORK < m * n * k <= 2 * SMALL_KERNEL_WORK:
        if not trans_a and m >= 2:
            half = m // 2
            _gemm(False, trans_b, alpha, A[:half], B, beta, C[:half])
            _gemm(False, trans_b, alpha, A[half:], B, beta, C[half:])
            return
        if trans_a and not trans_b and k >= 2:
            half = k // 2
            _gemm(True, False, alpha, A[:half], B[:half], beta, C)
            _gemm(True, False, alpha, A[half:], B[half:], 1.0, C)
            return
    _gemm(trans_a, trans_b, alpha, A, B, beta, C)


@jit
def _gemm(trans_a, trans_b, alpha, A, B, beta, C):
    """:func:`gemm_inplace` as one BLAS call."""
    m, n = C.shape
    k = A.shape[0] if trans_a else A.shape[1]
    # A row-major matrix is the column-major transpose, so C.T = op(B).T @ op(A).T
    # is computed by a column-major gemm with the operands swapped.
    _xgemm(TRANSPOSE if trans_b else NO_TRANSPOSE, TRANSPOSE if trans_a else NO_TRANSPOSE,
           n, m, k, alpha, B, max(B.shape[1], 1), A, max(A.shape[1], 1),
           beta, C, max(n, 1))


@jit
def dot_rows_inplace(alpha, A, B, beta, C):
    """``C <- alpha * A @ B.T + beta * C`` as dot products, for a few rows of ``A``.

    Shapes: ``A`` (m, k), ``B`` (n, k), ``C`` (m, n). Used for the input delta
    of a single sample, where it beats a BLAS call.
    """
    m, n = C.shape
    inner = A.shape[1]
    scale = like(alpha, C)
    factor = like(beta, C)
    for i in range(m):
        for p in range(n):
            s = like(0.0, C)
            for j in range(inner):
                s += A[i, j] * B[p, j]
            C[i, p] = scale * s + (factor * C[i, p] if beta != 0.0 else like(0.0, C))


@jit
def matmul_inplace(trans_a, trans_b, alpha, A, B, beta, C):
    """Overwrite ``C`` with ``alpha * op(A) @ op(B) + beta * C``.

    Shapes as in :func:`gemm_inplace`. Everything goes to BLAS, whose
    small-matrix kernels beat hand-written loops down to a single sample, but
    ``A @ B.T`` for fewer than ``DOT_ROWS`` rows of at most ``SMALL_PRODUCT``
    multiply-adds, which runs as dot products.
    """
    m, n = C.shape
    k = A.shape[0] if trans_a else A.shape[1]
    if trans_b and not trans_a and m < DOT_ROWS and m * n * k <= SMALL_PRODUCT:
        dot_rows_inplace(alpha, A, B, beta, C)
    else:
        gemm_inplace(trans_a, trans_b, alpha, A, B, beta, C)


@jit
def matmul_bt_inplace(A, B, C, spare):
    """Overwrite ``C`` with ``A @ B.T``, through a copy of ``B.T`` when ``B`` is narrow.

    Parameters
    ----------
    A : ndarray, shape (m, k); C-contiguous
    B : ndarray, shape (n, k); C-contiguous
    C : ndarray, shape (m, n); C-contiguous, written in place
    spare : ndarray, shape (>= TRANSPOSE_SCRATCH,)
        Scratch space for the copy (see ``NARROW_COLUMNS``).
    """
    m = C.shape[0]
    n, k = B.shape
    if m >= DOT_ROWS and k <= NARROW_COLUMNS and n <= NARROW_ROWS:
        BT = spare[:k * n].reshape((k, n))
        for i in range(n):
            for j in range(k):
                BT[j, i] = B[i, j]
        gemm_inplace(False, False, 1.0, A, BT, 0.0, C)
    else:
        matmul_inplace(False, True, 1.0, A, B, 0.0, C)
