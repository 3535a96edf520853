package tensorboard_test

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/troupe-ml/troupe/tensorboard"
)

func TestEventsReadBack(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "runs", "a")
	w, err := tensorboard.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(filepath.Base(w.Path()), "events.out.tfevents.") || filepath.Dir(w.Path()) != dir {
		t.Fatalf("event file %s: TensorBoard looks for events.out.tfevents.* in the log directory", w.Path())
	}
	long := strings.Repeat("x", 200) // a length that takes two varint bytes
	at := time.Unix(1_700_000_000, 250_000_000)
	steps := []struct {
		step    int64
		scalars []tensorboard.Scalar
	}{
		{0, []tensorboard.Scalar{{Tag: "train/loss", Value: 2.302585}}},
		{1, []tensorboard.Scalar{{Tag: "train/loss", Value: 1.5}, {Tag: "train/lr", Value: 1e-3}}},
		{300, []tensorboard.Scalar{{Tag: long, Value: -0.25}, {Tag: "nan", Value: math.NaN()}}},
		{1 << 40, []tensorboard.Scalar{{Tag: "big", Value: 1e30}}},
		{-3, []tensorboard.Scalar{{Tag: "negative step", Value: 7}}},
	}
	for _, s := range steps {
		if err := w.Add(s.step, at, s.scalars...); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	events, err := tensorboard.ReadFile(w.Path())
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1+len(steps) || events[0].FileVersion != tensorboard.FileVersion {
		t.Fatalf("%d events, first %+v: want the file version, then %d summaries", len(events), events[0], len(steps))
	}
	if math.Abs(events[0].WallTime-float64(time.Now().Unix())) > 60 {
		t.Errorf("the version event's wall time %v is not now", events[0].WallTime)
	}
	for i, s := range steps {
		ev := events[1+i]
		if ev.Step != s.step || ev.WallTime != 1_700_000_000.25 || len(ev.Values) != len(s.scalars) {
			t.Fatalf("event %d: %+v, want step %d at 1700000000.25 with %d values", i, ev, s.step, len(s.scalars))
		}
		for _, sc := range s.scalars {
			got, ok := ev.Values[sc.Tag]
			if want := float32(sc.Value); !ok || (got != want && !(math.IsNaN(float64(got)) && math.IsNaN(float64(want)))) {
				t.Errorf("event %d: %q = %v (present %v), want %v", i, sc.Tag, got, ok, want)
			}
		}
	}
	// A flipped byte is caught by the checksums.
	raw, _ := os.ReadFile(w.Path())
	raw[len(raw)-10] ^= 1
	bad := filepath.Join(t.TempDir(), "events.out.tfevents.bad")
	os.WriteFile(bad, raw, 0o644)
	if _, err := tensorboard.ReadFile(bad); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("a corrupted record read back without a checksum error: %v", err)
	}
}

// Writers in one directory (nodes on one host, or one process writing twice) get files of
// their own.
func TestTwoWritersTwoFiles(t *testing.T) {
	dir := t.TempDir()
	a, err := tensorboard.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := tensorboard.Create(dir) // the same second, the same process
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c, err := tensorboard.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if a.Path() == b.Path() || b.Path() == c.Path() || a.Path() == c.Path() {
		t.Fatalf("writers share a file: %s %s %s", a.Path(), b.Path(), c.Path())
	}
}

// Parse takes any bytes without panicking: a clean file, a torn one, a hostile length.
func FuzzParse(f *testing.F) {
	dir := f.TempDir()
	w, err := tensorboard.Create(dir)
	if err != nil {
		f.Fatal(err)
	}
	w.Add(3, time.Unix(1, 0), tensorboard.Scalar{Tag: "train/loss", Value: 0.5}, tensorboard.Scalar{Tag: "lr", Value: 1e-3})
	w.Close()
	raw, _ := os.ReadFile(w.Path())
	f.Add(raw)
	f.Add(raw[:len(raw)-3])
	f.Add(raw[:13])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		events, err := tensorboard.Parse(b)
		if err == nil && len(b) > 0 && len(events) == 0 {
			t.Fatal("bytes that parse without error hold at least one event")
		}
	})
}

// A file a writer is still appending to ends in a partial record: the events before it are
// read, and the error says the rest is torn.
func TestParseTornFile(t *testing.T) {
	w, err := tensorboard.Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for step := range int64(3) {
		w.Add(step, time.Now(), tensorboard.Scalar{Tag: "x", Value: float64(step)})
	}
	w.Close()
	raw, _ := os.ReadFile(w.Path())
	events, err := tensorboard.Parse(raw[:len(raw)-5])
	if !errors.Is(err, tensorboard.ErrCorrupt) || len(events) != 3 { // the version and two steps
		t.Fatalf("torn file: %d events, err %v; want 3 and ErrCorrupt", len(events), err)
	}
}
