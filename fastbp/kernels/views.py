"""Cheap views into flat buffers: :func:`block` (2-D) and :func:`segment` (1-D).

``buf[offset:offset + rows * cols].reshape((rows, cols))`` costs tens of
nanoseconds in Numba: a slice, a generic reshape, and atomic reference counting
of the buffer's memory for every view taken. The training loop takes a dozen
views per step, which with online SGD on small layers was as long as the
arithmetic. These intrinsics build the same C-contiguous view directly from
the buffer's data pointer, as a *borrowed* view: it holds no reference to the
buffer's memory, so it costs no reference counting either. They are only for
views that live inside one kernel call while the buffer, an argument of that
call, is alive; never return one. Nothing is checked: kernels trust their inputs.
"""

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array


def _borrowed_view(context, builder, buf_type, buf, offset, shape):
    """LLVM value of a C-contiguous array of ``shape`` at ``buf.data + offset``."""
    intp = types.intp
    source = make_array(buf_type)(context, builder, buf)
    view_type = types.Array(buf_type.dtype, len(shape), "C")
    view = make_array(view_type)(context, builder)
    itemsize = context.get_constant(intp, context.get_abi_sizeof(
        context.get_data_type(buf_type.dtype)))
    strides = [itemsize]
    for extent in reversed(shape[1:]):
        strides.insert(0, builder.mul(strides[0], extent))
    populate_array(view, data=cgutils.gep_inbounds(builder, source.data, offset),
                   shape=list(shape), strides=strides, itemsize=itemsize, meminfo=None)
    return view._getvalue()


def _is_flat(buf):
    return isinstance(buf, types.Array) and buf.ndim == 1


def _flat_view_codegen(context, builder, signature, args):
    """Codegen of ``(buf, offset, *shape)`` intrinsics: a view of ``buf`` at ``offset``."""
    ints = [context.cast(builder, value, ty, types.intp)
            for value, ty in zip(args[1:], signature.args[1:])]
    return _borrowed_view(context, builder, signature.args[0], args[0], ints[0], ints[1:])


@intrinsic
def block(typingctx, buf, offset, rows, cols):
    """The ``(rows, cols)`` view of ``buf[offset:offset + rows * cols]``."""
    if not _is_flat(buf):
        return None
    return types.Array(buf.dtype, 2, "C")(buf, offset, rows, cols), _flat_view_codegen


@intrinsic
def segment(typingctx, buf, offset, length):
    """The view ``buf[offset:offset + length]``."""
    if not _is_flat(buf):
        return None
    return types.Array(buf.dtype, 1, "C")(buf, offset, length), _flat_view_codegen


@intrinsic
def borrow(typingctx, arr):
    """``arr`` itself as a borrowed view (no memory-manager reference).

    Passing arrays to a compiled function costs an atomic increment and
    decrement of their reference count per array per call; a kernel that
    calls helpers once per mini-batch borrows its buffers once at the top
    instead, so those calls cost nothing extra.
    """
    if not isinstance(arr, types.Array):
        return None
    sig = arr(arr)

    def codegen(context, builder, signature, args):
        source = make_array(signature.args[0])(context, builder, args[0])
        view = make_array(signature.return_type)(context, builder)
        populate_array(view, data=source.data,
                       shape=cgutils.unpack_tuple(builder, source.shape),
                       strides=cgutils.unpack_tuple(builder, source.strides),
                       itemsize=source.itemsize, meminfo=None)
        return view._getvalue()

    return sig, codegen


@intrinsic
def rows_of(typingctx, matrix, start, count):
    """The view ``matrix[start:start + count]`` of a C-contiguous 2-D array."""
    if not (isinstance(matrix, types.Array) and matrix.ndim == 2 and matrix.layout == "C"):
        return None
    sig = types.Array(matrix.dtype, 2, "C")(matrix, start, count)

    def codegen(context, builder, signature, args):
        source = make_array(signature.args[0])(context, builder, args[0])
        start_, count_ = [context.cast(builder, value, ty, types.intp)
                          for value, ty in zip(args[1:], signature.args[1:])]
        cols = cgutils.unpack_tuple(builder, source.shape)[1]
        flat_type = types.Array(matrix.dtype, 1, "C")
        flat = make_array(flat_type)(context, builder)
        populate_array(flat, data=source.data, shape=[builder.mul(start_, cols)],
                       strides=[source.itemsize], itemsize=source.itemsize, meminfo=None)
        return _borrowed_view(context, builder, flat_type, flat._getvalue(),
                              builder.mul(start_, cols), [count_, cols])

    return sig, codegen
