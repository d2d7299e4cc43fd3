#!/usr/bin/env python3
"""gpumux apply on gpusim: a manifest of N process workloads (gpumux's own format, a sleeping
process each) applied as one, the same file applied again unchanged, and a Deployment scaled
from 100 to 200 replicas; each against the same workloads created one POST /v1/workloads at a
time (what `gpumux run` does) in the same run, so the ratio means something on a noisy machine.

For each apply the figures are the daemon's own "decided and recorded in one transaction in X
ms" (parse, expansion, the plan with every admission, and the commit) and the whole request's
wall time (which includes launching every workload it creates). Usage:
bench_apply.py BUILD_DIR [--workloads N]
"""
import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_daemon import Daemon, call, kill_tagged, remove_cgroups  # noqa: E402


def native(names):
    docs = []
    for n in names:
        docs.append("apiVersion: gpumux.dev/v1\nkind: Workload\nmetadata:\n  name: %s\n"
                    "spec:\n  command: [\"/bin/sleep\", \"3600\"]\n  gpu: none\n" % n)
    return "---\n".join(docs)


def deployment(replicas):
    return ("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n"
            "  replicas: %d\n  template:\n    spec:\n      containers:\n      - name: srv\n"
            "        command: [\"/bin/sleep\", \"3600\"]\n" % replicas)


def apply(sock, text, name):
    t0 = time.perf_counter()
    st, body = call(sock, "POST", "/v1/apply", {"file": name, "manifest": text})
    wall = time.perf_counter() - t0
    if st != 200:
        raise RuntimeError(body)
    msg = json.loads(body)["messages"]
    m = re.search(r"(\d+) created, (\d+) unchanged, (\d+) deleted \(decided and recorded in one "
                  r"transaction in ([\d.]+) ms\)", msg)
    if m is None:
        raise RuntimeError(msg[-300:])
    return {"created": int(m.group(1)), "unchanged": int(m.group(2)), "deleted": int(m.group(3)),
            "decided_ms": float(m.group(4)), "wall_ms": wall * 1000}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--workloads", type=int, default=500)
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    n = a.workloads
    tmp = tempfile.mkdtemp(prefix="gm-bench.")
    d = Daemon(build, tmp)
    res = {}
    try:
        d.start()
        # Baseline: the same workloads one request each.
        t0 = time.perf_counter()
        for i in range(n):
            st, body = call(d.sock, "POST", "/v1/workloads",
                            {"name": "run-%d" % i, "command": ["/bin/sleep", "3600"], "gpu": "none"})
            if st != 201:
                raise RuntimeError(body)
        res["one_by_one_ms"] = (time.perf_counter() - t0) * 1000
        text = native(["w-%d" % i for i in range(n)])
        res["manifest_bytes"] = len(text)
        res["apply"] = apply(d.sock, text, "many.yaml")
        res["reapply"] = apply(d.sock, text, "many.yaml")
        res["deploy_100"] = apply(d.sock, deployment(100), "web.yaml")
        res["deploy_200"] = apply(d.sock, deployment(200), "web.yaml")
    finally:
        d.stop()
        kill_tagged(tmp)
        remove_cgroups(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
    ap1, re1, s1, s2 = res["apply"], res["reapply"], res["deploy_100"], res["deploy_200"]
    print(f"apply of {n} process workloads ({res['manifest_bytes']} bytes, gpumux manifest): "
          f"{ap1['created']} created, decided and recorded in one transaction in "
          f"{ap1['decided_ms']:.1f} ms; the request with every launch {ap1['wall_ms']:.0f} ms; "
          f"the same {n} created one POST /v1/workloads at a time: {res['one_by_one_ms']:.0f} ms "
          f"(ratio {res['one_by_one_ms'] / ap1['wall_ms']:.2f}x)")
    print(f"the same file again: {re1['unchanged']} unchanged, {re1['created']} created, "
          f"{re1['decided_ms']:.1f} ms decided, {re1['wall_ms']:.1f} ms the request")
    print(f"Deployment of 100 replicas: {s1['decided_ms']:.1f} ms decided, {s1['wall_ms']:.0f} ms "
          f"the request; scaled to 200: {s2['created']} created, {s2['unchanged']} unchanged, "
          f"{s2['decided_ms']:.1f} ms decided, {s2['wall_ms']:.0f} ms the request")
    print("json: " + json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
