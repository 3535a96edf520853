// Package text is the corpus and the tokenizers of a GPT-style language model: it reads a
// tree of text (by default the Go standard library's own source, which every machine with Go
// has), splits it by file into train, validation and test, turns it into token ids and cuts
// those into next-token windows.
//
//	dir, err := text.GoSourceDir()
//	docs, err := text.ReadCorpus(dir, true)          // the .go files, lexical order
//	splits := text.SplitDocs(docs)                    // by sha256 of each path: 90/5/5
//	tok, err := text.NewTokenizer("bpe", splits[text.Train], 4096)
//	train := text.Tokenize(tok, splits[text.Train])  // train.Digest(): compare across peers
//	w, err := text.NewWindows(train, 256, 0)
//	err = w.Gather(idx, x, labels)                    // x, labels: len(idx)*256 each
//
// # Tokenizers
//
// Bytes maps each byte to its own id (vocabulary 256). BPE adds merges learned from the train
// split: text is first cut into chunks (an identifier with the space or punctuation byte
// before it, a run of punctuation, a run of white space), merges never cross a chunk, and each
// merge joins the most frequent adjacent pair. Training on
// the whole train split of the standard library (about 77 MB) to 4096 ids takes a few seconds;
// encoding runs at tens of MB/s because a BPE caches the ids of the chunks it has seen.
//
// # Invariants
//
//   - Decode(Encode(x)) == x for every byte string x, for both tokenizers.
//   - The split of a file, the merges TrainBPE learns and the ids Tokenize produces depend only
//     on the paths and bytes of the docs: not on the order they are given in, the file system,
//     map iteration or the machine. Ties between pairs go to the smallest (a, b).
//   - ParseTokenizer(MarshalBinary()) gives back an equal tokenizer; it never panics and never
//     allocates more than a small multiple of its input.
//   - Windows.Gather checks its buffers and every index before writing, writes only x and
//     labels, and allocates nothing.
//
// # Concurrency
//
// Docs, Tokens and Windows are read-only once built, and both tokenizers are safe for
// concurrent use (BPE guards its chunk cache with a lock). Nothing here starts goroutines.
// GoSourceDir runs the go command as a child process.
//
// # Errors
//
// A malformed tokenizer encoding wraps ErrBadVocab, a vocabulary size out of range
// ErrVocabSize, an unknown tokenizer name ErrUnknownTokenizer, a token id outside the
// vocabulary ErrBadToken. A corpus with nothing to read wraps ErrEmptyCorpus, a missing Go tree
// ErrNoGoSource. Gather reports bad indices (ErrIndexOutOfRange) and wrong buffer sizes
// (ErrBufferLength) as errors, never panics.
package text
