#!/usr/bin/env python3
"""Aggregate n-body throughput of 2, 4 and 8 samples on one simulated GPU, time-sliced versus
under MPS, against one sample alone measured in the same run.

These are the simulator's model (docs/gpusim.md), not a claim about hardware.
Usage: bench_mps.py BUILD_DIR [--seconds S] [--counts 2,4,8]
"""
import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--counts", default="2,4,8")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    tmp = tempfile.mkdtemp(prefix="gm-bench-mps.")
    sock = os.path.join(tmp, "run", "gpumux.sock")
    env = dict(os.environ, GPUMUX_SOCKET=sock, GM_BENCH_TAG=tmp)
    os.makedirs(os.path.join(tmp, "run"))
    daemon = subprocess.Popen(
        [os.path.join(build, "bin", "gpumuxd"), "--driver", "sim", "--state-dir",
         os.path.join(tmp, "state"), "--run-dir", os.path.join(tmp, "run"), "--gpusim-state",
         os.path.join(tmp, "run", "gpusim.state"), "--log-level", "warning"],
        env=env, stderr=subprocess.DEVNULL)

    def gm(*args, check=True):
        return subprocess.run([os.path.join(build, "bin", "gpumux"), *args], env=env,
                              capture_output=True, text=True, check=check).stdout

    for _ in range(100):
        if subprocess.run([os.path.join(build, "bin", "gpumux"), "info"], env=env,
                          capture_output=True).returncode == 0:
            break
        time.sleep(0.1)
    sample = os.path.join(build, "bin", "gpumux-sample")
    counter = [0]

    def phase(n, extra=()):
        names = []
        for i in range(n):
            counter[0] += 1
            name = f"s{counter[0]}"
            gm("run", name, "--gpu", "0", *extra, "--", sample, "-benchmark", f"-t={a.seconds}")
            names.append(name)
        rates = []
        for name in names:
            while True:
                ws = json.loads(gm("ps", "-o", "json"))["workloads"]
                st = [w["state"] for w in ws if w["name"] == name][0]
                if st not in ("starting", "running"):
                    break
                time.sleep(0.2)
            m = re.search(r"= ([0-9.]+) billion interactions per second", gm("logs", name))
            rates.append(float(m.group(1)) if m else 0.0)
        return rates

    rows = []
    try:
        solo = phase(1)[0]
        counts = [int(c) for c in a.counts.split(",")]
        ts = {n: sum(phase(n)) for n in counts}
        gm("mps", "start", "--gpu", "0")
        mps_solo = phase(1)[0]
        mps = {n: sum(phase(n)) for n in counts}
        split = phase(1, ("--compute", "30")) + phase(1, ("--compute", "70"))  # alone, for scale
        pair = []
        # 30/70 together
        names = []
        for pct in (30, 70):
            counter[0] += 1
            names.append(f"s{counter[0]}")
            gm("run", names[-1], "--gpu", "0", "--compute", str(pct), "--", sample, "-benchmark",
               f"-t={a.seconds}")
        for name in names:
            while [w["state"] for w in json.loads(gm("ps", "-o", "json"))["workloads"]
                   if w["name"] == name][0] in ("starting", "running"):
                time.sleep(0.2)
            pair.append(float(re.search(r"= ([0-9.]+) billion", gm("logs", name)).group(1)))
        gm("mps", "stop", "--gpu", "0", "--force")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait()
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    if f"GM_BENCH_TAG={tmp}".encode() in open(f"/proc/{p}/environ", "rb").read().split(b"\0"):
                        os.kill(int(p), signal.SIGKILL)
                except OSError:
                    pass
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"machine: {platform.node()}, {os.cpu_count()} cores; gpusim Tesla T4 model; "
          f"{a.seconds:g} s per run, 40960 bodies")
    print(f"one sample alone: {solo:.1f} G interactions/s time-sliced mode, {mps_solo:.1f} under MPS")
    print(f"{'samples':>8} {'time-sliced':>12} {'MPS':>8} {'MPS/TS':>7}  (aggregate G interactions/s)")
    for n in counts:
        print(f"{n:>8} {ts[n]:>12.1f} {mps[n]:>8.1f} {mps[n] / ts[n]:>7.3f}")
    print(f"MPS 30%/70% together: {pair[0]:.1f} / {pair[1]:.1f} G interactions/s = "
          f"{100 * pair[0] / (pair[0] + pair[1]):.1f}% / {100 * pair[1] / (pair[0] + pair[1]):.1f}% "
          f"of their sum; alone at 30%: {split[0]:.1f}, at 70%: {split[1]:.1f}")


if __name__ == "__main__":
    sys.exit(main())
