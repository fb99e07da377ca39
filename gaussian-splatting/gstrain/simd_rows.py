"""Moving NL-lane vectors of gstrain/simd.py between memory and registers other than as NL consecutive values:
strided lanes (one row of an (N, k) array a lane: the per-Gaussian kernels hold one Gaussian a lane), one row
of a 2-D array masked at its end, and NL x NL transposes between a row-major block and column vectors.  Nothing
past the rows, columns or count given is touched: LLVM's masked load/gather/scatter, and masked stores only where
a vector does not fit whole (plain stores elsewhere: masked stores are slow on AVX2, _store_vectors)."""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .simd import _F, _I32, _VF, _VI, _VM, NL, _broadcast, _check_array, f32x8, i32x8


# Per-Gaussian kernels hold NL Gaussians in a vector, one lane each: their parameters are read from rows of
# (N, k) arrays (flattened: lane l at base + l * stride) and their results written back the same way.
def _lane_ptrs(context, builder, aty, arr, base, stride, elty):
    """<NL x ptr>: &arr[base + l * stride] for l in 0..NL-1 (arr 1-D, C-contiguous, 4-byte elements)."""
    a = context.make_array(aty)(context, builder, arr)
    i64 = ir.IntType(64)
    p0 = builder.ptrtoint(builder.gep(a.data, [base]), i64)
    vi64 = ir.VectorType(i64, NL)
    st = builder.mul(builder.sext(stride, i64) if stride.type.width < 64 else stride, ir.Constant(i64, 4))
    lanes = builder.mul(_broadcast(builder, st, vi64), ir.Constant(vi64, list(range(NL))))
    addr = builder.add(_broadcast(builder, p0, vi64), lanes)
    return builder.inttoptr(addr, ir.VectorType(elty.as_pointer(), NL))


def _lane_mask(builder, cnt):
    """<NL x i1>: lanes l < cnt."""
    c = builder.trunc(cnt, _I32) if cnt.type.width > 32 else (builder.sext(cnt, _I32) if cnt.type.width < 32
                                                               else cnt)
    return builder.icmp_signed("<", ir.Constant(_VI, list(range(NL))), _broadcast(builder, c, _VI))


def _strided_ok(arr, dtype, base, stride, cnt):
    return _check_array(arr, dtype) and all(isinstance(t, types.Integer) for t in (base, stride, cnt))


def _gather_codegen(vty, elty):
    def codegen(context, builder, sig, args):
        arr, base, stride, cnt = args
        ptrs = _lane_ptrs(context, builder, sig.args[0], arr, base, stride, elty)
        fnty = ir.FunctionType(vty, [ptrs.type, _I32, _VM, vty])
        name = f"llvm.masked.gather.v{NL}{'f32' if elty == _F else 'i32'}.v{NL}p0"
        fn = cgutils.get_or_insert_function(builder.module, fnty, name)
        return builder.call(fn, [ptrs, _I32(4), _lane_mask(builder, cnt), ir.Constant(vty, None)])
    return codegen


@intrinsic
def gather(typingctx, arr, base, stride, cnt):
    """Lane l < cnt: arr[base + l * stride], the other lanes 0 (arr: C-contiguous 1-D float32; no bounds
    check)."""
    if not _strided_ok(arr, types.float32, base, stride, cnt):
        return None
    return f32x8(arr, base, stride, cnt), _gather_codegen(_VF, _F)


@intrinsic
def igather(typingctx, arr, base, stride, cnt):
    """gather for a C-contiguous 1-D int32 array."""
    if not _strided_ok(arr, types.int32, base, stride, cnt):
        return None
    return i32x8(arr, base, stride, cnt), _gather_codegen(_VI, _I32)


def _scatter_codegen(vty, elty):
    def codegen(context, builder, sig, args):
        arr, base, stride, v, cnt = args
        ptrs = _lane_ptrs(context, builder, sig.args[0], arr, base, stride, elty)
        fnty = ir.FunctionType(ir.VoidType(), [vty, ptrs.type, _I32, _VM])
        name = f"llvm.masked.scatter.v{NL}{'f32' if elty == _F else 'i32'}.v{NL}p0"
        fn = cgutils.get_or_insert_function(builder.module, fnty, name)
        builder.call(fn, [v, ptrs, _I32(4), _lane_mask(builder, cnt)])
        return context.get_dummy_value()
    return codegen


@intrinsic
def scatter(typingctx, arr, base, stride, v, cnt):
    """arr[base + l * stride] = lane l of v for l < cnt (arr: C-contiguous 1-D float32; no bounds check)."""
    if not (_strided_ok(arr, types.float32, base, stride, cnt) and v == f32x8):
        return None
    return types.void(arr, base, stride, v, cnt), _scatter_codegen(_VF, _F)


@intrinsic
def iscatter(typingctx, arr, base, stride, v, cnt):
    """scatter for a C-contiguous 1-D int32 array and an i32x8."""
    if not (_strided_ok(arr, types.int32, base, stride, cnt) and v == i32x8):
        return None
    return types.void(arr, base, stride, v, cnt), _scatter_codegen(_VI, _I32)


def _transpose(builder, rows):
    """The NL x NL transpose of NL vectors (out[j] lane g = rows[g] lane j): log2(NL) rounds of block swaps,
    two shuffles per pair of vectors a round."""
    rows = list(rows)
    s = NL // 2
    while s >= 1:
        lo = [i if i & s == 0 else NL + i - s for i in range(NL)]
        hi = [i + s if i & s == 0 else NL + i for i in range(NL)]
        for i in range(NL):
            if i & s == 0:
                a, b = rows[i], rows[i + s]
                rows[i] = builder.shuffle_vector(a, b, ir.Constant(_VI, lo))
                rows[i + s] = builder.shuffle_vector(a, b, ir.Constant(_VI, hi))
        s //= 2
    return rows


def _store_vectors(builder, vs, ptrs, masks, whole):
    """Each v of vs at its pointer: plain stores when `whole` (an i1: every lane of every vector inside), else
    the masked stores.  AVX2 has no cheap masked store (vmaskmovps to memory is microcoded on AMD's Zen: a row
    gather 1.6x slower than with plain stores, NOTES); the branch goes the same way for every row of a kernel's
    array, so it is always predicted."""
    fnty = ir.FunctionType(ir.VoidType(), [_VF, _VF.as_pointer(), _I32, _VM])
    fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.masked.store.v{NL}f32.p0")
    with builder.if_else(whole, likely=True) as (plain, masked):
        with plain:
            for v, p in zip(vs, ptrs, strict=True):
                builder.store(v, p, align=4)
        with masked:
            for v, p, m in zip(vs, ptrs, masks, strict=True):
                builder.call(fn, [v, p, _I32(4), m])


def _masked_rows_args(context, builder, sig, args, arr_pos):
    """Pointers to rows g of the tile (arr[base + g * stride + col0 ...]), their lane masks (lanes
    col0 + j < ncols of rows g < cnt) and whether every lane of every row is inside (an i1)."""
    aty = sig.args[arr_pos]
    arr, base, stride, col0, ncols, cnt = args[arr_pos:arr_pos + 6]
    a = context.make_array(aty)(context, builder, arr)
    i64 = ir.IntType(64)

    def as64(v):
        return builder.sext(v, i64) if v.type.width < 64 else v
    base, stride, col0, ncols, cnt = (as64(v) for v in (base, stride, col0, ncols, cnt))
    colmask = _lane_mask(builder, builder.sub(ncols, col0))
    none = ir.Constant(_VM, [0] * NL)
    ptrs, masks = [], []
    for g in range(NL):
        off = builder.add(builder.add(base, builder.mul(stride, ir.Constant(i64, g))), col0)
        ptrs.append(builder.bitcast(builder.gep(a.data, [off]), _VF.as_pointer()))
        live = builder.icmp_signed("<", ir.Constant(i64, g), cnt)
        masks.append(builder.select(live, colmask, none))
    whole = builder.and_(builder.icmp_signed(">=", builder.sub(ncols, col0), ir.Constant(i64, NL)),
                         builder.icmp_signed(">=", cnt, ir.Constant(i64, NL)))
    return ptrs, masks, whole


def _tile_ok(arr, base, stride, col0, ncols, cnt):
    return _check_array(arr, types.float32) and all(isinstance(t, types.Integer)
                                                    for t in (base, stride, col0, ncols, cnt))


@intrinsic
def transpose_in(typingctx, arr, base, stride, col0, ncols, cnt, buf, off):
    """buf[off + j * NL + g] = arr[base + g * stride + col0 + j] for the NL x NL tile of rows g < cnt and
    columns col0 + j < ncols (0 elsewhere): NL rows of a row-major block read as vectors and turned into its
    columns, lane g of column j being row g's (masked loads: nothing past the rows' ends is read)."""
    if not (_tile_ok(arr, base, stride, col0, ncols, cnt) and _check_array(buf, types.float32)
            and isinstance(off, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ptrs, masks, _ = _masked_rows_args(context, builder, sig, args, 0)
        fnty = ir.FunctionType(_VF, [_VF.as_pointer(), _I32, _VM, _VF])
        fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.masked.load.v{NL}f32.p0")
        zero = ir.Constant(_VF, [0.0] * NL)
        rows = [builder.call(fn, [p, _I32(4), m, zero]) for p, m in zip(ptrs, masks, strict=True)]
        cols = _transpose(builder, rows)
        b = context.make_array(sig.args[6])(context, builder, args[6])
        o = args[7]
        for j in range(NL):
            idx = builder.add(o, ir.Constant(o.type, j * NL))
            builder.store(cols[j], builder.bitcast(builder.gep(b.data, [idx]), _VF.as_pointer()), align=4)
        return context.get_dummy_value()
    return types.void(arr, base, stride, col0, ncols, cnt, buf, off), codegen


@intrinsic
def transpose_out(typingctx, buf, off, arr, base, stride, col0, ncols, cnt):
    """transpose_in's inverse: arr[base + g * stride + col0 + j] = buf[off + j * NL + g] for rows g < cnt and
    columns col0 + j < ncols (nothing else is written; plain stores when all NL rows and columns are inside)."""
    if not (_check_array(buf, types.float32) and isinstance(off, types.Integer)
            and _tile_ok(arr, base, stride, col0, ncols, cnt)):
        return None

    def codegen(context, builder, sig, args):
        b = context.make_array(sig.args[0])(context, builder, args[0])
        o = args[1]
        cols = [builder.load(builder.bitcast(builder.gep(b.data, [builder.add(o, ir.Constant(o.type, j * NL))]),
                                             _VF.as_pointer()), align=4) for j in range(NL)]
        rows = _transpose(builder, cols)
        ptrs, masks, whole = _masked_rows_args(context, builder, sig, args, 2)
        _store_vectors(builder, rows, ptrs, masks, whole)
        return context.get_dummy_value()
    return types.void(buf, off, arr, base, stride, col0, ncols, cnt), codegen


def _row_ptr_mask(context, builder, sig, args):
    """&arr[row, col0] as a vector pointer, the mask of the lanes before the row's end, and whether all NL are
    (args: arr, row, col0)."""
    a = context.make_array(sig.args[0])(context, builder, args[0])
    ncols = builder.extract_value(a.shape, 1)
    r = context.cast(builder, args[1], sig.args[1], types.intp)
    c = context.cast(builder, args[2], sig.args[2], types.intp)
    ptr = builder.gep(a.data, [builder.add(builder.mul(r, ncols), c)])
    room = builder.sub(ncols, c)
    whole = builder.icmp_signed(">=", room, ir.Constant(room.type, NL))
    return builder.bitcast(ptr, _VF.as_pointer()), _lane_mask(builder, room), whole


def _row_ok(arr, row, col0):
    return (isinstance(arr, types.Array) and arr.ndim == 2 and arr.dtype == types.float32 and arr.layout == "C"
            and isinstance(row, types.Integer) and isinstance(col0, types.Integer))


@intrinsic
def row_load(typingctx, arr, row, col0):
    """arr[row, col0:col0 + NL] of a C-contiguous 2-D float32 array, lanes past its last column 0 (a masked
    load: nothing past the row is read; no bounds check on row)."""
    if not _row_ok(arr, row, col0):
        return None

    def codegen(context, builder, sig, args):
        ptr, mask, _ = _row_ptr_mask(context, builder, sig, args)
        fnty = ir.FunctionType(_VF, [_VF.as_pointer(), _I32, _VM, _VF])
        fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.masked.load.v{NL}f32.p0")
        return builder.call(fn, [ptr, _I32(4), mask, ir.Constant(_VF, [0.0] * NL)])
    return f32x8(arr, row, col0), codegen


@intrinsic
def row_store(typingctx, arr, row, col0, v):
    """arr[row, col0:col0 + NL] = v's lanes, those past the array's last column left out (a plain store when
    the row has room for all NL, else a masked one: nothing past the row is written; no bounds check on row)."""
    if not (_row_ok(arr, row, col0) and v == f32x8):
        return None

    def codegen(context, builder, sig, args):
        ptr, mask, whole = _row_ptr_mask(context, builder, sig, args)
        _store_vectors(builder, [args[3]], [ptr], [mask], whole)
        return context.get_dummy_value()
    return types.void(arr, row, col0, v), codegen
