#!/usr/bin/env python3
"""Daemon benchmarks on gpusim: admissions per second, `gpumux ps -o json` latency with 1,000
workloads recorded, resident memory idle and loaded, SIGKILL-to-answering time, `ps` latency
while a mode change waits for a slow MPS control daemon, and root's `ps` while another user holds
2,000 connections (as root, with the test user gpumux-other: `--only-flood`).

Every figure comes with a baseline measured in the same run, so the ratio means something on a
noisy machine. Usage: bench_daemon.py BUILD_DIR [--workloads N] [--admissions N]
"""
import argparse
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=60)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def call(sock, method, url, body=None):
    c = UnixHTTP(sock)
    c.request(method, url, body=json.dumps(body) if body is not None else None,
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def own_dirs(build, tmp):
    """Options that keep a bench daemon's logs and cgroups in its own places, for the builds
    that have them (older builds, measured for a before/after, do not)."""
    out = subprocess.run([os.path.join(build, "bin", "gpumuxd"), "--print-config"],
                         capture_output=True, text=True).stdout
    opts = []
    if "log_dir:" in out:
        opts += ["--log-dir", os.path.join(tmp, "logs")]
    if "cgroup_root:" in out:
        opts += ["--cgroup-root", "gpumux-bench/" + os.path.basename(tmp) if os.geteuid() == 0
                 else "none"]
    return opts


def remove_cgroups(tmp):
    for line in open("/proc/self/mountinfo"):
        f = line.split()
        d = os.path.join(f[4], "gpumux-bench", os.path.basename(tmp))
        if os.path.isdir(d):
            for root, dirs, _ in os.walk(d, topdown=False):
                for x in dirs:
                    try:
                        os.rmdir(os.path.join(root, x))
                    except OSError:
                        pass
            try:
                os.rmdir(d)
            except OSError:
                pass


class Daemon:
    def __init__(self, build, tmp, extra=()):
        self.build, self.tmp, self.extra = build, tmp, own_dirs(build, tmp) + list(extra)
        self.sock = os.path.join(tmp, "run", "gpumux.sock")
        self.proc = None

    def start(self):
        os.makedirs(os.path.join(self.tmp, "run"), exist_ok=True)
        env = dict(os.environ, GM_BENCH_TAG=self.tmp)
        self.proc = subprocess.Popen(
            [os.path.join(self.build, "bin", "gpumuxd"), "--driver", "sim",
             "--state-dir", os.path.join(self.tmp, "state"),
             "--run-dir", os.path.join(self.tmp, "run"),
             "--gpusim-state", os.path.join(self.tmp, "run", "gpusim.state"),
             "--log-level", "warning", *self.extra],
            env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.tmp, "daemon.log"), "a"))
        return self.wait_answer()

    def wait_answer(self):
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60:
            try:
                if call(self.sock, "GET", "/v1/info")[0] == 200:
                    return time.monotonic() - t0
            except OSError:
                pass
            time.sleep(0.002)
        raise RuntimeError("daemon did not answer")

    def kill9_and_restart(self):
        t0 = time.monotonic()
        self.proc.kill()
        self.proc.wait()
        self.start()
        return time.monotonic() - t0

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait()


def kill_tagged(tag):
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            if f"GM_BENCH_TAG={tag}".encode() in open(f"/proc/{p}/environ", "rb").read().split(b"\0"):
                os.kill(int(p), signal.SIGKILL)
        except OSError:
            pass


def median_ms(fn, n):
    xs = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        xs.append((time.perf_counter() - t0) * 1000)
    return statistics.median(xs)


SLOW_MPS = """#!/bin/sh
# nvidia-cuda-mps-control that takes SECONDS to start its daemon (-d); other commands as usual.
[ "$1" = -d ] && sleep {secs}
exec {real} "$@"
"""


def ps_during_slow_mode_change(build, gpumux, secs=3.0, workloads=20):
    """Median `gpumux ps -o json` while `gpu mode 0 mps --restart-workloads` waits for an MPS
    control daemon that takes `secs` to start, against the median with nothing in progress."""
    tmp = tempfile.mkdtemp(prefix="gm-bench-lock.")
    wrapper = os.path.join(tmp, "slow-mps-control")
    with open(wrapper, "w") as f:
        f.write(SLOW_MPS.format(secs=secs, real=os.path.join(build, "lib", "gpusim",
                                                             "nvidia-cuda-mps-control")))
    os.chmod(wrapper, 0o755)
    d = Daemon(build, tmp, ["--mps-control", wrapper])
    out = {}
    try:
        d.start()
        env = dict(os.environ, GPUMUX_SOCKET=d.sock)
        for i in range(workloads):
            st, body = call(d.sock, "POST", "/v1/workloads",
                            {"name": f"w{i}", "command": ["sleep", "3600"], "gpu": "0"})
            if st != 201:
                raise RuntimeError(body)
        run = lambda: subprocess.run([gpumux, "ps", "-o", "json"], env=env,
                                     stdout=subprocess.DEVNULL, check=True)
        out["idle_ms"] = median_ms(run, 21)
        change = subprocess.Popen([gpumux, "gpu", "mode", "0", "mps", "--restart-workloads"],
                                  env=env, stdout=subprocess.DEVNULL)
        t0 = time.monotonic()
        xs = []
        while change.poll() is None and time.monotonic() - t0 < secs:
            t = time.perf_counter()
            run()
            xs.append((time.perf_counter() - t) * 1000)
        change.wait()
        out["change_s"] = time.monotonic() - t0
        out["during_ms"] = statistics.median(xs) if xs else float("nan")
        out["during_max_ms"] = max(xs) if xs else float("nan")
        out["during_n"] = len(xs)
        out["change_rc"] = change.returncode
    finally:
        d.stop()
        kill_tagged(tmp)
        remove_cgroups(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
    return out


# The flood that tests/e2e/test_dos.sh runs too: SOCKET N STATUS STOP.
FLOOD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "tools",
                     "flood.py")


def ps_during_flood(build, gpumux, conns=2000, n=21):
    """Root's `gpumux ps -o json` with nothing else going on, then while gpumux-other holds conns
    idle connections (reopening each one the daemon closes every 0.5 s)."""
    tmp = tempfile.mkdtemp(prefix="gm-bench.")
    os.chmod(tmp, 0o755)
    d = Daemon(build, tmp)
    r = {"connections": conns}
    flood = None
    try:
        d.start()
        env = dict(os.environ, GPUMUX_SOCKET=d.sock, GPUMUX_TIMEOUT="10")

        def ps():
            t0 = time.perf_counter()
            try:  # an older CLI has no timeout of its own
                ok = subprocess.run([gpumux, "ps", "-o", "json"], env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, timeout=10).returncode == 0
            except subprocess.TimeoutExpired:
                ok = False
            return (time.perf_counter() - t0) * 1000, ok

        idle = [ps() for _ in range(n)]
        flood_dir = os.path.join(tmp, "flood")  # the flooding user writes its status here
        os.mkdir(flood_dir)
        os.chmod(flood_dir, 0o777)
        stop = os.path.join(flood_dir, "stop")
        flood = subprocess.Popen(["setpriv", "--reuid=gpumux-other", "--regid=gpumux-other",
                                  "--init-groups", "/usr/bin/python3", FLOOD, d.sock, str(conns),
                                  os.path.join(flood_dir, "status"), stop],
                                 env=dict(os.environ, GM_BENCH_TAG=tmp))
        time.sleep(3)
        during = []
        while len(during) < n and sum(1 for _, good in during if not good) < 3:
            during.append(ps())
        open(stop, "w").close()
        flood.wait(timeout=30)
        r["idle_ms"] = statistics.median(x for x, _ in idle)
        ok = [x for x, good in during if good]
        r["during_answered"] = len(ok)
        r["during_asked"] = len(during)
        r["during_ms"] = statistics.median(ok) if ok else None
        r["during_max_ms"] = max(ok) if ok else None
    finally:
        if flood is not None and flood.poll() is None:
            flood.kill()
        d.stop()
        kill_tagged(tmp)
        remove_cgroups(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--workloads", type=int, default=1000)
    ap.add_argument("--admissions", type=int, default=200)
    ap.add_argument("--restarts", type=int, default=5)
    ap.add_argument("--only-lock", action="store_true", help="only the ps-during-mode-change figure")
    ap.add_argument("--only-flood", action="store_true",
                    help="only root's ps while gpumux-other holds 2,000 connections (needs root)")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    gpumux = os.path.join(build, "bin", "gpumux")
    if a.only_flood:
        f = ps_during_flood(build, gpumux)
        during = (f"{f['during_ms']:.1f} ms median, slowest {f['during_max_ms']:.1f} ms"
                  if f["during_ms"] is not None else "no answer")
        ratio = (f", ratio {f['during_ms'] / f['idle_ms']:.2f}x" if f["during_ms"] is not None
                 else "")
        print(f"root's gpumux ps -o json while gpumux-other holds {f['connections']} connections: "
              f"{f['during_answered']} of {f['during_asked']} answered, {during}; alone: "
              f"{f['idle_ms']:.1f} ms{ratio}")
        print("json: " + json.dumps(f))
        return 0
    lock = ps_during_slow_mode_change(build, gpumux)
    print(f"gpumux ps -o json while gpu mode 0 mps --restart-workloads (20 workloads) waits for an "
          f"MPS control daemon that takes 3 s to start: {lock['during_ms']:.1f} ms median of "
          f"{lock['during_n']} (max {lock['during_max_ms']:.1f} ms; the change took "
          f"{lock['change_s']:.1f} s, exit {lock['change_rc']}); nothing in progress: "
          f"{lock['idle_ms']:.1f} ms; ratio {lock['during_ms'] / lock['idle_ms']:.2f}x")
    if a.only_lock:
        print("json: " + json.dumps(lock))
        return 0
    tmp = tempfile.mkdtemp(prefix="gm-bench.")
    d = Daemon(build, tmp)
    results = {"lock": lock}
    try:
        d.start()
        env = dict(os.environ, GPUMUX_SOCKET=d.sock)
        # Idle baseline figures.
        time.sleep(0.5)
        results["rss_idle_kib"] = rss_kib(d.proc.pid)
        restart_empty = [d.kill9_and_restart() for _ in range(a.restarts)]
        results["restart_empty_ms"] = statistics.median(restart_empty) * 1000

        # Admissions: each one a recorded, placed and started workload (a sleeping process).
        base = median_ms(lambda: call(d.sock, "GET", "/v1/info"), 200)
        t0 = time.perf_counter()
        for i in range(a.admissions):
            st, body = call(d.sock, "POST", "/v1/workloads",
                            {"name": f"adm-{i}", "command": ["sleep", "3600"], "memory": "64M"})
            if st != 201:
                raise RuntimeError(body)
        dt = time.perf_counter() - t0
        results["admissions"] = a.admissions
        results["admissions_per_s"] = a.admissions / dt
        results["admission_ms"] = dt * 1000 / a.admissions
        results["info_roundtrip_ms"] = base

        # Fill up to N recorded workloads; the rest exit at once (recorded, not running).
        for i in range(a.admissions, a.workloads):
            st, body = call(d.sock, "POST", "/v1/workloads", {"name": f"rec-{i}", "command": ["true"]})
            if st != 201:
                raise RuntimeError(body)
        time.sleep(2)
        run = lambda *args: subprocess.run([gpumux, *args], env=env, stdout=subprocess.DEVNULL, check=True)
        results["ps_json_ms"] = median_ms(lambda: run("ps", "-o", "json"), 21)
        results["info_cli_ms"] = median_ms(lambda: run("info", "-o", "json"), 21)
        results["rss_loaded_kib"] = rss_kib(d.proc.pid)
        restart_full = [d.kill9_and_restart() for _ in range(a.restarts)]
        results["restart_loaded_ms"] = statistics.median(restart_full) * 1000
        results["workloads"] = a.workloads
    finally:
        d.stop()
        kill_tagged(tmp)
        remove_cgroups(tmp)
        shutil.rmtree(tmp, ignore_errors=True)

    r = results
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, {platform.platform()}")
    print(f"admissions: {r['admissions']} workloads in a row: {r['admissions_per_s']:.0f}/s "
          f"({r['admission_ms']:.2f} ms each; a GET /v1/info round trip: {r['info_roundtrip_ms']:.2f} ms, "
          f"ratio {r['admission_ms'] / r['info_roundtrip_ms']:.1f}x)")
    print(f"gpumux ps -o json with {r['workloads']} workloads: {r['ps_json_ms']:.1f} ms median "
          f"(gpumux info -o json: {r['info_cli_ms']:.1f} ms, ratio {r['ps_json_ms'] / r['info_cli_ms']:.2f}x)")
    print(f"daemon RSS: idle {r['rss_idle_kib'] / 1024:.1f} MiB, with {r['workloads']} workloads "
          f"{r['rss_loaded_kib'] / 1024:.1f} MiB")
    print(f"SIGKILL to answering: {r['restart_loaded_ms']:.0f} ms with {r['workloads']} workloads "
          f"({r['admissions']} running), {r['restart_empty_ms']:.0f} ms empty, "
          f"ratio {r['restart_loaded_ms'] / r['restart_empty_ms']:.1f}x")
    print("json: " + json.dumps(r))


if __name__ == "__main__":
    sys.exit(main())
