#!/usr/bin/python3
"""troupe's Gemm against OpenBLAS (through torch.mm) at the shapes BenchmarkGemm names: the
square sizes and a GPT's own products, with the same transposition on both sides.

  bench/gemm_shapes.py [--threads 1,2] [--reps 3] [--filter gpt] [--min-time 0.5]

Each repetition runs troupe's benchmark binary and then torch, the order swapped from one
repetition to the next; it prints per shape the median over the repetitions of each side's
median per-call GFLOP/s and their ratio (above 1: troupe is faster). OpenBLAS runs its own
choice of kernels for this CPU, as shared/bench's --openblas-core auto (REFERENCE_BENCH names that
folder, default ../shared/bench, whose _common.py tells which BLAS torch loaded).
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.dont_write_bytecode = True
sys.path.insert(0, os.environ.get("REFERENCE_BENCH", os.path.join(ROOT, "..", "shared", "bench")))
import _common  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--threads", default="1,2", help="thread counts, each run on both sides")
ap.add_argument("--reps", type=int, default=3)
ap.add_argument("--filter", default="", help="only shapes whose name contains this")
ap.add_argument("--min-time", type=float, default=0.5, help="seconds per shape and side")
args = ap.parse_args()
threads = [int(t) for t in args.threads.split(",")]
if not os.path.exists(os.path.join(_common.BLAS_DIRS["openblas"][0], "libblas.so.3")):
    sys.exit(f"{_common.BLAS_DIRS['openblas'][0]}/libblas.so.3 missing (apt-get install libopenblas0-pthread)")
if os.environ.get("_GEMM_SHAPES_REEXEC") != "1":
    # OpenBLAS reads its environment when it loads: its best kernel set for this CPU (no
    # OPENBLAS_CORETYPE), enough threads for the largest count (each shape sets its own).
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    env.update(OPENBLAS_NUM_THREADS=str(max(threads)), OMP_NUM_THREADS="1", _GEMM_SHAPES_REEXEC="1",
               LD_LIBRARY_PATH=":".join(_common.BLAS_DIRS["openblas"] + [os.environ.get("LD_LIBRARY_PATH", "")]).rstrip(":"))
    os.execve(sys.executable, [sys.executable] + sys.argv, env)

import ctypes  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)  # torch.mm hands the product to BLAS, whose threads are set below
info = _common.loaded_blas()
if "openblas_core" not in info:
    sys.exit(f"torch is not running on OpenBLAS here: {info}")
blas = ctypes.CDLL(info["blas_lib"])

LINE = re.compile(r"^BenchmarkGemm/default/threads=(\d+)/(\S+?)(?:-\d+)?\s+\d+\s+.*?([\d.]+) median-GFLOP/s")


def shape_of(name):
    """(transA, transB, m, n, k) of a BenchmarkGemm shape name."""
    dims = [int(x) for x in re.findall(r"\d+", name.split("/")[-1])]
    m, n, k = (dims * 3)[:3] if len(dims) == 1 else dims
    trans_a = "dW" in name or "transA" in name
    trans_b = "forward" in name or "scores" in name
    return trans_a, trans_b, m, n, k


def troupe(binary, threads):
    pattern = rf"^BenchmarkGemm$/^default$/^threads=({'|'.join(map(str, threads))})$/"
    out = subprocess.run([binary, "-test.run", "^$", "-test.bench", pattern, "-test.benchtime", f"{args.min_time}s"],
                         cwd=os.path.join(ROOT, "kernels"), capture_output=True, text=True, check=True).stdout
    got = {}
    for line in out.splitlines():
        m = LINE.match(line)
        if m and args.filter in m.group(2) and not m.group(2).startswith("conv"):
            got[(int(m.group(1)), m.group(2))] = float(m.group(3))
    return got


def openblas(names, threads):
    got, rng = {}, np.random.default_rng(0)
    for t in threads:
        blas.openblas_set_num_threads(t)
        for name in names:
            ta, tb, m, n, k = shape_of(name)
            a = torch.from_numpy(rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32))
            b = torch.from_numpy(rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32))
            a, b = (a.t() if ta else a), (b.t() if tb else b)  # views: BLAS gets the transpose flag
            c = torch.empty((m, n), dtype=torch.float32)
            torch.mm(a, b, out=c)
            times, end = [], time.perf_counter() + args.min_time
            while len(times) < 3 or time.perf_counter() < end:
                t0 = time.perf_counter()
                torch.mm(a, b, out=c)
                times.append(time.perf_counter() - t0)
            got[(t, name)] = 2.0 * m * n * k / statistics.median(times) / 1e9
    return got


with tempfile.TemporaryDirectory() as tmp:
    binary = os.path.join(tmp, "kernels.test")
    subprocess.run(["go", "test", "-c", "-o", binary, "./kernels"], cwd=ROOT, check=True)
    ours, theirs = {}, {}
    for rep in range(args.reps):
        for side in ("troupe", "openblas") if rep % 2 == 0 else ("openblas", "troupe"):
            if side == "troupe":
                for key, v in troupe(binary, threads).items():
                    ours.setdefault(key, []).append(v)
            else:  # the first repetition ran troupe first: its names are known
                for key, v in openblas(sorted({name for _, name in ours}), threads).items():
                    theirs.setdefault(key, []).append(v)
        print(f"repetition {rep + 1}/{args.reps} done", file=sys.stderr, flush=True)

print(f"OpenBLAS {info['openblas_config']} ({info['openblas_core']} kernels); GFLOP/s, median of {args.reps} repetitions")
print(f"{'shape':44} {'threads':>7} {'troupe':>8} {'openblas':>9} {'ratio':>6}")
for key in sorted(ours, key=lambda k: (k[0], k[1])):
    if key not in theirs:
        continue
    a, b = statistics.median(ours[key]), statistics.median(theirs[key])
    print(f"{key[1]:44} {key[0]:>7} {a:8.1f} {b:9.1f} {a / b:6.2f}")
