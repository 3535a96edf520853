// Package checkpoint stores training snapshots so that a run can go on after a crash, a
// preemption or a planned stop, and detects checkpoints that were torn or damaged.
//
// A Snapshot (step, epoch, seed, parameters, optimizer state, free-form metadata) is saved by
// a Manager into a Store: a local directory (DirStore) today, object storage later. Each
// checkpoint is a folder ckpt-<step, 12 digits>/ of four parts:
//
//	params.bin     the parameter vector    } little-endian float32 after a header:
//	optimizer.bin  the optimizer's vectors } "TRPCKPT1", vector count, each vector's length
//	state.json     step, epoch, seed, meta, optimizer name and step, vector lengths, extra
//	manifest.json  format version, step, creation time, and each part's size and sha256
//
// The manifest is written last: its presence commits the checkpoint. The caller's loop:
//
//	m := checkpoint.NewManager(store, keep)
//	snap, name, skipped, err := m.LoadLatest() // at start; log skipped, ErrNoCheckpoint: fresh run
//	...
//	name, err = m.Save(snapshot, time.Now())   // every so many steps
//
// # Invariants
//
//   - A checkpoint counts only if its manifest parses and every part it lists has the size and
//     sha256 it records; LoadLatest returns the newest such checkpoint and reports every newer
//     one it passed over (SkipReport), so a torn or damaged save falls back to the previous one.
//   - Vectors come back bit for bit as saved, NaN payloads included.
//   - Decoders trust no count or length in the data: a hostile part or manifest yields an error,
//     never a panic or an allocation beyond the size of the bytes read.
//   - Save withdraws an older commit of the same step before rewriting it, and pruning deletes
//     a manifest before the parts it covers, so a crash never leaves a committed checkpoint
//     whose parts disagree with it.
//   - Save reads no clock: the caller passes the creation time.
//   - DirStore.Put is atomic (temporary file, fsync, rename, directory fsync). Temporary files
//     of a crashed Put start with a dot: List never shows them, and deleting a folder's parts
//     sweeps them.
//
// # Concurrency
//
// Manager holds no mutable state; DirStore's operations are safe to call from several
// goroutines. A store must have one writer at a time: two Managers saving into one store may
// prune each other's work. Nothing in the package starts goroutines.
//
// # Errors
//
// Damaged or missing data in a checkpoint is a *CorruptError (wrapping ErrCorrupt) from Load,
// and a SkipReport from LoadLatest, which returns ErrNoCheckpoint when no checkpoint is valid.
// Other storage failures (permissions, a full disk, a network error) are returned as they are:
// LoadLatest does not fall back to an older checkpoint over a failure that may be transient.
// A missing name wraps ErrNotFound, an invalid one ErrBadName. Save reports a nil snapshot or
// a negative step as ErrBadSnapshot, and a failed clean-up after a successful commit as
// ErrPrune together with the committed name.
package checkpoint
