// Package synthetic generates labelled data sets that need no files: seeded, stateless
// generators whose sample i is a pure function of (seed, i).
//
// Three generators share one interface, Source, whose Gather has the contract of
// data.Dataset.Gather, so a batch reader can take a generator wherever it takes a loaded set:
//
//   - Tabular: a class-conditional Gaussian mixture with optional class-dependent categorical
//     columns. For tests and benchmarks of tabular code paths that need a table of any size
//     with known class structure (NewTabular documents how each parameter comes from the
//     seed, and the declared parameters can be read back to check estimates against).
//   - Images: class-conditional images built from a few stroke prototypes per class, with
//     per-sample blending, clutter, shift and noise. For tests and benchmarks of image models
//     at any size and shape: a CNN or MLP can learn the classes, a linear model only partly.
//   - Model: a per-class Gaussian (or k-means mixture of Gaussians) with low-rank-plus-diagonal
//     covariance, fitted to a real labelled set with Fit. For experiments in training on
//     synthetic data instead of the real set, and as a realistic stand-in for a private set.
//     Its parameters save and load (MarshalBinary, ReadModel) in a small checked binary form.
//
// Typical use, one node fitting and every node sampling the same stream:
//
//	m, err := synthetic.Fit(train, synthetic.FitConfig{Rank: 30, Components: 1, Seed: 1})
//	_, err = m.WriteTo(f)                // ship the file to the other nodes
//	m, err = synthetic.ReadModel(f)      // on each node
//	src, err := m.WithStream(seed, n)    // n samples, the same on every node
//	err = src.Gather(idx, x, labels, data.MNISTNormalize)
//
// Materialize turns the first n samples of any generator into a data.Dataset for code that
// wants one (Subset, Split, GatherShifted).
//
// # Privacy
//
// A fitted Model is not differentially private. Its means, principal directions and per-pixel
// variances are statistics of the training set, computed without clipping or noise, and with
// few samples per class or a high rank they can reproduce individual training images closely.
// Sampling from it adds randomness to the outputs, not privacy to the parameters. Treat a
// fitted model, and every sample drawn from it, as carrying the sensitivity of the data it was
// fitted on; privacy needs a mechanism with a stated guarantee on the fitting itself.
//
// # Gather contract
//
// Every Gather writes sample idx[k], normalized as data.Normalize says (the same table as
// data.Dataset uses, so a generator and its Materialize'd set gather identical floats), into
// x[k*SampleSize() : (k+1)*SampleSize()] and its label into labels[k]. It needs
// len(x) == len(idx)*SampleSize() and len(labels) == len(idx), returns
// data.ErrBufferLength or data.ErrIndexOutOfRange (index outside [0, Len)) before writing
// anything, writes only x and labels, and allocates nothing.
//
// # Determinism
//
// Each sample draws from its own counter-based stream (splitmix64 keyed by seed, a purpose
// tag and the index), so the same seed gives the same bytes in any order, batch or process,
// and different seeds give unrelated samples. The per-sample arithmetic is written to forbid
// fused multiply-adds, so builds for different instruction sets (GOAMD64 levels) agree.
// Building the parameters, Fit included, uses ordinary floating point and the standard
// library's math routines: it is deterministic on one architecture, but across architectures
// a parameter may differ in its last bit, which can move a byte by one. Nodes that must agree
// exactly should load one saved Model rather than each fitting their own.
//
// # Concurrency
//
// Generators and models are read-only after construction: any number of goroutines may
// Gather from one at once, each into its own buffers. Nothing here starts goroutines.
package synthetic
