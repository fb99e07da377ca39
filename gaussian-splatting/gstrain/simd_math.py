"""Lane-wise maths on gstrain/simd.py's vectors: sqrt, floor, ceil, abs, fma, int <-> float conversions, and
float32 exp and log (Cephes' expf and logf, built from the float's bits: numba has no vector library here)."""
import operator

from llvmlite import ir
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .simd import _I32, _VF, _VI, NL, _broadcast, f32x8, i32x8, isplat, select, vmax, vmin


def _funary(intr):
    @intrinsic
    def op(typingctx, a):
        if a != f32x8:
            return None

        def codegen(context, builder, sig, args):
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_VF, [_VF]), f"llvm.{intr}.v{NL}f32")
            return builder.call(fn, [args[0]])
        return f32x8(a), codegen
    return op


vsqrt, vfloor, vceil, vabs = _funary("sqrt"), _funary("floor"), _funary("ceil"), _funary("fabs")


@intrinsic
def vfma(typingctx, a, b, c):
    """a * b + c with one rounding (llvm.fma)."""
    if not (a == f32x8 and b == f32x8 and c == f32x8):
        return None

    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_VF, [_VF, _VF, _VF]),
                                            f"llvm.fma.v{NL}f32")
        return builder.call(fn, list(args))
    return f32x8(a, b, c), codegen


def _conversion(src, dst, how):
    """A lane-wise conversion src -> dst by the IR builder's `how` (fptosi, sitofp, bitcast)."""
    @intrinsic
    def op(typingctx, a):
        if a != src:
            return None

        def codegen(context, builder, sig, args):
            return getattr(builder, how)(args[0], _VI if dst == i32x8 else _VF)
        return dst(a), codegen
    return op


to_int = _conversion(f32x8, i32x8, "fptosi")  # truncating toward zero (lanes must fit an int32)
to_float = _conversion(i32x8, f32x8, "sitofp")
_as_int = _conversion(f32x8, i32x8, "bitcast")  # the float's bits
_as_float = _conversion(i32x8, f32x8, "bitcast")


def _ibin(name):
    @intrinsic
    def op(typingctx, a, b):
        if not (a == i32x8 and b == i32x8):
            return None

        def codegen(context, builder, sig, args):
            return getattr(builder, name)(args[0], args[1])
        return i32x8(a, b), codegen
    return op


_iadd, _isub, _iand, _ior, _ilshr = (_ibin(n) for n in ("add", "sub", "and_", "or_", "lshr"))


def _register_int(pyop, fn):
    """v + w and v - w on i32x8."""
    @overload(pyop, inline="always")
    def _ov(a, b):
        if a == i32x8 and b == i32x8:
            return lambda a, b: fn(a, b)


for _pyop, _fn in ((operator.add, _iadd), (operator.sub, _isub)):
    _register_int(_pyop, _fn)


@intrinsic
def _exp2i(typingctx, n):
    """2.0 ** n lane-wise for integer lanes n in [-126, 127] (the float built from its exponent bits)."""
    if n != i32x8:
        return None

    def codegen(context, builder, sig, args):
        e = builder.add(args[0], _broadcast(builder, _I32(127), _VI))
        return builder.bitcast(builder.shl(e, _broadcast(builder, _I32(23), _VI)), _VF)
    return f32x8(n), codegen


def vexp(x):
    """e ** x lane-wise in float32 (Cephes' expf: range reduction by ln 2 in two parts, a degree-5 polynomial;
    within 2 ulp of the correctly rounded value; x clamped to [-87.3, 88.7])."""


@overload(vexp, inline="always")
def _vexp_ov(x):
    if x != f32x8:
        return None

    def impl(x):
        x = vmin(vmax(x, -87.3), 88.7)
        n = vfloor(x * 1.44269504088896341 + 0.5)
        r = x - n * 0.693359375
        r = r - n * -2.12194440e-4
        p = r * 1.9875691500e-4 + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        y = p * (r * r) + r + 1.0
        return y * _exp2i(to_int(n))
    return impl


def vlog(x):
    """The natural logarithm lane-wise in float32 for positive, normal x (Cephes' logf: the mantissa in
    [sqrt(1/2), sqrt(2)), a degree-8 polynomial; within 2 ulp)."""


@overload(vlog, inline="always")
def _vlog_ov(x):
    if x != f32x8:
        return None

    def impl(x):
        bx = _as_int(x)
        e = to_float(_isub(_ilshr(bx, isplat(23)), isplat(126)))
        m = _as_float(_ior(_iand(bx, isplat(0x007FFFFF)), isplat(0x3F000000)))  # in [0.5, 1)
        small = m < 0.707106781186547524
        e = select(small, e - 1.0, e)
        m = select(small, m + m - 1.0, m - 1.0)
        z = m * m
        y = m * 7.0376836292e-2 - 1.1514610310e-1
        y = y * m + 1.1676998740e-1
        y = y * m - 1.2420140846e-1
        y = y * m + 1.4249322787e-1
        y = y * m - 1.6668057665e-1
        y = y * m + 2.0000714765e-1
        y = y * m - 2.4999993993e-1
        y = y * m + 3.3333331174e-1
        y = y * m * z
        y = y + e * -2.12194440e-4
        y = y - z * 0.5
        return m + y + e * 0.693359375
    return impl


