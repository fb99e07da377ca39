"""gstrain.simd: every lane operation the renderer's kernels use, lane by lane against numpy."""
import numpy as np
from gstrain.simd import (
    NL,
    all_,
    any_,
    bits,
    hsum,
    hsum8,
    ihmax,
    ihmin,
    iload,
    iota,
    isplat,
    istore,
    lane,
    load,
    mask_bits,
    select,
    splat,
    store,
    store8_row,
    vmax,
    vmin,
)
from gstrain.simd_math import (
    to_float,
    to_int,
    vabs,
    vceil,
    vexp,
    vfloor,
    vfma,
    vlog,
    vsqrt,
)
from gstrain.simd_rows import (
    gather,
    igather,
    iscatter,
    row_load,
    row_store,
    scatter,
    transpose_in,
    transpose_out,
)
from numba import njit


@njit
def _arith(a, b, s, out):
    x = load(a, 0)
    y = load(b, 0)
    store(out, 0, x + y)
    store(out, NL, x - y)
    store(out, 2 * NL, x * y)
    store(out, 3 * NL, x / y)
    store(out, 4 * NL, x * s + s)      # scalar broadcast on either side
    store(out, 5 * NL, s - x)
    store(out, 6 * NL, -x)
    store(out, 7 * NL, vmin(x, y))
    store(out, 8 * NL, vmax(x, s))
    store(out, 9 * NL, iota())
    store(out, 10 * NL, splat(s))
    return hsum(x), lane(x, 3)


@njit
def _masks(a, b, out, iout, flags):
    x = load(a, 0)
    y = load(b, 0)
    lt = x < y
    ge = x >= y
    eq = x == y
    store(out, 0, select(lt, x, y))
    store(out, NL, select(lt | eq, x, np.float32(-1.0)))
    store(out, 2 * NL, select(lt & (x > np.float32(0.0)), np.float32(2.0), x))
    store(out, 3 * NL, select(~lt, x, y))
    idx = isplat(5)
    cnt = iload(iout, 0)
    istore(iout, 0, select(ge, idx, cnt))
    flags[0] = any_(lt)
    flags[1] = all_(lt)
    flags[2] = any_(lt & ge)
    flags[3] = all_(lt | ge)
    return bits(lt), bits(iload(iout, 0) > isplat(7))


def _vec(rng):
    return np.ascontiguousarray(rng.uniform(-2, 2, NL).astype(np.float32))


def test_arithmetic_minmax_and_reductions_match_numpy_lane_by_lane():
    rng = np.random.default_rng(3)
    a, b = _vec(rng), _vec(rng)
    b[np.abs(b) < 0.1] = 0.5
    s = np.float32(1.75)
    out = np.zeros(11 * NL, np.float32)
    total, third = _arith(a, b, s, out)
    r = out.reshape(11, NL)
    expect = [a + b, a - b, a * b, a / b, a * s + s, s - a, -a, np.minimum(a, b), np.maximum(a, s),
              np.arange(NL, dtype=np.float32), np.full(NL, s, np.float32)]
    for i, e in enumerate(expect):
        np.testing.assert_allclose(r[i], e, rtol=1e-6, atol=1e-7, err_msg=f"row {i}")
    assert abs(total - a.sum(dtype=np.float64)) < 1e-5
    assert third == a[3]


def test_masks_select_and_int_lanes_match_numpy():
    rng = np.random.default_rng(4)
    for trial in range(4):
        a, b = _vec(rng), _vec(rng)
        if trial == 1:
            b = a + 1  # every lane below
        if trial == 2:
            b[2] = a[2]  # one equal lane
        out = np.zeros(4 * NL, np.float32)
        base = np.arange(NL, dtype=np.int32) * 10
        iout = base.copy()
        flags = np.zeros(4, np.bool_)
        lt_bits, gt_bits = _masks(a, b, out, iout, flags)
        lt = a < b
        r = out.reshape(4, NL)
        np.testing.assert_array_equal(r[0], np.where(lt, a, b))
        np.testing.assert_array_equal(r[1], np.where(lt | (a == b), a, -1))
        np.testing.assert_array_equal(r[2], np.where(lt & (a > 0), 2, a))
        np.testing.assert_array_equal(r[3], np.where(~lt, a, b))
        np.testing.assert_array_equal(iout, np.where(a >= b, 5, base))
        assert list(flags) == [lt.any(), lt.all(), False, True]
        lane_bits = 1 << np.arange(NL)
        assert lt_bits == int(lane_bits[lt].sum())  # lane i is bit i
        assert gt_bits == int(lane_bits[iout > 7].sum())


@njit
def _sums8(a, out):
    store8_row(out, 1, hsum8(load(a, 0), load(a, NL), load(a, 2 * NL), load(a, 3 * NL), load(a, 4 * NL),
                             load(a, 5 * NL), load(a, 6 * NL), load(a, 7 * NL)))


def test_hsum8_gives_each_vectors_lane_sum_as_hsum_does_and_store8_row_writes_eight_columns():
    rng = np.random.default_rng(5)
    a = np.ascontiguousarray(rng.uniform(-2, 2, 8 * NL).astype(np.float32))
    out = np.full((3, 9), 7.0, np.float32)
    _sums8(a, out)
    expect = [_one_hsum(a[i * NL:(i + 1) * NL].copy()) for i in range(8)]
    assert list(out[1, :8]) == expect  # the same pairwise order as hsum: equal bits
    assert out[1, 8] == 7.0 and (out[0] == 7.0).all() and (out[2] == 7.0).all()  # nothing else written


@njit
def _one_hsum(x):
    return hsum(load(x, 0))


@njit
def _strided(a, ia, out, iout, base, stride, cnt):
    v = gather(a, base, stride, cnt)
    iv = igather(ia, base, stride, cnt)
    scatter(out, base, stride, v * np.float32(2.0), cnt)
    iscatter(iout, base, stride, iv + isplat(1), cnt)
    return bits(mask_bits(0b101)), bits(v > np.float32(0.0))


def test_gather_and_scatter_read_and_write_strided_lanes_up_to_the_count():
    """gather/scatter (the per-Gaussian kernels' view of (N, k) rows): lane l is element base + l * stride; lanes
    from cnt on read 0 and write nothing."""
    stride, base = 5, 2
    a = np.arange(1, stride * NL + 8, dtype=np.float32)
    ia = np.arange(1, stride * NL + 8, dtype=np.int32)
    for cnt in (NL, 3, 1):
        out = np.full_like(a, -1.0)
        iout = np.full_like(ia, -1)
        m, pos = _strided(a, ia, out, iout, base, stride, cnt)
        idx = base + stride * np.arange(cnt)
        expect = np.full_like(a, -1.0)
        expect[idx] = 2 * a[idx]
        iexpect = np.full_like(ia, -1)
        iexpect[idx] = ia[idx] + 1
        assert np.array_equal(out, expect) and np.array_equal(iout, iexpect), cnt
        assert m == 0b101
        assert pos == (1 << cnt) - 1  # the lanes past the count read 0


@njit
def _maths(a, b, c, out, iout):
    x = load(a, 0)
    y = load(b, 0)
    z = load(c, 0)
    store(out, 0, vsqrt(vabs(x)))
    store(out, NL, vfloor(x))
    store(out, 2 * NL, vceil(x))
    store(out, 3 * NL, vabs(x))
    store(out, 4 * NL, vfma(x, y, z))
    store(out, 5 * NL, to_float(to_int(x * np.float32(10.0)) - isplat(3)))
    store(out, 6 * NL, vexp(x))
    store(out, 7 * NL, vlog(vabs(y) + np.float32(1e-3)))
    istore(iout, 0, to_int(x) + isplat(2))


def test_lane_maths_match_numpy():
    rng = np.random.default_rng(5)
    a = np.ascontiguousarray(rng.uniform(-9, 9, NL).astype(np.float32))
    b, c = _vec(rng), _vec(rng)
    out = np.zeros(8 * NL, np.float32)
    iout = np.zeros(NL, np.int32)
    _maths(a, b, c, out, iout)
    r = out.reshape(8, NL)
    a64 = a.astype(np.float64)
    np.testing.assert_allclose(r[0], np.sqrt(np.abs(a)), rtol=1e-7)
    assert np.array_equal(r[1], np.floor(a)) and np.array_equal(r[2], np.ceil(a)) and np.array_equal(r[3], np.abs(a))
    np.testing.assert_allclose(r[4], a64 * b + c, rtol=1e-6, atol=1e-6)
    assert np.array_equal(r[5], np.trunc(a * np.float32(10.0)) - 3)
    np.testing.assert_allclose(r[6], np.exp(a64), rtol=2.5e-7)
    np.testing.assert_allclose(r[7], np.log(np.abs(b.astype(np.float64)) + 1e-3), rtol=2.5e-7, atol=2.5e-7)
    assert np.array_equal(iout, np.trunc(a).astype(np.int32) + 2)


@njit
def _exp_log(x, e, lg):
    for i in range(0, x.size, NL):
        v = load(x, i)
        store(e, i, vexp(v))
        store(lg, i, vlog(vabs(v)))


def test_vexp_and_vlog_are_within_a_few_ulp_over_their_ranges():
    """vexp over [-87, 88] (the float32 range, relative error) and vlog over 1e-30 .. 1e30 (absolute error, as
    log's values near 0 have no relative accuracy to keep)."""
    n = 1 << 16
    x = np.ascontiguousarray(np.linspace(-87.0, 88.0, n).astype(np.float32))
    e = np.empty_like(x)
    lg = np.empty_like(x)
    _exp_log(x, e, lg)
    x64 = x.astype(np.float64)
    assert np.max(np.abs(e - np.exp(x64)) / np.exp(x64)) < 2.5e-7
    y = np.ascontiguousarray((10.0 ** np.linspace(-30, 30, n)).astype(np.float32))
    _exp_log(y, e, lg)
    want = np.log(y.astype(np.float64))
    assert np.max(np.abs(lg - want) / np.maximum(np.abs(want), 1.0)) < 2.5e-7


@njit
def _int_reductions(ia):
    v = iload(ia, 0)
    return ihmin(v), ihmax(v)


def test_int_lane_minimum_and_maximum():
    ia = np.ascontiguousarray(np.random.default_rng(8).integers(-1000, 1000, NL).astype(np.int32))
    assert _int_reductions(ia) == (ia.min(), ia.max())


@njit
def _transposed(a, base, stride, ncols, cnt, buf, out):
    for c in range(0, ncols, NL):
        transpose_in(a, base, stride, c, ncols, cnt, buf, c * NL)
    for c in range(0, ncols, NL):
        transpose_out(buf, c * NL, out, base, stride, c, ncols, cnt)


def test_transposes_turn_row_blocks_into_columns_and_back():
    """transpose_in: NL rows of a row-major block as column vectors (0 past the rows and columns given);
    transpose_out writes them back, touching nothing past the rows' ends or the last row (here 45 columns, as
    the SH coefficients', and the array's last rows)."""
    ncols, rows = 45, 37
    a = np.arange(rows * ncols, dtype=np.float32)
    groups = -(-ncols // NL)
    for first, cnt in ((0, NL), (rows - 5, 5), (3, 1)):
        buf = np.full(groups * NL * NL, -1, np.float32)
        out = np.full_like(a, -7)
        _transposed(a, first * ncols, ncols, ncols, cnt, buf, out)
        want = np.zeros((groups * NL, NL), np.float32)
        want[:ncols, :cnt] = a[first * ncols:(first + cnt) * ncols].reshape(cnt, ncols).T
        assert np.array_equal(buf.reshape(groups * NL, NL), want)
        expect = np.full_like(a, -7)
        expect[first * ncols:(first + cnt) * ncols] = a[first * ncols:(first + cnt) * ncols]
        assert np.array_equal(out, expect)


@njit
def _row_parts(a, row, out):
    store(out, 0, row_load(a, row, 0))
    store(out, NL, row_load(a, row, 4))


def test_row_load_reads_one_rows_columns_and_zeros_past_its_end():
    a = np.arange(5 * 9, dtype=np.float32).reshape(5, 9) + 1
    out = np.full(2 * NL, -1.0, np.float32)
    _row_parts(a, 4, out)  # the last row: a plain load would read past the array
    want0 = np.zeros(NL, np.float32)
    want0[:min(9, NL)] = a[4, :min(9, NL)]
    want1 = np.zeros(NL, np.float32)
    want1[:5] = a[4, 4:]
    assert np.array_equal(out[:NL], want0) and np.array_equal(out[NL:], want1)


@njit
def _copy_rows(src, dst, order):
    for k in range(order.shape[0]):
        row_store(dst, k, 0, row_load(src, order[k], 0))
        if NL < src.shape[1]:
            row_store(dst, k, NL, row_load(src, order[k], NL))


def test_row_store_writes_one_rows_columns_and_nothing_past_its_end():
    src = np.arange(6 * 12, dtype=np.float32).reshape(6, 12)
    dst = np.full((3, 12), -1.0, np.float32)
    order = np.array([5, 0, 2], np.int64)
    _copy_rows(src, dst, order)
    assert np.array_equal(dst, src[order])
    block = np.full(4 * 12, -1.0, np.float32)  # a view of the first two rows: the rest must stay untouched
    _copy_rows(src, block[:24].reshape(2, 12), order[:2])
    assert np.array_equal(block[:24].reshape(2, 12), src[order[:2]]) and (block[24:] == -1).all()
