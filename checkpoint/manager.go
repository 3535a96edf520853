package checkpoint

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Snapshot is the state a run needs to go on from where it stopped.
type Snapshot struct {
	Step      int64             // the next step to run (the data cursor): every step < Step was applied
	Epoch     int               // the data epoch Step falls in
	Seed      uint64            // the run's seed
	Meta      map[string]string // free-form: job name, model fingerprint, optimizer name...
	Params    []float32         // the flat parameter vector
	Optimizer OptimizerState
	Extra     []byte // opaque to this package, e.g. JSON of the metrics history
	// Generation and World name the world that trained up to Step (a cluster's generation and
	// members in rank order; zero and nil for a run in one process). The manifest records
	// them too, so a listing tells which world wrote what.
	Generation uint64
	World      []string
}

// OptimizerState is an optimizer's name, its own step counter and its state vectors (for Adam,
// the moment estimates), each as long as the optimizer defines.
type OptimizerState struct {
	Name    string
	Step    int64
	Buffers [][]float32
}

// Info describes one checkpoint folder as List sees it, from its manifest only: parts are not
// read or verified.
type Info struct {
	Name      string    // ckpt-<step, 12 digits>
	Step      int64     // Snapshot.Step of the checkpoint
	Committed bool      // a well-formed manifest is present
	Created   time.Time // from the manifest; zero when not committed
	Bytes     int64     // total size of the parts the manifest lists
}

// SkipReport says why LoadLatest passed over a checkpoint newer than the one it returned.
type SkipReport struct {
	Name   string // the checkpoint folder
	Reason string // the part at fault and what is wrong, e.g. "params.bin: sha256 mismatch"
}

func (r SkipReport) String() string { return r.Name + ": " + r.Reason }

// Errors of the Manager.
var (
	ErrNoCheckpoint = errors.New("checkpoint: no valid checkpoint")
	ErrCorrupt      = errors.New("checkpoint: corrupt checkpoint")
	ErrBadSnapshot  = errors.New("checkpoint: invalid snapshot")
	ErrPrune        = errors.New("checkpoint: pruning old checkpoints failed")
)

const (
	namePrefix = "ckpt-"
	stepDigits = 12
)

// Name is the folder of the checkpoint of step.
func Name(step int64) string { return fmt.Sprintf("%s%0*d", namePrefix, stepDigits, step) }

// parseName returns the step of a checkpoint folder name, or false for other names.
func parseName(name string) (int64, bool) {
	digits, ok := strings.CutPrefix(name, namePrefix)
	if !ok || len(digits) < stepDigits {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	step, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || Name(step) != name {
		return 0, false
	}
	return step, true
}

// Manager saves snapshots to a Store as checkpoints, prunes old ones and loads the newest
// valid one.
type Manager struct {
	store     Store
	keep      int
	keepEvery int64
}

// NewManager returns a manager that keeps the newest keep committed checkpoints in store;
// keep <= 0 keeps them all.
func NewManager(store Store, keep int) *Manager {
	return &Manager{store: store, keep: keep}
}

// KeepEvery makes pruning spare every checkpoint whose step is a multiple of steps, besides
// the newest keep: a long run keeps a sparse history to go back to. steps <= 0 spares none.
func (m *Manager) KeepEvery(steps int64) *Manager {
	m.keepEvery = steps
	return m
}

// Save writes s as the checkpoint of s.Step: its parts first, then the manifest, which commits
// it. now is recorded as the creation time. An older commit of the same step is withdrawn
// before its parts are overwritten. After committing, Save deletes committed checkpoints
// beyond keep and uncommitted ones older than the newest committed; if only that fails, it
// returns the name with an error wrapping ErrPrune. The checkpoint just saved always survives
// pruning, even if newer ones exist. Save neither modifies nor keeps s.
func (m *Manager) Save(s *Snapshot, now time.Time) (name string, err error) {
	if s == nil || s.Step < 0 {
		return "", fmt.Errorf("%w: nil or negative step", ErrBadSnapshot)
	}
	name = Name(s.Step)
	if err := m.store.Delete(name + "/" + manifestPart); err != nil {
		return "", fmt.Errorf("checkpoint: save %s: %w", name, err)
	}
	man := manifest{FormatVersion: FormatVersion, Step: s.Step, Created: now.UTC().Format(time.RFC3339),
		Generation: s.Generation, World: s.World}
	for _, part := range dataParts {
		var data []byte
		switch part {
		case paramsPart:
			data = encodeVectors(s.Params)
		case optimizerPart:
			data = encodeVectors(s.Optimizer.Buffers...)
		case statePart:
			data = encodeState(s)
		}
		if err := m.store.Put(name+"/"+part, data); err != nil {
			return "", fmt.Errorf("checkpoint: save %s: %w", name, err)
		}
		sum := sha256.Sum256(data)
		man.Parts = append(man.Parts, partSum{Name: part, Bytes: int64(len(data)), SHA256: hex.EncodeToString(sum[:])})
	}
	if err := m.store.Put(name+"/"+manifestPart, encodeManifest(&man)); err != nil {
		return "", fmt.Errorf("checkpoint: save %s: %w", name, err)
	}
	if err := m.prune(name); err != nil {
		return name, fmt.Errorf("%w: %w", ErrPrune, err)
	}
	return name, nil
}

// folder is what the store holds of one checkpoint.
type folder struct {
	name  string
	step  int64
	files []string
}

func (f *folder) has(part string) bool { return slices.Contains(f.files, f.name+"/"+part) }

// folders lists the checkpoint folders in the store, newest first. Names that are not
// checkpoint folders are left alone.
func (m *Manager) folders() ([]*folder, error) {
	names, err := m.store.List(namePrefix)
	if err != nil {
		return nil, err
	}
	byName := map[string]*folder{}
	var out []*folder
	for _, n := range names {
		dir, _, ok := strings.Cut(n, "/")
		step, valid := parseName(dir)
		if !ok || !valid {
			continue
		}
		f := byName[dir]
		if f == nil {
			f = &folder{name: dir, step: step}
			byName[dir] = f
			out = append(out, f)
		}
		f.files = append(f.files, n)
	}
	slices.SortFunc(out, func(a, b *folder) int { return compareInt64(b.step, a.step) })
	return out, nil
}

func compareInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// prune deletes committed checkpoints beyond keep and uncommitted ones older than the newest
// committed. The checkpoint just saved always stays and takes one of the keep places, even when
// newer ones exist (a run that went back to an older step). An uncommitted checkpoint newer
// than every committed one may still be being written: it stays too.
func (m *Manager) prune(saved string) error {
	folders, err := m.folders()
	if err != nil {
		return err
	}
	others := 0 // committed checkpoints kept besides the one just saved
	newestCommitted := int64(-1)
	var errs []error
	for _, f := range folders {
		switch {
		case f.name == saved:
			newestCommitted = max(newestCommitted, f.step)
			continue
		case f.has(manifestPart):
			newestCommitted = max(newestCommitted, f.step)
			if m.keepEvery > 0 && f.step%m.keepEvery == 0 {
				continue // spared: a milestone
			}
			if m.keep <= 0 || others < m.keep-1 {
				others++
				continue
			}
		case f.step > newestCommitted:
			continue
		}
		errs = append(errs, m.deleteFolder(f))
	}
	return errors.Join(errs...)
}

// deleteFolder withdraws the manifest first, so a crash halfway leaves an uncommitted folder
// rather than a corrupt committed one.
func (m *Manager) deleteFolder(f *folder) error {
	if f.has(manifestPart) {
		if err := m.store.Delete(f.name + "/" + manifestPart); err != nil {
			return err
		}
	}
	for _, n := range f.files {
		if err := m.store.Delete(n); err != nil {
			return err
		}
	}
	return nil
}

// Clear deletes every checkpoint folder in the store, committed or not, each manifest first.
// A run that starts afresh in a directory of an earlier one calls it, so that the earlier run's
// newer steps can never be taken for its own.
func (m *Manager) Clear() error {
	folders, err := m.folders()
	if err != nil {
		return err
	}
	var errs []error
	for _, f := range folders {
		errs = append(errs, m.deleteFolder(f))
	}
	return errors.Join(errs...)
}

// List describes every checkpoint folder in the store, oldest first, from manifests alone.
func (m *Manager) List() ([]Info, error) {
	folders, err := m.folders()
	if err != nil {
		return nil, err
	}
	out := make([]Info, 0, len(folders))
	for _, f := range slices.Backward(folders) {
		info := Info{Name: f.name, Step: f.step}
		if f.has(manifestPart) {
			b, err := m.store.Get(f.name + "/" + manifestPart)
			if err != nil && !errors.Is(err, ErrNotFound) {
				return nil, err
			}
			if man, created, err := decodeManifest(b); err == nil && man.Step == f.step {
				info.Committed, info.Created = true, created
				for _, p := range man.Parts {
					info.Bytes += p.Bytes
				}
			}
		}
		out = append(out, info)
	}
	return out, nil
}

// LoadLatest returns the newest checkpoint whose manifest is valid and whose every part matches
// its size and sha256. Each newer checkpoint it passed over is described in skipped, newest
// first. With no valid checkpoint it returns ErrNoCheckpoint (and still the skipped list).
// A storage failure other than missing or damaged data stops the search with that error
// rather than falling back to an older checkpoint.
func (m *Manager) LoadLatest() (s *Snapshot, name string, skipped []SkipReport, err error) {
	folders, err := m.folders()
	if err != nil {
		return nil, "", nil, err
	}
	for _, f := range folders {
		s, err := m.Load(f.name)
		if err == nil {
			return s, f.name, skipped, nil
		}
		var corrupt *CorruptError
		if !errors.As(err, &corrupt) {
			return nil, "", skipped, err
		}
		skipped = append(skipped, SkipReport{Name: f.name, Reason: corrupt.Reason})
	}
	return nil, "", skipped, ErrNoCheckpoint
}

// CorruptError says which part of a checkpoint is missing or damaged. It wraps ErrCorrupt.
type CorruptError struct {
	Name   string // the checkpoint folder
	Reason string // the part and what is wrong with it
}

func (e *CorruptError) Error() string { return fmt.Sprintf("%v: %s: %s", ErrCorrupt, e.Name, e.Reason) }
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// Load reads and verifies the checkpoint called name. Missing or damaged data is a
// *CorruptError; other storage failures are returned as they are.
func (m *Manager) Load(name string) (*Snapshot, error) {
	step, ok := parseName(name)
	if !ok {
		return nil, fmt.Errorf("%w: %q is not a checkpoint name", ErrBadName, name)
	}
	corrupt := func(format string, args ...any) error {
		return &CorruptError{Name: name, Reason: fmt.Sprintf(format, args...)}
	}
	raw, err := m.store.Get(name + "/" + manifestPart)
	if errors.Is(err, ErrNotFound) {
		return nil, corrupt("%s missing (torn write)", manifestPart)
	}
	if err != nil {
		return nil, err
	}
	man, _, err := decodeManifest(raw)
	if err != nil {
		return nil, corrupt("%s: %v", manifestPart, err)
	}
	if man.Step != step {
		return nil, corrupt("%s: step %d does not match the folder name", manifestPart, man.Step)
	}
	parts := map[string][]byte{}
	for _, p := range man.Parts {
		data, err := m.store.Get(name + "/" + p.Name)
		if errors.Is(err, ErrNotFound) {
			return nil, corrupt("%s: missing (listed in %s)", p.Name, manifestPart)
		}
		if err != nil {
			return nil, err
		}
		if int64(len(data)) != p.Bytes {
			return nil, corrupt("%s: size %d bytes, manifest says %d", p.Name, len(data), p.Bytes)
		}
		if sum := sha256.Sum256(data); !bytes.Equal(sum[:], mustHex(p.SHA256)) {
			return nil, corrupt("%s: sha256 mismatch", p.Name)
		}
		parts[p.Name] = data
	}
	st, err := decodeState(parts[statePart])
	if err != nil {
		return nil, corrupt("%s: %v", statePart, err)
	}
	if st.Step != step {
		return nil, corrupt("%s: step %d does not match the folder name", statePart, st.Step)
	}
	params, err := decodeVectors(parts[paramsPart])
	if err != nil {
		return nil, corrupt("%s: %v", paramsPart, err)
	}
	if len(params) != 1 || len(params[0]) != st.ParamsLen {
		return nil, corrupt("%s: holds %d vectors, want one of %d values as %s says", paramsPart, len(params), st.ParamsLen, statePart)
	}
	buffers, err := decodeVectors(parts[optimizerPart])
	if err != nil {
		return nil, corrupt("%s: %v", optimizerPart, err)
	}
	if !slices.EqualFunc(buffers, st.Optimizer.BufferLengths, func(b []float32, n int) bool { return len(b) == n }) {
		return nil, corrupt("%s: buffer lengths differ from %s's %v", optimizerPart, statePart, st.Optimizer.BufferLengths)
	}
	return &Snapshot{
		Step: st.Step, Epoch: st.Epoch, Seed: st.Seed, Meta: st.Meta, Params: params[0],
		Optimizer: OptimizerState{Name: st.Optimizer.Name, Step: st.Optimizer.Step, Buffers: buffers},
		Extra:     st.Extra, Generation: st.Generation, World: st.World,
	}, nil
}

// mustHex decodes a digest decodeManifest has already checked.
func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic("checkpoint: unchecked digest " + strconv.Quote(s))
	}
	return b
}
