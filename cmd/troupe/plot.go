package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/troupe-ml/troupe/tensorboard"
)

type plotFlags struct {
	out           string
	tag           string
	title         string
	window        int
	width, height float64
}

func newPlotCommand(stdout, stderr io.Writer) *cobra.Command {
	f := &plotFlags{}
	cmd := &cobra.Command{
		Use:   "plot RUN... -o curves.png",
		Short: "Draw the loss curves of runs on one chart (PNG, SVG or PDF by the output's extension)",
		Long: `Draw one curve per run on one chart, to compare runs. A RUN is a loss log (--loss-log:
"step,loss" lines), a TensorBoard event file (--tensorboard), or a directory of event files
(one curve per file: a cluster's nodes side by side).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.window < 1 {
				return fmt.Errorf("--window must be >= 1, got %d", f.window)
			}
			if f.width <= 0 || f.height <= 0 {
				return fmt.Errorf("--width and --height must be > 0 centimetres")
			}
			var curves []curve
			for _, a := range args {
				c, err := readCurves(a, f.tag)
				if err != nil {
					return err
				}
				curves = append(curves, c...)
			}
			if err := drawCurves(curves, f); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s: %d curves\n", f.out, len(curves))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.out, "output", "o", "curves.png", "the chart's file: .png, .svg or .pdf")
	fl.StringVar(&f.tag, "tag", "train/loss", "the scalar drawn from TensorBoard event files")
	fl.StringVar(&f.title, "title", "", "the chart's title")
	fl.IntVar(&f.window, "window", 1, "draw the mean of this many steps around each point (1: the raw values)")
	fl.Float64Var(&f.width, "width", 16, "width in centimetres")
	fl.Float64Var(&f.height, "height", 10, "height in centimetres")
	return cmd
}

// curve is one run's values by step.
type curve struct {
	name  string
	steps []int64
	vals  []float64
}

// readCurves reads the curves a RUN argument names: a loss log, an event file, or a directory
// of event files.
func readCurves(path, tag string) ([]curve, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		files, _ := filepath.Glob(filepath.Join(path, "*tfevents*"))
		if len(files) == 0 {
			return nil, fmt.Errorf("%s: no TensorBoard event files (events.out.tfevents.*) in it", path)
		}
		slices.Sort(files)
		var out []curve
		for _, file := range files {
			c, err := readEventCurve(file, tag)
			if err != nil {
				return nil, err
			}
			if len(files) > 1 {
				c.name = filepath.Base(path) + " " + strings.TrimPrefix(filepath.Base(file), "events.out.tfevents.")
			} else {
				c.name = filepath.Base(path)
			}
			out = append(out, c)
		}
		return out, nil
	}
	if strings.Contains(filepath.Base(path), "tfevents") {
		c, err := readEventCurve(path, tag)
		return []curve{c}, err
	}
	c, err := readLossLog(path)
	return []curve{c}, err
}

func readEventCurve(path, tag string) (curve, error) {
	events, err := tensorboard.ReadFile(path)
	if err != nil && !(errors.Is(err, tensorboard.ErrCorrupt) && len(events) > 0) {
		return curve{}, err // a torn last record (a run still writing) keeps what came before
	}
	c := curve{name: filepath.Base(path)}
	for _, ev := range events {
		if v, ok := ev.Values[tag]; ok {
			c.steps, c.vals = append(c.steps, ev.Step), append(c.vals, float64(v))
		}
	}
	if len(c.steps) == 0 {
		return c, fmt.Errorf("%s: no %q scalars (--tag names another)", path, tag)
	}
	return c, nil
}

// readLossLog reads a --loss-log file: a "step,loss" header, then one step a line.
func readLossLog(path string) (curve, error) {
	file, err := os.Open(path)
	if err != nil {
		return curve{}, err
	}
	defer file.Close()
	c := curve{name: strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))}
	sc := bufio.NewScanner(file)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if n == 1 {
			if line != "step,loss" {
				return c, fmt.Errorf("%s: line 1 is %q, want the loss log's header step,loss (or give a TensorBoard event file)", path, line)
			}
			continue
		}
		if line == "" {
			continue
		}
		s, l, ok := strings.Cut(line, ",")
		step, err1 := strconv.ParseInt(s, 10, 64)
		loss, err2 := strconv.ParseFloat(l, 64)
		if !ok || err1 != nil || err2 != nil {
			return c, fmt.Errorf("%s: line %d: %q is not step,loss", path, n, line)
		}
		c.steps, c.vals = append(c.steps, step), append(c.vals, loss)
	}
	if err := sc.Err(); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	if len(c.steps) == 0 {
		return c, fmt.Errorf("%s: no steps", path)
	}
	return c, nil
}

// drawCurves plots the curves, each smoothed over the window, and saves the chart.
func drawCurves(curves []curve, f *plotFlags) error {
	p := plot.New()
	p.Title.Text = f.title
	p.X.Label.Text = "step"
	p.Y.Label.Text = f.tag
	if f.tag == "train/loss" {
		p.Y.Label.Text = "loss"
	}
	p.X.Tick.Marker, p.Y.Tick.Marker = plainTicks{}, plainTicks{}
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	for i, c := range curves {
		xy := make(plotter.XYs, len(c.steps))
		for j := range c.steps {
			lo, hi := max(j-f.window/2, 0), min(j+(f.window+1)/2, len(c.vals))
			var sum float64
			for _, v := range c.vals[lo:hi] {
				sum += v
			}
			xy[j] = plotter.XY{X: float64(c.steps[j]), Y: sum / float64(hi-lo)}
		}
		line, err := plotter.NewLine(xy)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err) // NaN or infinite values
		}
		line.Color = plotutil.Color(i)
		line.Width = vg.Points(1.5)
		line.Dashes = plotutil.Dashes(i / len(plotutil.DefaultColors))
		p.Add(line)
		p.Legend.Add(c.name, line)
	}
	if err := p.Save(vg.Length(f.width)*vg.Centimeter, vg.Length(f.height)*vg.Centimeter, f.out); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}

// plainTicks are gonum's default ticks labelled in the shortest form ("250", not "250.00").
type plainTicks struct{}

func (plainTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i, t := range ticks {
		if t.Label != "" {
			ticks[i].Label = strconv.FormatFloat(t.Value, 'g', 6, 64)
		}
	}
	return ticks
}
