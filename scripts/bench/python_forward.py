#!/usr/bin/python3
"""Python reference for the raw forward floor: the same TorchScript file, same input shape and threads."""
import sys
import time

import torch

path, batch, threads, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
torch.set_num_threads(threads)
module = torch.jit.load(path).eval()
x = torch.sin(torch.arange(batch * 3 * 96 * 128, dtype=torch.float32) * 0.001).reshape(batch, 3, 96, 128)
with torch.inference_mode():
    for _ in range(3):
        module(x)
    times = []
    start = time.time()
    while time.time() - start < seconds or len(times) < 5:
        t0 = time.perf_counter()
        module(x)
        times.append((time.perf_counter() - t0) * 1000)
times.sort()
print(f"python plain batch={batch} threads={threads} iterations={len(times)} median_ms={times[len(times) // 2]:.3f}")
