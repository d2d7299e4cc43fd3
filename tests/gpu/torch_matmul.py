"""A PyTorch matrix-multiply loop (run by tests/gpu/run.sh where PyTorch is installed): reports
the matmuls per second it reached and the most memory it could hold."""
import sys
import time

import torch

seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10
a = torch.randn(4096, 4096, device="cuda")
b = torch.randn(4096, 4096, device="cuda")
torch.cuda.synchronize()
n, t0 = 0, time.time()
while time.time() - t0 < seconds:
    c = a @ b
    n += 1
torch.cuda.synchronize()
print(f"matmuls per second: {n / (time.time() - t0):.1f}")
blocks = []
try:
    while True:
        blocks.append(torch.empty(64 << 20, dtype=torch.uint8, device="cuda"))
except RuntimeError as e:
    print(f"held {len(blocks) * 64} MiB before: {str(e).splitlines()[0][:80]}")
