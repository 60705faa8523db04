"""Software fp8 encoding shared by the RoPE and paged-KV kernels.

fp32 -> fp8 bits with round-to-nearest-even, in integer and exact power-of-two arithmetic only, so
the same source gives the same bits on gfx942, gfx950 and sm90 for all four formats — including
the FNUZ formats that sm90 cannot convert natively. Overflow follows torch's casts:
e4m3fn saturates to +-448 (0x7E, inf included), e5m2 -> inf (0x7C), FNUZ -> NaN (0x80); NaN stays
NaN (0x7F for OCP). FNUZ has no negative
zero: anything that rounds to zero encodes as 0x00.

FMT codes: 0 float8_e4m3fn, 1 float8_e5m2, 2 float8_e4m3fnuz, 3 float8_e5m2fnuz.
"""
import triton
import triton.language as tl


@triton.jit
def encode_fp8(x, FMT: tl.constexpr):
    """fp32 tensor -> uint8 tensor of fp8 bits in format FMT."""
    if FMT == 0:
        MAN: tl.constexpr = 3
        BIAS: tl.constexpr = 7
        MAXCODE: tl.constexpr = 0x7E
        OVER: tl.constexpr = 0x7E
    elif FMT == 1:
        MAN: tl.constexpr = 2
        BIAS: tl.constexpr = 15
        MAXCODE: tl.constexpr = 0x7B
        OVER: tl.constexpr = 0x7C
    elif FMT == 2:
        MAN: tl.constexpr = 3
        BIAS: tl.constexpr = 8
        MAXCODE: tl.constexpr = 0x7F
        OVER: tl.constexpr = 0x80
    else:
        MAN: tl.constexpr = 2
        BIAS: tl.constexpr = 16
        MAXCODE: tl.constexpr = 0x7F
        OVER: tl.constexpr = 0x80
    bits = x.to(tl.int32, bitcast=True)
    negative = bits < 0
    exp32 = ((bits >> 23) & 0xFF) - 127
    emin = 1 - BIAS
    e = tl.maximum(tl.minimum(exp32, 64), emin)
    # a * 2^(MAN - e) is exact (power of two); + 2^23 - 2^23 rounds it to an integer, half to even.
    q_inv = ((127 + MAN - e) << 23).to(tl.float32, bitcast=True)
    a = tl.abs(x)
    m = (a * q_inv + 8388608.0) - 8388608.0
    bump = m >= (2 << MAN)
    e = tl.where(bump, e + 1, e)
    m = tl.where(bump, m * 0.5, m)
    mi = m.to(tl.int32)
    sub = mi < (1 << MAN)
    code = tl.where(sub, mi, ((e + BIAS) << MAN) | (mi - (1 << MAN)))
    over = (code > MAXCODE) | (exp32 > 32) | (x != x)
    if FMT >= 2:
        code = tl.where(negative & (code != 0), code | 0x80, code)
        code = tl.where(over, OVER, code)
    else:
        code = tl.where(over, OVER, code)
        code = tl.where(negative, code | 0x80, code)
        code = tl.where(x != x, 0x7F, code)
    return code.to(tl.uint8)
