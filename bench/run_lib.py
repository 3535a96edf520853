"""Parsing, statistics and the report of bench/run, kept free of side effects so that
bench/run_lib_test.py can check them on recorded output.

Measurements are kept as a dict: figure name -> list of values, one per repetition (None where
a repetition produced nothing). Names start with who measured them: troupe_, pytorch_,
openblas_ (sgemm through torch.mm) or gloo_.
"""
import json
import re
import statistics

GEMM_SIZES = (256, 512, 1024, 2048, 4096)
ALLREDUCE_SIZES_MIB = (1, 16, 64)
ALLREDUCE_WORLDS = (2, 4)
MiB = 1 << 20

# A `go test -bench` result line: name, optional -GOMAXPROCS suffix, iterations, then
# value/unit pairs.
_BENCH_LINE = re.compile(r"^(Benchmark\S*?)(?:-(\d+))?\s+(\d+)\s+(.*)$")


def parse_go_bench(text):
    """Yield (name, gomaxprocs, {unit: value}) for every result line of go test -bench output."""
    for line in text.splitlines():
        m = _BENCH_LINE.match(line.strip())
        if not m:
            continue
        fields = m.group(4).split()
        metrics = {}
        for value, unit in zip(fields[0::2], fields[1::2]):
            try:
                metrics[unit] = float(value)
            except ValueError:
                pass
        yield m.group(1), int(m.group(2) or 1), metrics


def parse_gemm_square(text):
    """GFLOP/s of BenchmarkGemm/default/.../square/... lines as {(threads, n): [values]}.

    Both layouts count: default/threads=T/square/N and default/square/N[/threads=T]. The size is
    the number (or n=NUMBER, or NxNxN) after "square"; the thread count is the threads=T element
    when there is one, else the -N GOMAXPROCS suffix.
    """
    out = {}
    for name, procs, metrics in parse_go_bench(text):
        parts = name.split("/")
        if parts[:2] != ["BenchmarkGemm", "default"] or "square" not in parts[2:] or "GFLOP/s" not in metrics:
            continue
        n, threads = None, procs
        for p in parts[2:]:
            t = re.fullmatch(r"(?:threads|t)=(\d+)", p)
            if t:
                threads = int(t.group(1))
        after = parts[parts.index("square") + 1:]
        for p in after:
            s = re.fullmatch(r"(?:n=)?(\d+)", p) or re.fullmatch(r"(\d+)x\1x\1", p)
            if s:
                n = int(s.group(1))
                break
        if n is None:
            continue
        out.setdefault((threads, n), []).append(metrics["GFLOP/s"])
    return out


# The -test.bench pattern for the above: go test matches it level by level (split at slashes).
def gemm_square_bench(threads):
    """The -test.bench pattern that selects the square sizes, at these thread counts where the
    benchmark's names put threads= before square."""
    t = "|".join(str(x) for x in threads)
    return rf"^BenchmarkGemm$/^default$/^(square|threads=({t}))$/^(square|[0-9]+)$"


def parse_allreduce_processes(text):
    """busGB/s of BenchmarkAllReduceProcesses/ranks=W/MiB=M lines as {(W, M): [values]}."""
    out = {}
    for name, _, metrics in parse_go_bench(text):
        m = re.fullmatch(r"BenchmarkAllReduceProcesses/ranks=(\d+)/MiB=(\d+)", name)
        if m and "busGB/s" in metrics:
            out.setdefault((int(m.group(1)), int(m.group(2))), []).append(metrics["busGB/s"])
    return out


def parse_result_lines(text):
    """The dicts of the reference scripts' 'RESULT {json}' lines."""
    return [json.loads(l[len("RESULT "):]) for l in text.splitlines() if l.startswith("RESULT ")]


def parse_troupe_json(text):
    """The one JSON object `troupe train --json` prints on stdout."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise ValueError("no JSON object in troupe's output")
    return json.loads(text[start:end + 1])


def summary(values):
    """median/min/max over the values that are present; None when there are none."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "n": len(vals), "values": vals}


def ratio(num, den):
    """num's median over den's, or None when either is missing."""
    if not num or not den or not den["median"]:
        return None
    return num["median"] / den["median"]


def _gemm_key(who, n, threads):
    return f"{who}_sgemm_{n}_t{threads}_gflops"


def _ar_key(who, mib, world):
    return f"{who}_allreduce_{mib}mib_{world}n_busgbps"


def rows_spec(scope=None):
    """The figures a run meant to measure, as tuples (label, unit, troupe key, reference key or
    None, reference name, ratio key or None). scope's "sections", "sgemm_threads" and
    "allreduce_sizes_mib" narrow them; missing, they mean everything."""
    scope = scope or {}
    sections = set(scope.get("sections") or ("mlp", "cnn", "sgemm", "allreduce"))
    sgemm_threads = tuple(scope.get("sgemm_threads") or (1, 2))
    allreduce_sizes = tuple(scope.get("allreduce_sizes_mib") or ALLREDUCE_SIZES_MIB)
    rows = []
    if "mlp" in sections:
        for t, ref in ((1, "torch 1 thread"), (2, "torch 1 + OpenBLAS 2")):
            rows.append((f"MLP training, {t} thread{'s' if t > 1 else ''}", "samples/s",
                         f"troupe_mlp_t{t}_samples_per_s", f"pytorch_mlp_t{t}_samples_per_s", ref,
                         f"mlp_t{t}_ratio_vs_pytorch"))
        rows.append(("MLP peak RSS, 1 thread", "MiB", "troupe_mlp_t1_peak_rss_mib",
                     "pytorch_mlp_t1_peak_rss_mib", "torch 1 thread", "rss_ratio_vs_pytorch"))
        rows.append(("MLP peak RSS, 2 threads", "MiB", "troupe_mlp_t2_peak_rss_mib",
                     "pytorch_mlp_t2_peak_rss_mib", "torch 1 + OpenBLAS 2", "rss_t2_ratio_vs_pytorch"))
    if "cnn" in sections:
        for t in (1, 2):
            rows.append((f"CNN training, {t} thread{'s' if t > 1 else ''}", "samples/s",
                         f"troupe_cnn_t{t}_samples_per_s", None, "(no reference)", None))
    if "sgemm" in sections:
        for t in sgemm_threads:
            for n in GEMM_SIZES:
                suffix = "" if t == 1 else "_t2"
                rows.append((f"sgemm {n}, {t} thread{'s' if t > 1 else ''}", "GFLOP/s",
                             _gemm_key("troupe", n, t), _gemm_key("openblas", n, t),
                             f"OpenBLAS {t} thread{'s' if t > 1 else ''}",
                             f"sgemm_{n}{suffix}_ratio_vs_openblas"))
    if "allreduce" in sections:
        for w in ALLREDUCE_WORLDS:
            for mib in allreduce_sizes:
                rows.append((f"all-reduce {mib} MiB, {w} nodes", "busGB/s", _ar_key("troupe", mib, w),
                             _ar_key("gloo", mib, w), "gloo", f"allreduce_{mib}mib_{w}n_ratio_vs_gloo"))
    return rows


def build_report(raw, meta):
    """The JSON object bench/run prints: meta, every ratio, the medians and every run's values.

    raw maps figure names to per-repetition values; meta says what the run meant to measure
    (see rows_spec). A ratio whose either side was not
    measured is null, and the figure is listed under "missing".
    """
    stats = {k: summary(v) for k, v in sorted(raw.items())}
    report = dict(meta)
    missing = []
    for _, _, tk, rk, _, key in rows_spec(meta):
        if key is None:
            if stats.get(tk) is None:
                missing.append(tk)
            continue
        report[key] = ratio(stats.get(tk), stats.get(rk))
        if report[key] is None:
            missing.extend(k for k in (tk, rk) if stats.get(k) is None)
    for who in ("troupe", "pytorch"):
        key = "mlp_t2_over_t1" if who == "troupe" else "pytorch_mlp_t2_over_t1"
        report[key] = ratio(stats.get(f"{who}_mlp_t2_samples_per_s"), stats.get(f"{who}_mlp_t1_samples_per_s"))
    report["cnn_t2_over_t1"] = ratio(stats.get("troupe_cnn_t2_samples_per_s"), stats.get("troupe_cnn_t1_samples_per_s"))
    report["medians"] = {k: (s["median"] if s else None) for k, s in stats.items()}
    report["runs"] = {k: s for k, s in stats.items() if s}
    report["missing"] = sorted(set(missing))
    return report


def _num(v, unit):
    if v is None:
        return "-"
    if unit in ("samples/s", "MiB") and abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"


def _cell(s, unit):
    if not s:
        return "missing"
    if s["n"] == 1:
        return _num(s["median"], unit)
    return f"{_num(s['median'], unit)} [{_num(s['min'], unit)}-{_num(s['max'], unit)}]"


def format_table(report):
    """A plain-text table of the report: medians [min-max] and ratios."""
    runs = report.get("runs", {})
    lines = []
    head = ("figure", "unit", "troupe median [min-max]", "reference median [min-max]", "reference", "troupe/ref")
    body = []
    for label, unit, tk, rk, refname, key in rows_spec(report):
        ref_cell = _cell(runs.get(rk), unit) if rk else ""
        r = report.get(key) if key else None
        body.append((label, unit, _cell(runs.get(tk), unit), ref_cell, refname,
                     f"{r:.3f}" if r is not None else ("-" if key is None else "missing")))
    sections = report.get("sections") or ("mlp", "cnn")
    for label, key, sec in (("MLP 2 threads / 1 thread, troupe", "mlp_t2_over_t1", "mlp"),
                            ("MLP 2 threads / 1 thread, torch", "pytorch_mlp_t2_over_t1", "mlp"),
                            ("CNN 2 threads / 1 thread, troupe", "cnn_t2_over_t1", "cnn")):
        if sec not in sections:
            continue
        r = report.get(key)
        body.append((label, "ratio", f"{r:.3f}" if r is not None else "missing", "", "", ""))
    widths = [max(len(str(r[i])) for r in [head] + body) for i in range(len(head))]
    fmt = lambda r: " | ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    lines.append(fmt(head))
    lines.append("-+-".join("-" * w for w in widths))
    lines.extend(fmt(r) for r in body)
    return "\n".join(lines)
