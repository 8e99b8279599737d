#!/usr/bin/env python3
"""numpy's side of `cargo bench --bench weights`: the lens's statistics (two
passes per tensor, float64, the same definitions as
tests/fixtures/gen_stats_reference.py) over a memory map of FILE; prints the
median of 3 timed runs after a warm-up, in seconds.

  python weights_numpy.py FILE
"""
import json
import struct
import sys
import time

import numpy as np

path = sys.argv[1]
with open(path, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)


def stats(x):
    x = x.astype(np.float64)
    finite = x[np.isfinite(x)]
    m = np.abs(finite).max()
    mean, std = finite.mean(), finite.std()
    hist, _ = np.histogram(finite, bins=64, range=(-m, m))
    return (np.sqrt(np.mean(finite ** 2)), np.abs(finite).mean(), m, std,
            np.mean(np.abs(finite) <= 1e-6 * m), np.mean(np.abs(finite - mean) > 6 * std), hist)


def run():
    t = time.perf_counter()
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        stats(data[a:b].view(np.float32))
    return time.perf_counter() - t


run()
print(sorted(run() for _ in range(3))[1])
