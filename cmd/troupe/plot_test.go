package main

import (
	"context"
	"fmt"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/plot/plotutil"

	"github.com/troupe-ml/troupe/tensorboard"
)

// troupe plot draws a loss log and an event file as two curves of their own colours on one
// PNG, and refuses a file that is neither with the line that is wrong.
func TestPlotTwoRuns(t *testing.T) {
	dir := t.TempDir()
	var log strings.Builder
	log.WriteString("step,loss\n")
	for s := range 200 {
		fmt.Fprintf(&log, "%d,%g\n", s, 2.3*math.Exp(-float64(s)/60)+0.1)
	}
	lossLog := filepath.Join(dir, "run-a.csv")
	if err := os.WriteFile(lossLog, []byte(log.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	tb, err := tensorboard.Create(filepath.Join(dir, "run-b"))
	if err != nil {
		t.Fatal(err)
	}
	for s := range int64(200) {
		tb.Add(s, time.Now(), tensorboard.Scalar{Tag: "train/loss", Value: 2.3*math.Exp(-float64(s)/30) + 0.3})
	}
	tb.Close()
	out := filepath.Join(dir, "curves.png")
	var stdout, stderr syncBuffer
	if code := run(context.Background(), []string{"plot", lossLog, filepath.Join(dir, "run-b"), "-o", out, "--title", "two runs"}, &stdout, &stderr); code != 0 {
		t.Fatalf("plot exited %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "2 curves") {
		t.Errorf("plot said %q, want 2 curves", stdout.String())
	}
	file, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	img, err := png.Decode(file)
	if err != nil {
		t.Fatalf("%s is not a PNG: %v", out, err)
	}
	if b := img.Bounds(); b.Dx() < 400 || b.Dy() < 250 {
		t.Fatalf("image %v, want about 16 x 10 cm", b)
	}
	for i := range 2 {
		want := color.NRGBAModel.Convert(plotutil.Color(i)).(color.NRGBA)
		found := 0
		b := img.Bounds()
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				if c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA); c == want {
					found++
				}
			}
		}
		if found < 100 {
			t.Errorf("curve %d: %d pixels of its colour %v, want a line of them", i, found, want)
		}
	}
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("step,loss\n0,1.5\n1,oops\n"), 0o644)
	if code := run(context.Background(), []string{"plot", bad, "-o", filepath.Join(dir, "x.png")}, &stdout, &stderr); code == 0 ||
		!strings.Contains(stderr.String(), "line 3") {
		t.Errorf("a bad loss log: exit %d, %q; want an error naming line 3", code, stderr.String())
	}
}
