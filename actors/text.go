package actors

import (
	"encoding/base64"
	"fmt"
	"math"

	"github.com/troupe-ml/troupe/data/text"
)

// DatasetText is a language-model corpus: windows of block_size tokens whose labels are the
// next tokens. data.dir names a file or a directory of text files; without it, the Go
// standard library's source of the toolchain the node runs (its .go files, split into
// train, validation and test by a hash of each file's path). The model must be a gpt whose
// vocab is the tokenizer's.
const DatasetText = "text"

// Tokenizers a text job may name in data.tokenizer.
const (
	TokenizerByte = "byte" // one token per byte, vocab 256 (the default)
	TokenizerBPE  = "bpe"  // byte-pair encoding trained on the training split to model.gpt.vocab
)

// corpus is what a text job's data says beyond its samples: the tokenizer, and figures to
// report losses per byte and to check that peers read the same text.
type corpus struct {
	tokenizer text.Tokenizer
	// digest is the training tokens' text.Tokens.Digest: two nodes with the same digest
	// train on the same token sequence.
	digest string
	// bytesPerToken of the validation and test splits, to turn a loss per token into bits
	// per byte.
	valBytesPerToken, testBytesPerToken float64
	// tokenizerMeta is the tokenizer as checkpoints carry it (metaTokenizer).
	tokenizerMeta string
}

// Checkpoint metadata of a text job: the tokenizer (its MarshalBinary, in base64), so that
// generate and export read text the way training did, and the corpus digest.
const (
	metaTokenizer = "tokenizer"
	metaCorpus    = "corpus_digest"
)

// TokenizerOf returns the tokenizer a text job's checkpoint metadata carries.
func TokenizerOf(meta map[string]string) (text.Tokenizer, error) {
	enc, ok := meta[metaTokenizer]
	if !ok {
		return nil, fmt.Errorf("%w: the checkpoint carries no tokenizer: it is not a text job's", ErrBadJob)
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("the checkpoint's tokenizer: %w: %w", text.ErrBadVocab, err)
	}
	return text.ParseTokenizer(raw)
}

// bitsPerByte is a mean loss per token in nats as bits per byte of text.
func bitsPerByte(loss, bytesPerToken float64) float64 {
	return loss / math.Ln2 / bytesPerToken
}

// loadText reads and tokenizes the job's corpus and cuts it into windows.
func loadText(job Job) (dataSets, error) {
	root, goOnly := job.Data.Dir, false
	if root == "" {
		dir, err := text.GoSourceDir()
		if err != nil {
			return dataSets{}, fmt.Errorf("the default corpus: %w", err)
		}
		root, goOnly = dir, true
	}
	docs, err := text.ReadCorpus(root, goOnly)
	if err != nil {
		return dataSets{}, fmt.Errorf("%w: data.dir: %w", ErrBadJob, err)
	}
	splits := text.SplitDocs(docs)
	g := job.Model.GPT
	tok, err := text.NewTokenizer(job.Data.tokenizer(), splits[text.Train], g.Vocab)
	if err != nil {
		return dataSets{}, fmt.Errorf("%w: data.tokenizer: %w", ErrBadJob, err)
	}
	if tok.VocabSize() != g.Vocab {
		return dataSets{}, fmt.Errorf("%w: model.gpt.vocab is %d, the %s tokenizer has %d tokens", ErrBadJob, g.Vocab, tok.Name(), tok.VocabSize())
	}
	windows := func(s text.Split, limit int) (*text.Windows, *text.Tokens, error) {
		toks := text.Tokenize(tok, splits[s])
		splits[s] = nil // the split's text is garbage now: only its tokens stay
		w, err := text.NewWindows(toks, g.BlockSize, limit)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: the %s split of %s: %w", ErrBadJob, s, root, err)
		}
		return w, toks, nil
	}
	train, trainTokens, err := windows(text.Train, job.Data.TrainLimit)
	if err != nil {
		return dataSets{}, err
	}
	test, testTokens, err := windows(text.Test, job.Data.TestLimit)
	if err != nil {
		return dataSets{}, err
	}
	raw, err := tok.MarshalBinary()
	if err != nil {
		return dataSets{}, err
	}
	c := &corpus{tokenizer: tok, digest: trainTokens.Digest(), testBytesPerToken: bytesPerToken(testTokens),
		tokenizerMeta: base64.StdEncoding.EncodeToString(raw)}
	if want := job.Data.CorpusDigest; want != "" && want != c.digest {
		return dataSets{}, fmt.Errorf("%w: the corpus at %s tokenizes to digest %s, the job (or the world joined) trains on %s: "+
			"every node needs the same text (the same Go release for the default corpus)", ErrBadJob, root, c.digest, want)
	}
	sets := dataSets{train: windowSet{train}, test: windowSet{test}, corpus: c}
	if job.Data.Validation > 0 {
		val, valTokens, err := windows(text.Validation, job.Data.Validation)
		if err != nil {
			return dataSets{}, err
		}
		sets.val, c.valBytesPerToken = windowSet{val}, bytesPerToken(valTokens)
	}
	return sets, nil
}

func bytesPerToken(t *text.Tokens) float64 {
	return float64(t.Bytes()) / float64(max(len(t.IDs), 1))
}

// windowSet is text windows as the samples training reads.
type windowSet struct{ w *text.Windows }

func (s windowSet) Len() int             { return s.w.Len() }
func (s windowSet) SampleSize() int      { return s.w.SampleSize() }
func (s windowSet) LabelsPerSample() int { return s.w.LabelsPerSample() }
func (s windowSet) Gather(idx []int32, x []float32, labels []int32) error {
	return s.w.Gather(idx, x, labels)
}

// labelsPerSample is how many labels a sample of set has: one, or a window's positions.
func labelsPerSample(set samples) int {
	if l, ok := set.(interface{ LabelsPerSample() int }); ok {
		return l.LabelsPerSample()
	}
	return 1
}

// tokenizer is the tokenizer the data names, byte by default.
func (d DataSpec) tokenizer() string {
	if d.Tokenizer == "" {
		return TokenizerByte
	}
	return d.Tokenizer
}

// TextResult is what a text job reports besides losses per token: the tokenizer, the
// training speed in tokens, and the validation and test losses in bits per byte of text
// (nil where there was no such evaluation), which compare across tokenizers.
type TextResult struct {
	Tokenizer         string   `json:"tokenizer"`
	Vocab             int      `json:"vocab"`
	BlockSize         int      `json:"block_size"`
	CorpusDigest      string   `json:"corpus_digest"`
	TokensPerSecond   float64  `json:"tokens_per_second"`
	ValBitsPerByte    *float64 `json:"val_bits_per_byte"`
	TestBitsPerByte   *float64 `json:"test_bits_per_byte"`
	ValBytesPerToken  float64  `json:"val_bytes_per_token,omitempty"`
	TestBytesPerToken float64  `json:"test_bytes_per_token"`
}

func (c *corpus) result(job Job, res *Result) *TextResult {
	g := job.Model.GPT
	t := &TextResult{Tokenizer: c.tokenizer.Name(), Vocab: c.tokenizer.VocabSize(), BlockSize: g.BlockSize, CorpusDigest: c.digest,
		TokensPerSecond: res.SamplesPerSecond * float64(g.BlockSize), ValBytesPerToken: c.valBytesPerToken, TestBytesPerToken: c.testBytesPerToken}
	finite := func(loss, bytesPerToken float64) *float64 {
		if math.IsNaN(loss) || math.IsInf(loss, 0) || bytesPerToken == 0 {
			return nil
		}
		b := bitsPerByte(loss, bytesPerToken)
		return &b
	}
	t.ValBitsPerByte, t.TestBitsPerByte = finite(res.ValLoss, c.valBytesPerToken), finite(res.TestLoss, c.testBytesPerToken)
	return t
}
