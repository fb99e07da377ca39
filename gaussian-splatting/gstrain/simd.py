"""Explicit SIMD values of NL lanes for numba kernels (LLVM vector types through numba intrinsics).

NL is 16 on a CPU with AVX-512 (a strip is a whole 16-pixel tile row, one register) and 8 elsewhere
(AVX2, NEON: LLVM splits wider vectors into pairs).  The type names below say x8 whatever NL is.

Numba's auto-vectoriser leaves the compositing loops scalar (state carried from one Gaussian to the next
defeats it, and numba disables LLVM's SLP vectoriser), so the rasteriser spells the vectors out:

    v = splat(x)            f32x8 with every lane x            iota()      lanes 0, 1, ..., NL - 1
    load(a, i) / store(a, i, v)   NL consecutive float32 of a 1-D C-contiguous array from index i
    v + w, v - w, v * w, v / w    (either side may be a scalar: it is broadcast; float32 arithmetic)
    v < w, v <= w, ... -> m8      masks: m & n, m | n, ~m, any_(m), all_(m)
    vmin, vmax, select(m, v, w), hsum(v), hsum8(...), lane(v, i)
    isplat(k), iload/istore (int32), select on i32x8, comparisons of i32x8, ihmin/ihmax
    bits(m) and mask_bits(b)

gstrain/simd_math.py adds lane-wise maths (vsqrt, vfloor, vceil, vabs, vfma, vexp, vlog, to_int/to_float)
and gstrain/simd_rows.py other ways between memory and lanes:
    gather/scatter(a, base, stride, ..., cnt)   lane l at a[base + l * stride], lanes from cnt on left out
    row_load/row_store(a, row, col0)            one row of a 2-D array, masked at its end
    transpose_in/transpose_out                  NL rows of a row-major block <-> NL column vectors
The per-Gaussian kernels (project_cpu) hold one Gaussian a lane and read their parameters with gather; the
rasteriser holds one pixel a lane.

Lanes are LLVM `<NL x float>` / `<NL x i32>` / `<NL x i1>` values: AVX-512 or AVX2 registers on x86-64, pairs
of NEON/SSE registers elsewhere (LLVM legalises the width).  Floating-point ops carry the same fast-math flags as the
kernels (no reassociation, so results do not depend on how LLVM schedules them).
"""
import operator
import os

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, overload, register_model


def host_lanes():
    """16 when the CPU has AVX-512 (measured on Zen 4: forward 0.87x, backward 0.9x the time of 8 lanes),
    else 8.  GSTRAIN_SIMD_LANES=8|16 overrides it; numba's on-disk cache does not see this constant, so an
    override needs its own NUMBA_CACHE_DIR."""
    forced = os.environ.get("GSTRAIN_SIMD_LANES")
    if forced in ("8", "16"):
        return int(forced)
    try:
        import llvmlite.binding as llvm
        return 16 if llvm.get_host_cpu_features().get("avx512f") else 8
    except Exception:  # pragma: no cover - llvmlite always answers on the platforms numba supports
        return 8


NL = host_lanes()
_FLAGS = ("nnan", "ninf", "nsz", "arcp", "contract", "afn")
_F = ir.FloatType()
_I32 = ir.IntType(32)
_VF = ir.VectorType(_F, NL)
_VI = ir.VectorType(_I32, NL)
_VM = ir.VectorType(ir.IntType(1), NL)


class _LaneType(types.Type):
    def __init__(self, name):
        super().__init__(name=name)


f32x8 = _LaneType("f32x8")
i32x8 = _LaneType("i32x8")
m8 = _LaneType("m8")

@register_model(_LaneType)
class _LaneModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        llty = {"f32x8": _VF, "i32x8": _VI, "m8": _VM}[fe_type.name]
        super().__init__(dmm, fe_type, llty)


def _broadcast(builder, scalar, vty):
    undef = ir.Constant(vty, ir.Undefined)
    one = builder.insert_element(undef, scalar, ir.Constant(_I32, 0))
    return builder.shuffle_vector(one, undef, ir.Constant(ir.VectorType(_I32, NL), [0] * NL))


def _is_num(t):
    return isinstance(t, (types.Float, types.Integer))


# ----------------------------------------------------------------------------------------------- constructors
@intrinsic
def _splat(typingctx, x):
    if not isinstance(x, types.Float):
        return None

    def codegen(context, builder, sig, args):
        v = args[0]
        if v.type != _F:
            v = builder.fptrunc(v, _F) if isinstance(v.type, ir.DoubleType) else builder.fpext(v, _F)
        return _broadcast(builder, v, _VF)
    return f32x8(x), codegen


def splat(x):
    """f32x8 with every lane x (converted to float32)."""


@overload(splat, inline="always")
def _splat_ov(x):
    if _is_num(x):
        return lambda x: _splat(np.float32(x))


@intrinsic
def iota(typingctx):
    """f32x8 holding 0, 1, ..., 7."""
    def codegen(context, builder, sig, args):
        return ir.Constant(_VF, [float(i) for i in range(NL)])
    return f32x8(), codegen


@intrinsic
def _isplat(typingctx, x):
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        v = args[0]
        if v.type.width > 32:
            v = builder.trunc(v, _I32)
        elif v.type.width < 32:
            v = builder.sext(v, _I32)
        return _broadcast(builder, v, _VI)
    return i32x8(x), codegen


def isplat(x):
    """i32x8 with every lane x (truncated to int32)."""


@overload(isplat, inline="always")
def _isplat_ov(x):
    if isinstance(x, types.Integer):
        return lambda x: _isplat(x)


@intrinsic
def mask_none(typingctx):
    """An m8 with no lane set."""
    def codegen(context, builder, sig, args):
        return ir.Constant(_VM, [0] * NL)
    return m8(), codegen


# ----------------------------------------------------------------------------------------------- memory
def _lane_ptr(context, builder, aty, arr, idx, vty):
    a = context.make_array(aty)(context, builder, arr)
    return builder.bitcast(builder.gep(a.data, [idx]), vty.as_pointer())


def _check_array(arr, dtype):
    return isinstance(arr, types.Array) and arr.ndim == 1 and arr.dtype == dtype and arr.layout == "C"


@intrinsic
def load(typingctx, arr, idx):
    """arr[idx:idx + 8] of a C-contiguous 1-D float32 array (no bounds check)."""
    if not (_check_array(arr, types.float32) and isinstance(idx, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        return builder.load(_lane_ptr(context, builder, sig.args[0], args[0], args[1], _VF), align=4)
    return f32x8(arr, idx), codegen


@intrinsic
def store(typingctx, arr, idx, v):
    """arr[idx:idx + 8] = v for a C-contiguous 1-D float32 array (no bounds check)."""
    if not (_check_array(arr, types.float32) and isinstance(idx, types.Integer) and v == f32x8):
        return None

    def codegen(context, builder, sig, args):
        builder.store(args[2], _lane_ptr(context, builder, sig.args[0], args[0], args[1], _VF), align=4)
        return context.get_dummy_value()
    return types.void(arr, idx, v), codegen


@intrinsic
def iload(typingctx, arr, idx):
    """arr[idx:idx + 8] of a C-contiguous 1-D int32 array (no bounds check)."""
    if not (_check_array(arr, types.int32) and isinstance(idx, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        return builder.load(_lane_ptr(context, builder, sig.args[0], args[0], args[1], _VI), align=4)
    return i32x8(arr, idx), codegen


@intrinsic
def istore(typingctx, arr, idx, v):
    """arr[idx:idx + 8] = v for a C-contiguous 1-D int32 array (no bounds check)."""
    if not (_check_array(arr, types.int32) and isinstance(idx, types.Integer) and v == i32x8):
        return None

    def codegen(context, builder, sig, args):
        builder.store(args[2], _lane_ptr(context, builder, sig.args[0], args[0], args[1], _VI), align=4)
        return context.get_dummy_value()
    return types.void(arr, idx, v), codegen


@intrinsic
def prefetch_row(typingctx, arr, row):
    """A hint to bring row `row` of a C-contiguous 2-D float32 array into the cache (no bounds check, no fault:
    a prefetch of any address is allowed).  For rows read in an order the hardware cannot guess."""
    if not (isinstance(arr, types.Array) and arr.ndim == 2 and arr.dtype == types.float32 and arr.layout == "C"
            and isinstance(row, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        aty = sig.args[0]
        a = context.make_array(aty)(context, builder, args[0])
        ncols = builder.extract_value(a.shape, 1)
        r = context.cast(builder, args[1], sig.args[1], types.intp)
        ptr = builder.gep(a.data, [builder.mul(r, ncols)])
        i8p = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i8p, _I32, _I32, _I32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(ptr, i8p), _I32(0), _I32(3), _I32(1)])  # read, keep, data cache
        return context.get_dummy_value()
    return types.void(arr, row), codegen


# ----------------------------------------------------------------------------------------------- arithmetic
def _fbin(name):
    @intrinsic
    def op(typingctx, a, b):
        if not (a == f32x8 and b == f32x8):
            return None

        def codegen(context, builder, sig, args):
            return getattr(builder, name)(args[0], args[1], flags=_FLAGS)
        return f32x8(a, b), codegen
    return op


_fadd, _fsub, _fmul, _fdiv = _fbin("fadd"), _fbin("fsub"), _fbin("fmul"), _fbin("fdiv")


def _register_arith(pyop, fn):
    @overload(pyop, inline="always")
    def _ov(a, b):
        if a == f32x8 and b == f32x8:
            return lambda a, b: fn(a, b)
        if a == f32x8 and _is_num(b):
            return lambda a, b: fn(a, _splat(np.float32(b)))
        if _is_num(a) and b == f32x8:
            return lambda a, b: fn(_splat(np.float32(a)), b)


for _pyop, _fn in ((operator.add, _fadd), (operator.sub, _fsub), (operator.mul, _fmul),
                   (operator.truediv, _fdiv)):
    _register_arith(_pyop, _fn)


@overload(operator.neg, inline="always")
def _neg_ov(a):
    if a == f32x8:
        return lambda a: _fsub(_splat(np.float32(0.0)), a)


def _fminmax(pred):
    @intrinsic
    def op(typingctx, a, b):
        if not (a == f32x8 and b == f32x8):
            return None

        def codegen(context, builder, sig, args):
            c = builder.fcmp_ordered(pred, args[0], args[1], flags=_FLAGS)
            return builder.select(c, args[0], args[1])
        return f32x8(a, b), codegen
    return op


_vmin, _vmax = _fminmax("<"), _fminmax(">")


def vmin(a, b):
    """Lane-wise minimum (either side may be a scalar)."""


def vmax(a, b):
    """Lane-wise maximum (either side may be a scalar)."""


def _register_minmax(py, fn):
    @overload(py, inline="always")
    def _ov(a, b):
        if a == f32x8 and b == f32x8:
            return lambda a, b: fn(a, b)
        if a == f32x8 and _is_num(b):
            return lambda a, b: fn(a, _splat(np.float32(b)))
        if _is_num(a) and b == f32x8:
            return lambda a, b: fn(_splat(np.float32(a)), b)


_register_minmax(vmin, _vmin)
_register_minmax(vmax, _vmax)


# ----------------------------------------------------------------------------------------------- comparisons
def _fcmp(pred):
    @intrinsic
    def op(typingctx, a, b):
        if not (a == f32x8 and b == f32x8):
            return None

        def codegen(context, builder, sig, args):
            return builder.fcmp_ordered(pred, args[0], args[1], flags=_FLAGS)
        return m8(a, b), codegen
    return op


def _icmp(pred):
    @intrinsic
    def op(typingctx, a, b):
        if not (a == i32x8 and b == i32x8):
            return None

        def codegen(context, builder, sig, args):
            return builder.icmp_signed(pred, args[0], args[1])
        return m8(a, b), codegen
    return op


def _register_cmp(pyop, pred):
    f, i = _fcmp(pred), _icmp(pred)

    @overload(pyop, inline="always")
    def _ov(a, b):
        if a == f32x8 and b == f32x8:
            return lambda a, b: f(a, b)
        if a == f32x8 and _is_num(b):
            return lambda a, b: f(a, _splat(np.float32(b)))
        if _is_num(a) and b == f32x8:
            return lambda a, b: f(_splat(np.float32(a)), b)
        if a == i32x8 and b == i32x8:
            return lambda a, b: i(a, b)


for _pyop, _pred in ((operator.lt, "<"), (operator.le, "<="), (operator.gt, ">"), (operator.ge, ">="),
                     (operator.eq, "==")):
    _register_cmp(_pyop, _pred)


def _mbin(name):
    @intrinsic
    def op(typingctx, a, b):
        if not (a == m8 and b == m8):
            return None

        def codegen(context, builder, sig, args):
            return getattr(builder, name)(args[0], args[1])
        return m8(a, b), codegen
    return op


_mand, _mor = _mbin("and_"), _mbin("or_")


@overload(operator.and_, inline="always")
def _and_ov(a, b):
    if a == m8 and b == m8:
        return lambda a, b: _mand(a, b)


@overload(operator.or_, inline="always")
def _or_ov(a, b):
    if a == m8 and b == m8:
        return lambda a, b: _mor(a, b)


@intrinsic
def _mnot(typingctx, a):
    if a != m8:
        return None

    def codegen(context, builder, sig, args):
        return builder.not_(args[0])
    return m8(a), codegen


@overload(operator.invert, inline="always")
def _invert_ov(a):
    if a == m8:
        return lambda a: _mnot(a)


@intrinsic
def _mbits(typingctx, a):
    if a != m8:
        return None

    def codegen(context, builder, sig, args):
        bits = builder.bitcast(args[0], ir.IntType(NL))
        return builder.zext(bits, _I32)
    return types.int32(a), codegen


def bits(m):
    """The mask's lanes as the low NL bits of an int32 (lane i: bit i)."""


@overload(bits, inline="always")
def _bits_ov(m):
    if m == m8:
        return lambda m: _mbits(m)


def any_(m):
    """True when some lane of the mask is set."""


def all_(m):
    """True when every lane of the mask is set."""


@overload(any_, inline="always")
def _any_ov(m):
    if m == m8:
        return lambda m: _mbits(m) != 0


@overload(all_, inline="always")
def _all_ov(m):
    if m == m8:
        return lambda m: _mbits(m) == (1 << NL) - 1


# ----------------------------------------------------------------------------------------------- select, sums
@intrinsic
def _select(typingctx, m, a, b):
    if not (m == m8 and a == b and a in (f32x8, i32x8)):
        return None

    def codegen(context, builder, sig, args):
        return builder.select(args[0], args[1], args[2])
    return a(m, a, b), codegen


def select(m, a, b):
    """Lane-wise m ? a : b (a, b: f32x8, or scalars broadcast; or both i32x8)."""


@overload(select, inline="always")
def _select_ov(m, a, b):
    if m != m8:
        return None
    if a == f32x8 and b == f32x8 or a == i32x8 and b == i32x8:
        return lambda m, a, b: _select(m, a, b)
    if a == f32x8 and _is_num(b):
        return lambda m, a, b: _select(m, a, _splat(np.float32(b)))
    if _is_num(a) and b == f32x8:
        return lambda m, a, b: _select(m, _splat(np.float32(a)), b)


@intrinsic
def hsum(typingctx, a):
    """The sum of the 8 lanes (pairwise: (0+4, 1+5, 2+6, 3+7), then halves again), as float32."""
    if a != f32x8:
        return None

    def codegen(context, builder, sig, args):
        v = args[0]
        width = NL
        while width > 1:
            width //= 2
            undef = ir.Constant(_VF, ir.Undefined)
            hi = builder.shuffle_vector(v, undef, ir.Constant(ir.VectorType(_I32, NL),
                                                              [(i + width) % NL for i in range(NL)]))
            v = builder.fadd(v, hi, flags=_FLAGS)
        return builder.extract_element(v, ir.Constant(_I32, 0))
    return types.float32(a), codegen


def _hsum8_plan():
    """hsum8's shuffles as constant lane indices: per level, a list of (x, y, lanes A, lanes B), each making
    one vector of the next level as shuffle(x, y, A) + shuffle(x, y, B); and the lane of each of the 8 sums at
    the end.  Merging X and Y (each holding its sums in groups of s adjacent lanes) gives twice the groups of
    s / 2 lanes, each group's two halves added; a vector left alone is merged with itself."""
    vecs = [([i], NL) for i in range(8)]  # per vector: the sums it holds, in group order, and lanes per group
    levels = []
    while len(vecs) > 1 or vecs[0][1] > 1:
        level, nxt = [], []
        for p in range(0, len(vecs), 2):
            q = p + 1 if p + 1 < len(vecs) else p
            (ox, sx), (oy, _) = vecs[p], vecs[q]
            h = sx // 2
            ia, ib = [], []
            for src, order in ((0, ox), (1, oy)):
                for j in range(len(order)):
                    for r in range(h):
                        ia.append(src * NL + j * sx + r)
                        ib.append(src * NL + j * sx + h + r)
            level.append((p, q, ia, ib))
            nxt.append((ox + oy, h))
        levels.append(level)
        vecs = nxt
    order = vecs[0][0]
    return levels, [order.index(i) for i in range(8)]


@intrinsic
def hsum8(typingctx, a0, a1, a2, a3, a4, a5, a6, a7):
    """The lane sums of 8 vectors at once: lane i of the result (i < 8) is the sum of a_i's lanes (the other
    lanes are unspecified).  A transposed reduction: two shuffles and an add per merge of two vectors, about a
    third of the shuffles and adds of 8 hsum calls."""
    if not all(a == f32x8 for a in (a0, a1, a2, a3, a4, a5, a6, a7)):
        return None
    levels, final = _hsum8_plan()

    def codegen(context, builder, sig, args):
        cur = list(args)
        for level in levels:
            nxt = []
            for x, y, ia, ib in level:
                A = builder.shuffle_vector(cur[x], cur[y], ir.Constant(ir.VectorType(_I32, NL), ia))
                B = builder.shuffle_vector(cur[x], cur[y], ir.Constant(ir.VectorType(_I32, NL), ib))
                nxt.append(builder.fadd(A, B, flags=_FLAGS))
            cur = nxt
        undef = ir.Constant(_VF, ir.Undefined)
        return builder.shuffle_vector(cur[0], undef, ir.Constant(ir.VectorType(_I32, NL),
                                                                 [final[i % 8] for i in range(NL)]))
    return f32x8(a0, a1, a2, a3, a4, a5, a6, a7), codegen


@intrinsic
def store8_row(typingctx, arr, row, v):
    """arr[row, 0:8] = lanes 0-7 of v, for a C-contiguous 2-D float32 array with at least 8 columns (no bounds
    check)."""
    if not (isinstance(arr, types.Array) and arr.ndim == 2 and arr.dtype == types.float32 and arr.layout == "C"
            and isinstance(row, types.Integer) and v == f32x8):
        return None

    def codegen(context, builder, sig, args):
        a = context.make_array(sig.args[0])(context, builder, args[0])
        ncols = builder.extract_value(a.shape, 1)
        r = context.cast(builder, args[1], sig.args[1], types.intp)
        ptr = builder.gep(a.data, [builder.mul(r, ncols)])
        v8 = args[2]
        if NL != 8:
            undef = ir.Constant(_VF, ir.Undefined)
            v8 = builder.shuffle_vector(v8, undef, ir.Constant(ir.VectorType(_I32, 8), list(range(8))))
        builder.store(v8, builder.bitcast(ptr, ir.VectorType(_F, 8).as_pointer()), align=4)
        return context.get_dummy_value()
    return types.void(arr, row, v), codegen


@intrinsic
def lane(typingctx, a, i):
    """Lane i of an f32x8 or i32x8 (i: an integer, normally a constant)."""
    if a not in (f32x8, i32x8) or not isinstance(i, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        return builder.extract_element(args[0], builder.trunc(args[1], _I32) if args[1].type.width > 32
                                       else args[1])
    return (types.float32 if a == f32x8 else types.int32)(a, i), codegen


# ----------------------------------------------------------------------------------------------- masks, int reductions
@intrinsic
def mask_bits(typingctx, b):
    """The m8 whose lane i is bit i of the integer b (bits' inverse)."""
    if not isinstance(b, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        v = args[0]
        v = builder.trunc(v, ir.IntType(NL)) if v.type.width > NL else builder.zext(v, ir.IntType(NL)) \
            if v.type.width < NL else v
        return builder.bitcast(v, _VM)
    return m8(b), codegen


def _ireduce(name):
    @intrinsic
    def op(typingctx, a):
        if a != i32x8:
            return None

        def codegen(context, builder, sig, args):
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_I32, [_VI]),
                                                f"llvm.vector.reduce.{name}.v{NL}i32")
            return builder.call(fn, [args[0]])
        return types.int32(a), codegen
    return op


ihmin, ihmax = _ireduce("smin"), _ireduce("smax")
ihmin.__doc__ = "The smallest lane of an i32x8."
ihmax.__doc__ = "The largest lane of an i32x8."
