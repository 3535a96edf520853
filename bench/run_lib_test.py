"""Checks bench/run's parsers and report on recorded output. Run: bench/run --self-test."""
import json
import unittest

import run_lib as lib

GEMM_WITH_THREADS = """goos: linux
goarch: amd64
pkg: github.com/troupe-ml/troupe/kernels
cpu: AMD EPYC
BenchmarkGemm/default/square/256/threads=1-2         	     520	   2261403 ns/op	        14.84 GFLOP/s
BenchmarkGemm/default/square/256/threads=2-2         	     900	   1209870 ns/op	        27.73 GFLOP/s
BenchmarkGemm/default/square/1024/threads=1-2        	      10	 100000000 ns/op	        21.47 GFLOP/s
BenchmarkGemm/default/square/1024/threads=2-2        	      20	  55000000 ns/op	        39.05 GFLOP/s
BenchmarkGemm/default/forward/128x784x512-2          	     300	   4000000 ns/op	        25.69 GFLOP/s
PASS
"""

GEMM_THREADS_LEVEL = """BenchmarkGemm/default/threads=1/square/256-2     	    2000	    600000 ns/op	        55.90 GFLOP/s
BenchmarkGemm/default/threads=2/square/256-2     	    4000	    300000 ns/op	       111.80 GFLOP/s
BenchmarkGemm/default/threads=1/forward/128x784x512-2     	    2000	    600000 ns/op	        25.00 GFLOP/s
BenchmarkGemm/gonum/threads=1/square/256-2     	    1000	   1900000 ns/op	        17.66 GFLOP/s
"""

GEMM_THREADS_FIRST = """BenchmarkGemm/default/square/threads=2/n=512 	 100	 10000000 ns/op	 26.84 GFLOP/s
BenchmarkGemm/default/square/threads=1/n=512 	 100	 20000000 ns/op	 13.42 GFLOP/s
"""

ALLREDUCE = """BenchmarkAllReduceProcesses/ranks=2/MiB=1-2         	     160	    506108 ns/op	         2.072 busGB/s
BenchmarkAllReduceProcesses/ranks=4/MiB=64-2        	      20	 109007400 ns/op	         0.9235 busGB/s
BenchmarkAllReduceProcesses/ranks=4/MiB=64          	      20	 109007400 ns/op	         0.95 busGB/s
"""

TORCH_OUT = """epoch 1: 2.10s  train_loss 0.2000  test_acc 0.9650
RESULT {"samples_per_s": 28000.5, "peak_rss_mib": 510.4, "steps": 469, "test_acc": 0.965}
"""


class Parsers(unittest.TestCase):
    def test_gemm_square_with_threads_split(self):
        got = lib.parse_gemm_square(GEMM_WITH_THREADS)
        self.assertEqual(got, {(1, 256): [14.84], (2, 256): [27.73], (1, 1024): [21.47], (2, 1024): [39.05]})

    def test_gemm_square_threads_level_before_square(self):
        self.assertEqual(lib.parse_gemm_square(GEMM_THREADS_LEVEL), {(1, 256): [55.9], (2, 256): [111.8]})

    def test_gemm_square_threads_first_and_no_suffix(self):
        self.assertEqual(lib.parse_gemm_square(GEMM_THREADS_FIRST), {(2, 512): [26.84], (1, 512): [13.42]})

    def test_gemm_square_falls_back_to_gomaxprocs(self):
        text = "BenchmarkGemm/default/square/2048-2  3  400000000 ns/op  42.9 GFLOP/s\n" \
               "BenchmarkGemm/default/square/2048  3  800000000 ns/op  21.4 GFLOP/s\n"
        self.assertEqual(lib.parse_gemm_square(text), {(2, 2048): [42.9], (1, 2048): [21.4]})

    def test_gemm_without_square_gives_nothing(self):
        self.assertEqual(lib.parse_gemm_square("BenchmarkGemm/default/forward/128x784x512-2 1 1 ns/op 3 GFLOP/s\nPASS\n"), {})

    def test_allreduce(self):
        self.assertEqual(lib.parse_allreduce_processes(ALLREDUCE), {(2, 1): [2.072], (4, 64): [0.9235, 0.95]})

    def test_result_lines_and_troupe_json(self):
        self.assertEqual(lib.parse_result_lines(TORCH_OUT)[0]["samples_per_s"], 28000.5)
        blob = json.dumps({"samples_per_second": 3266.4, "peak_rss_bytes": 137748480})
        self.assertEqual(lib.parse_troupe_json("\n" + blob + "\n")["peak_rss_bytes"], 137748480)
        with self.assertRaises(ValueError):
            lib.parse_troupe_json("panic: boom\n")


class Report(unittest.TestCase):
    def raw(self):
        return {
            "troupe_mlp_t1_samples_per_s": [3000.0, 4000.0, 3500.0],
            "pytorch_mlp_t1_samples_per_s": [20000.0, None, 14000.0],
            "troupe_mlp_t2_samples_per_s": [5000.0, 6000.0, 7000.0],
            "pytorch_mlp_t2_samples_per_s": [30000.0, 30000.0, 30000.0],
            "troupe_mlp_t1_peak_rss_mib": [130.0, 140.0, 150.0],
            "pytorch_mlp_t1_peak_rss_mib": [500.0, 520.0, 510.0],
            "troupe_sgemm_1024_t1_gflops": [20.0, 22.0],
            "openblas_sgemm_1024_t1_gflops": [100.0, 110.0],
            "openblas_sgemm_2048_t1_gflops": [120.0, 120.0],
            "troupe_allreduce_64mib_2n_busgbps": [2.0, 2.2],
            "gloo_allreduce_64mib_2n_busgbps": [1.0, 1.0],
            "troupe_allreduce_64mib_4n_busgbps": [0.9, None],
            "gloo_allreduce_64mib_4n_busgbps": [0.5, 0.4],
        }

    def test_ratios_are_ratios_of_medians(self):
        r = lib.build_report(self.raw(), {"mode": "quick"})
        self.assertEqual(r["mode"], "quick")
        self.assertAlmostEqual(r["mlp_t1_ratio_vs_pytorch"], 3500.0 / 17000.0)
        self.assertAlmostEqual(r["mlp_t2_over_t1"], 6000.0 / 3500.0)
        self.assertAlmostEqual(r["pytorch_mlp_t2_over_t1"], 30000.0 / 17000.0)
        self.assertAlmostEqual(r["sgemm_1024_ratio_vs_openblas"], 21.0 / 105.0)
        self.assertAlmostEqual(r["allreduce_64mib_2n_ratio_vs_gloo"], 2.1)
        self.assertAlmostEqual(r["allreduce_64mib_4n_ratio_vs_gloo"], 0.9 / 0.45)
        self.assertAlmostEqual(r["rss_ratio_vs_pytorch"], 140.0 / 510.0)
        self.assertEqual(r["medians"]["pytorch_mlp_t1_samples_per_s"], 17000.0)
        self.assertEqual(r["runs"]["pytorch_mlp_t1_samples_per_s"]["n"], 2)

    def test_missing_sides_give_null_and_are_listed(self):
        r = lib.build_report(self.raw(), {})
        self.assertIsNone(r["sgemm_2048_ratio_vs_openblas"])
        self.assertIsNone(r["sgemm_256_ratio_vs_openblas"])
        self.assertIn("troupe_sgemm_2048_t1_gflops", r["missing"])
        self.assertNotIn("openblas_sgemm_2048_t1_gflops", r["missing"])
        self.assertIn("troupe_cnn_t1_samples_per_s", r["missing"])
        self.assertIsNone(r["cnn_t2_over_t1"])
        json.dumps(r)  # the report must be plain JSON

    def test_figures_out_of_scope_are_left_out(self):
        r = lib.build_report(self.raw(), {"sections": ["mlp", "allreduce"], "allreduce_sizes_mib": [64]})
        self.assertIn("allreduce_64mib_4n_ratio_vs_gloo", r)
        self.assertNotIn("allreduce_1mib_2n_ratio_vs_gloo", r)
        self.assertNotIn("sgemm_1024_ratio_vs_openblas", r)
        self.assertNotIn("troupe_cnn_t1_samples_per_s", r["missing"])
        t = lib.format_table(r)
        self.assertNotIn("sgemm", t)
        self.assertNotIn("CNN", t)
        self.assertNotIn("1 MiB", t)

    def test_sgemm_threads_scope(self):
        r = lib.build_report(self.raw(), {"sgemm_threads": [1]})
        self.assertIn("sgemm_1024_ratio_vs_openblas", r)
        self.assertNotIn("sgemm_1024_t2_ratio_vs_openblas", r)
        self.assertIn("sgemm_1024_t2_ratio_vs_openblas", lib.build_report(self.raw(), {}))

    def test_table_shows_medians_ranges_and_missing(self):
        t = lib.format_table(lib.build_report(self.raw(), {}))
        row = next(l for l in t.splitlines() if l.startswith("MLP training, 1 thread "))
        self.assertIn("3,500 [3,000-4,000]", row)
        self.assertIn("17,000 [14,000-20,000]", row)
        self.assertIn("0.206", row)
        row = next(l for l in t.splitlines() if l.startswith("sgemm 2048, 1 thread "))
        self.assertIn("missing", row)


if __name__ == "__main__":
    unittest.main()
