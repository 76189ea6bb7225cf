#!/usr/bin/env python3
"""Writes the quantizer fixtures read by QuantizeTests.swift (testMatchesLlamaCppQuantizer).

  quantize-input.f32   8 rows x 512 float32 values (little-endian): Gaussian rows with outliers, a row of mixed
                       scales, all-positive and all-negative rows, tiny values, a row with an all-zero 256-block and a
                       constant 32-block
  quantize-<type>.bin  what llama.cpp's quantizer makes of those rows: ggml_quantize_chunk(type, ..., imatrix=NULL),
                       the function llama-quantize calls, from libggml-base of an installed llama-cpp-python

Usage: launch/setup --llama-cpp, then ~/.cache/tessera/llama-venv/bin/python make_quantize_fixtures.py
(deterministic: fixed seed).
"""
import ctypes
import glob
import os

import llama_cpp
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROWS, COLS = 8, 512
TYPES = {"q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8, "q2_k": 10, "q3_k": 11, "q4_k": 12, "q5_k": 13,
         "q6_k": 14, "iq4_nl": 20, "iq4_xs": 23, "f16": 1, "bf16": 30}
BYTES = {"q4_0": 18 / 32, "q4_1": 20 / 32, "q5_0": 22 / 32, "q5_1": 24 / 32, "q8_0": 34 / 32, "q2_k": 84 / 256,
         "q3_k": 110 / 256, "q4_k": 144 / 256, "q5_k": 176 / 256, "q6_k": 210 / 256, "iq4_nl": 18 / 32,
         "iq4_xs": 136 / 256, "f16": 2, "bf16": 2}

rng = np.random.default_rng(20261207)
x = rng.standard_normal((ROWS, COLS)).astype(np.float32) * 0.02
x[0, rng.integers(0, COLS, 6)] *= 40                                   # outliers
x[1] *= np.repeat(np.exp(rng.uniform(-6, 2, COLS // 16)), 16).astype(np.float32)  # scales varying by sub-block
x[2] = np.abs(x[2]) + 0.01                                              # all positive
x[3] = -np.abs(x[3]) - 0.003                                            # all negative
x[4] *= 1e-4                                                            # tiny
x[5, :256] = 0                                                          # a zero super-block
x[5, 256:288] = 0.75                                                    # a constant block
x[6] = np.round(x[6] * 400) / 400                                       # values on a grid (ties)
x = np.ascontiguousarray(x)
x.tofile(os.path.join(HERE, "quantize-input.f32"))

lib_dir = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
lib = ctypes.CDLL(sorted(glob.glob(os.path.join(lib_dir, "libggml-base.so*")))[0])
lib.ggml_quantize_init.argtypes = [ctypes.c_int]
lib.ggml_quantize_chunk.restype = ctypes.c_size_t
lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                                    ctypes.c_int64, ctypes.c_void_p]
for name, ggml_type in TYPES.items():
    lib.ggml_quantize_init(ggml_type)
    out = np.zeros(int(ROWS * COLS * BYTES[name]), dtype=np.uint8)
    size = lib.ggml_quantize_chunk(ggml_type, x.ctypes.data, out.ctypes.data, 0, ROWS, COLS, None)
    assert size == out.size, (name, size, out.size)
    out.tofile(os.path.join(HERE, "quantize-%s.bin" % name))
    print(name, size, "bytes")
