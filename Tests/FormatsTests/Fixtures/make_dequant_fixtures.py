#!/usr/bin/env python3
"""Writes the dequantization fixtures read by DequantizeTests.swift.

For every GGML type the Swift code dequantizes, two files are written beside this script:
  <type>.bin  raw blocks as stored in a GGUF file
  <type>.f32  the float32 little-endian values that the PyPI `gguf` package (gguf.quants.dequantize) makes of them

Blocks come from gguf.quants.quantize on random floats where `gguf` can quantize the type, plus random bytes with sane
fp16 scales (all bit patterns of the quantized values, which quantize() alone may never produce).
`gguf` has no Q8_1 / Q8_K dequantizer: for those two the expected values are computed here in numpy float32, following
ggml's block layouts (Q8_1: half d, half s, int8 qs[32]; Q8_K: float d, int8 qs[256], int16 bsums[16]); y = d * q.

Usage: pip install gguf numpy && python3 make_dequant_fixtures.py   (deterministic: fixed seed)
"""
import os

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20240611)

# (block size in elements, block size in bytes) as in ggml; Q8_1 is 36 bytes in current ggml (gguf-py still says 40).
LAYOUT = {
    "F32": (1, 4), "F16": (1, 2), "BF16": (1, 2),
    "Q4_0": (32, 18), "Q4_1": (32, 20), "Q5_0": (32, 22), "Q5_1": (32, 24), "Q8_0": (32, 34), "Q8_1": (32, 36),
    "Q2_K": (256, 84), "Q3_K": (256, 110), "Q4_K": (256, 144), "Q5_K": (256, 176), "Q6_K": (256, 210),
    "Q8_K": (256, 292), "IQ4_NL": (32, 18), "IQ4_XS": (256, 136),
}


def fp16_bytes(values):
    return np.asarray(values, dtype=np.float16).view(np.uint8)


def sane_scales(n, positive=False):
    """n fp16 scales with magnitudes in [1e-4, 0.1], random sign unless positive."""
    mag = np.exp(rng.uniform(np.log(1e-4), np.log(0.1), n))
    sign = np.ones(n) if positive else rng.choice([-1.0, 1.0], n)
    return fp16_bytes(mag * sign).reshape(n, 2)


def random_floats(n_blocks, block):
    """Normal values with a different magnitude per block, as weights have."""
    scale = np.exp(rng.uniform(np.log(1e-3), np.log(10.0), (n_blocks, 1)))
    return (rng.standard_normal((n_blocks, block)) * scale).astype(np.float32)


def random_blocks(name, n):
    """Random bytes with the type's fp16 scale fields set to sane values."""
    block, size = LAYOUT[name]
    b = rng.integers(0, 256, (n, size), dtype=np.uint8)
    if name in ("Q4_0", "Q5_0", "Q8_0", "IQ4_NL", "IQ4_XS"):   # d first
        b[:, 0:2] = sane_scales(n)
    elif name in ("Q4_1", "Q5_1", "Q8_1"):
        b[:, 0:2] = sane_scales(n)
        b[:, 2:4] = sane_scales(n)
    elif name == "Q2_K":                      # scales[16] qs[64] d dmin
        b[:, 80:82] = sane_scales(n, True)
        b[:, 82:84] = sane_scales(n, True)
    elif name == "Q3_K":                      # hmask[32] qs[64] scales[12] d
        b[:, 108:110] = sane_scales(n)
    elif name in ("Q4_K", "Q5_K"):           # d dmin scales[12] ...
        b[:, 0:2] = sane_scales(n, True)
        b[:, 2:4] = sane_scales(n, True)
    elif name == "Q6_K":                      # ql[128] qh[64] scales[16] d
        b[:, 208:210] = sane_scales(n)
    elif name == "Q8_K":                      # float d, qs[256], bsums[16]
        d = (np.exp(rng.uniform(np.log(1e-4), np.log(0.1), n)) * rng.choice([-1.0, 1.0], n)).astype(np.float32)
        b[:, 0:4] = d.view(np.uint8).reshape(n, 4)
    return b


def special_floats():
    """Zeros, infinities, subnormals, extremes of float32 (no NaN: payload handling is not the point here)."""
    f32 = np.finfo(np.float32)
    return np.array([0.0, -0.0, np.inf, -np.inf, f32.tiny, -f32.tiny, f32.tiny / 8, f32.max, -f32.max,
                     1.0, -1.0, 65504.0, 6.1e-5, 5.96e-8, 1e-9, 3.0e38], dtype=np.float32)


def expected(name, raw):
    if name == "Q8_1":
        blocks = raw.reshape(-1, 36)
        d = blocks[:, 0:2].copy().view(np.float16).astype(np.float32)
        q = blocks[:, 4:36].copy().view(np.int8).astype(np.float32)
        return (q * d).reshape(-1)
    if name == "Q8_K":
        blocks = raw.reshape(-1, 292)
        d = blocks[:, 0:4].copy().view(np.float32)
        q = blocks[:, 4:260].copy().view(np.int8).astype(np.float32)
        return (d * q).reshape(-1)
    return quants.dequantize(raw, T[name]).astype(np.float32, copy=False).reshape(-1)


def make(name):
    block, size = LAYOUT[name]
    if name == "F32":
        raw = np.concatenate([special_floats(), random_floats(4, 60).reshape(-1)]).view(np.uint8)
    elif name in ("F16", "BF16"):
        values = np.concatenate([special_floats(), random_floats(4, 60).reshape(-1)])
        with np.errstate(over="ignore"):    # float32 extremes become fp16 infinities
            raw = quants.quantize(values, T[name]).view(np.uint8).reshape(-1)
        if name == "F16":   # also every exponent field, including fp16 subnormals
            raw = np.concatenate([raw, rng.integers(0, 0x7C00, 64, dtype=np.uint16).view(np.uint8),
                                  np.arange(0, 0x7C00, 0x3FF, dtype=np.uint16).view(np.uint8)])
    elif name in ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"):
        floats = random_floats(8, block)
        floats[0] = 0.0   # an all-zero block (scale 0)
        quantized = quants.quantize(floats.reshape(2, -1), T[name]).reshape(-1, size)
        raw = np.concatenate([quantized, random_blocks(name, 8)]).reshape(-1)
    else:
        raw = random_blocks(name, 8 if block == 32 else 3).reshape(-1)
    raw = np.ascontiguousarray(raw, dtype=np.uint8)
    out = expected(name, raw)
    assert out.dtype == np.float32 and out.size * size == raw.size * block, name
    low = name.lower()
    raw.tofile(os.path.join(HERE, f"{low}.bin"))
    out.astype("<f4").tofile(os.path.join(HERE, f"{low}.f32"))
    return raw.size + out.size * 4


if __name__ == "__main__":
    total = sum(make(name) for name in LAYOUT)
    print(f"wrote {len(LAYOUT)} fixtures, {total} bytes")
