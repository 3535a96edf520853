package text

import (
	"cmp"
	"crypto/sha256"
	"fmt"
	"slices"
	"sync"
)

// The pre-split. Text is cut into chunks before any merge, and merges never cross a chunk
// boundary, so a token is a piece of one identifier, one run of punctuation or one run of
// white space, never "x :" or "a)\n". That keeps tokens meaningful, makes the chunk the unit
// of caching in Encode, and lets training count each distinct chunk once. A chunk is:
//
//   - a run of word bytes: letters, digits, '_' and every byte >= 0x80 (so the bytes of a
//     UTF-8 character, in an identifier or a comment, can merge), optionally preceded by one
//     space or one punctuation byte (" err", ".Println", "(s": a selector or an argument is
//     one token with what introduces it, as in the tokenizers of large code models);
//   - a run of punctuation (any other byte that is not white space), optionally preceded by one
//     space (" :=", " {", " //");
//   - a run of white space (space, tab, newline, carriage return, vertical tab, form feed),
//     less its last byte when that is a space that starts the next chunk ("\n\t\t" before a
//     statement is one chunk: the indentation is one token).
//
// No chunk is longer than maxChunk bytes: longer runs are cut, which bounds both the work of
// encoding one chunk and the length of a token.
const maxChunk = 64

const (
	clsWord = iota + 1
	clsSpace
	clsPunct
)

var byteClass = func() (t [256]uint8) {
	for c := range t {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c >= 0x80:
			t[c] = clsWord
		case c == ' ', c == '\t', c == '\n', c == '\r', c == '\v', c == '\f':
			t[c] = clsSpace
		default:
			t[c] = clsPunct
		}
	}
	return t
}()

// chunkEnd returns the end of the chunk that starts at t[i]; i < len(t).
func chunkEnd(t []byte, i int) int {
	limit := min(len(t), i+maxChunk)
	j := i + 1
	c := byteClass[t[i]]
	if (c == clsPunct || t[i] == ' ') && j < limit && byteClass[t[j]] == clsWord {
		c = clsWord
		j++
	} else if t[i] == ' ' && j < limit && byteClass[t[j]] == clsPunct {
		c = clsPunct
		j++
	}
	for j < limit && byteClass[t[j]] == c {
		j++
	}
	if c == clsSpace && j-i > 1 && j < len(t) && t[j-1] == ' ' && byteClass[t[j]] != clsSpace {
		j--
	}
	return j
}

// pair is a merge: the two ids that make one new token.
type pair struct{ a, b int32 }

func pairKey(a, b int32) uint32 { return uint32(a)<<16 | uint32(b) }

// BPE is a byte-pair encoding: ids 0..255 are bytes and id 256+i is the concatenation of the
// two earlier tokens of merge i. Encode applies the merges within each pre-split chunk in the
// order they were learned, so the same text always gets the same ids. Build one with TrainBPE
// or ParseTokenizer; the zero BPE has no merges and encodes like Bytes.
//
// A BPE is safe for concurrent use. It remembers the ids of the chunks it has encoded (up to
// a bound) because natural text repeats its chunks: most of Encode is then a map lookup.
type BPE struct {
	merges   []pair
	ranks    pairTable // pairKey(merge) -> its index
	tokOff   []uint32  // merge i's bytes are tokBytes[tokOff[i]:tokOff[i+1]]
	tokBytes []byte

	mu       sync.RWMutex
	cache    map[string]uint64 // chunk -> its ids, packed by packIDs
	keyBytes int               // the length of all the cache's keys
	arena    []int32           // the ids of cached chunks of more than inlineIDs tokens
}

// A cached chunk of up to inlineIDs tokens, the common case, keeps its ids in the cache's
// value itself (16 bits each, the count in the top bits), which spares a second memory access;
// a longer one keeps its offset in arena and its count.
const inlineIDs = 3

func (t *BPE) packIDs(ids []int32) uint64 {
	v := uint64(len(ids)) << 56
	if len(ids) <= inlineIDs {
		for i, id := range ids {
			v |= uint64(id) << (16 * i)
		}
		return v
	}
	v |= uint64(len(t.arena))
	t.arena = append(t.arena, ids...)
	return v
}

func (t *BPE) appendCached(dst []int32, v uint64) []int32 {
	n := int(v >> 56)
	if n <= inlineIDs {
		for i := range n {
			dst = append(dst, int32(v>>(16*i)&0xffff))
		}
		return dst
	}
	off := int(v & (1<<56 - 1))
	return append(dst, t.arena[off:off+n]...)
}

// Bounds of the chunk cache: the Go tree has a few hundred thousand distinct chunks, and a
// hostile input of distinct chunks must not grow the cache without end. Past the bounds,
// chunks are still encoded, just not remembered.
const (
	maxCacheEntries  = 1 << 20
	maxCacheKeyBytes = 1 << 25 // the chunks themselves
	maxCacheIDs      = 1 << 22 // in arena
)

// newBPE checks merges and builds the tables derived from them. Merge i may only combine ids
// below 256+i, no merge may repeat another, and no token may be longer than a chunk can be
// (a trained BPE never makes one, and the bound keeps a crafted vocabulary of doubling tokens
// from needing exponential memory).
func newBPE(merges []pair) (*BPE, error) {
	if len(merges) > MaxVocab-ByteVocab {
		return nil, fmt.Errorf("%d merges, at most %d", len(merges), MaxVocab-ByteVocab)
	}
	t := &BPE{merges: merges, tokOff: make([]uint32, len(merges)+1)}
	tokLen := func(id int32) int {
		if id < ByteVocab {
			return 1
		}
		return int(t.tokOff[id-ByteVocab+1] - t.tokOff[id-ByteVocab])
	}
	for i, m := range merges {
		next := int32(ByteVocab + i)
		if m.a < 0 || m.a >= next || m.b < 0 || m.b >= next {
			return nil, fmt.Errorf("merge %d (id %d) = (%d, %d) uses an id not below %d", i, next, m.a, m.b, next)
		}
		n := tokLen(m.a) + tokLen(m.b)
		if n > maxChunk {
			return nil, fmt.Errorf("merge %d (id %d) = (%d, %d) makes a token of %d bytes, longer than %d", i, next, m.a, m.b, n, maxChunk)
		}
		t.tokOff[i+1] = t.tokOff[i] + uint32(n)
	}
	t.tokBytes = make([]byte, 0, t.tokOff[len(merges)])
	for _, m := range merges {
		t.tokBytes = t.appendToken(t.tokBytes, m.a)
		t.tokBytes = t.appendToken(t.tokBytes, m.b)
	}
	t.ranks = newPairTable(len(merges))
	for i, m := range merges {
		if j, ok := t.ranks.get(pairKey(m.a, m.b)); ok {
			return nil, fmt.Errorf("merge %d (id %d) = (%d, %d) repeats merge %d", i, ByteVocab+i, m.a, m.b, j)
		}
		t.ranks.put(pairKey(m.a, m.b), int32(i))
	}
	return t, nil
}

func (t *BPE) appendToken(dst []byte, id int32) []byte {
	if id < ByteVocab {
		return append(dst, byte(id))
	}
	i := id - ByteVocab
	return append(dst, t.tokBytes[t.tokOff[i]:t.tokOff[i+1]]...)
}

// Name is "bpe".
func (t *BPE) Name() string { return "bpe" }

// VocabSize is 256 plus the number of merges.
func (t *BPE) VocabSize() int { return ByteVocab + len(t.merges) }

// MarshalBinary encodes the merges for ParseTokenizer.
func (t *BPE) MarshalBinary() ([]byte, error) { return marshalTokenizer(kindBPE, t.merges), nil }

// Decode appends the bytes of ids to dst.
func (t *BPE) Decode(dst []byte, ids []int32) ([]byte, error) {
	n := len(dst)
	vocab := t.VocabSize()
	for i, id := range ids {
		if id < 0 || int(id) >= vocab {
			return dst[:n], badToken(i, id, vocab)
		}
		dst = t.appendToken(dst, id)
	}
	return dst, nil
}

// Encode appends the ids of text to dst.
func (t *BPE) Encode(dst []int32, text []byte) []int32 {
	if len(t.merges) == 0 {
		return Bytes{}.Encode(dst, text)
	}
	var fresh map[string][]int32 // chunks first met in this call, for the cache
	var buf []int32
	t.mu.RLock()
	for i := 0; i < len(text); {
		j := chunkEnd(text, i)
		c := text[i:j]
		i = j
		if len(c) == 1 {
			dst = append(dst, int32(c[0]))
			continue
		}
		if v, ok := t.cache[string(c)]; ok {
			dst = t.appendCached(dst, v)
			continue
		}
		if ids, ok := fresh[string(c)]; ok {
			dst = append(dst, ids...)
			continue
		}
		buf = t.encodeChunk(buf[:0], c)
		if fresh == nil {
			fresh = make(map[string][]int32)
		}
		fresh[string(c)] = slices.Clone(buf)
		dst = append(dst, buf...)
	}
	t.mu.RUnlock()
	if len(fresh) > 0 {
		t.remember(fresh)
	}
	return dst
}

// remember adds chunks to the cache while it has room.
func (t *BPE) remember(fresh map[string][]int32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cache == nil {
		t.cache = make(map[string]uint64, len(fresh))
	}
	for c, ids := range fresh {
		if len(t.cache) >= maxCacheEntries || t.keyBytes+len(c) > maxCacheKeyBytes || len(t.arena)+len(ids) > maxCacheIDs {
			return
		}
		if _, ok := t.cache[c]; !ok {
			t.cache[c] = t.packIDs(ids)
			t.keyBytes += len(c)
		}
	}
}

// encodeChunk appends the ids of one chunk (at most maxChunk bytes) to dst: start from its
// bytes and, while some adjacent pair is a merge, apply the earliest such merge to every
// occurrence, left to right. The merges a step enables have later ranks than the step's own,
// so this applies merges in the order they were learned, exactly as training did.
func (t *BPE) encodeChunk(dst []int32, c []byte) []int32 {
	start := len(dst)
	for _, b := range c {
		dst = append(dst, int32(b))
	}
	ids := dst[start:]
	for len(ids) > 1 {
		best := int32(-1)
		for i := 0; i+1 < len(ids); i++ {
			if r, ok := t.ranks.get(pairKey(ids[i], ids[i+1])); ok && (best < 0 || r < best) {
				best = r
			}
		}
		if best < 0 {
			break
		}
		m, z := t.merges[best], ByteVocab+best
		j := 0
		for i := 0; i < len(ids); j++ {
			if i+1 < len(ids) && ids[i] == m.a && ids[i+1] == m.b {
				ids[j] = z
				i += 2
			} else {
				ids[j] = ids[i]
				i++
			}
		}
		ids = ids[:j]
	}
	return dst[:start+len(ids)]
}

// pairTable maps a pair key to a merge index by open addressing: the lookup of every adjacent
// pair dominates encoding a new chunk, and a flat table of integers does it several times
// faster than a map.
type pairTable struct {
	keys  []uint32 // emptyKey marks a free slot
	vals  []int32
	shift uint32
}

// emptyKey is the key of the pair (65535, 65535), which no merge can hold: merge i only uses
// ids below 256+i <= 65535.
const emptyKey = ^uint32(0)

func newPairTable(n int) pairTable {
	bits := uint32(4)
	for 1<<bits < 2*n {
		bits++
	}
	t := pairTable{keys: make([]uint32, 1<<bits), vals: make([]int32, 1<<bits), shift: 32 - bits}
	for i := range t.keys {
		t.keys[i] = emptyKey
	}
	return t
}

func (t *pairTable) slot(k uint32) uint32 { return (k * 0x9e3779b1) >> t.shift }

func (t *pairTable) get(k uint32) (int32, bool) {
	if len(t.keys) == 0 || k == emptyKey {
		return 0, false
	}
	mask := uint32(len(t.keys) - 1)
	for i := t.slot(k); ; i = (i + 1) & mask {
		switch t.keys[i] {
		case k:
			return t.vals[i], true
		case emptyKey:
			return 0, false
		}
	}
}

// put adds a key that is not in the table; the table is never more than half full.
func (t *pairTable) put(k uint32, v int32) {
	mask := uint32(len(t.keys) - 1)
	i := t.slot(k)
	for t.keys[i] != emptyKey {
		i = (i + 1) & mask
	}
	t.keys[i], t.vals[i] = k, v
}

// TrainBytesLimit bounds the text TrainBPE learns from, which keeps its time and memory
// predictable on any corpus. The Go standard library's train split (about 77 MB) fits whole:
// training on all of it takes a few seconds, so there is no need to sample it.
const TrainBytesLimit = 128 << 20

// TrainBPE learns vocab-256 merges from docs, which should be the Train split. It reads the
// docs in the order of the sha256 of their paths (a deterministic order that mixes the
// corpus's folders, unlike the lexical one) up to TrainBytesLimit bytes, cutting the last doc
// it reads. Each step merges the most frequent adjacent pair, ties broken by the smallest
// (a, b), so the result depends only on the paths and bytes of the docs, never on their
// order or the machine. It stops early, with a smaller vocabulary, when no adjacent pair is
// left. vocab must lie in [256, 65536].
//
// It counts every distinct chunk once, with its multiplicity, and after each merge updates
// the pair counts of the chunks that held the pair only, found through a list of chunks per
// pair; a lazy max-heap picks the next pair.
func TrainBPE(docs []Doc, vocab int) (*BPE, error) {
	if vocab < ByteVocab || vocab > MaxVocab {
		return nil, fmt.Errorf("%w: %d, want [%d, %d]", ErrVocabSize, vocab, ByteVocab, MaxVocab)
	}
	tr := newTrainer(trainingText(docs, TrainBytesLimit))
	merges := tr.run(vocab - ByteVocab)
	return newBPE(merges)
}

// trainingText is the text TrainBPE reads: docs in sha256 order of their paths, up to limit
// bytes.
func trainingText(docs []Doc, limit int) [][]byte {
	order := sortedByPathHash(docs)
	var out [][]byte
	for _, i := range order {
		if limit <= 0 {
			break
		}
		t := docs[i].Text
		if len(t) > limit {
			t = t[:limit]
		}
		out = append(out, t)
		limit -= len(t)
	}
	return out
}

// sortedByPathHash returns the indices of docs ordered by the sha256 of their paths; docs with
// equal paths keep their order.
func sortedByPathHash(docs []Doc) []int {
	sums := make([][sha256.Size]byte, len(docs))
	order := make([]int, len(docs))
	for i, d := range docs {
		sums[i] = sha256.Sum256([]byte(d.Path))
		order[i] = i
	}
	slices.SortStableFunc(order, func(i, j int) int {
		return slices.Compare(sums[i][:], sums[j][:])
	})
	return order
}

// trainer holds the distinct chunks ("words") of the training text as id sequences that
// shrink as merges apply, and the count of every adjacent pair weighted by word counts.
type trainer struct {
	syms   []int32 // every word's ids; word w is syms[start[w] : start[w]+size[w]]
	start  []int32
	size   []int32
	count  []int64
	pairs  map[uint32]int32 // pair key -> index in stats
	stats  []pairStats
	heap   pairHeap
	merged []pair
}

type pairStats struct {
	key   uint32
	count int64
	words []int32 // the words the pair was seen in: a superset, as merges may have removed it
}

func newTrainer(texts [][]byte) *trainer {
	tr := &trainer{pairs: make(map[uint32]int32)}
	index := make(map[string]int32)
	for _, text := range texts {
		for i := 0; i < len(text); {
			j := chunkEnd(text, i)
			c := text[i:j]
			i = j
			if len(c) < 2 {
				continue // nothing to merge
			}
			if w, ok := index[string(c)]; ok {
				tr.count[w]++
				continue
			}
			index[string(c)] = int32(len(tr.count))
			tr.start = append(tr.start, int32(len(tr.syms)))
			tr.size = append(tr.size, int32(len(c)))
			tr.count = append(tr.count, 1)
			for _, b := range c {
				tr.syms = append(tr.syms, int32(b))
			}
		}
	}
	for w := range tr.count {
		s := tr.word(int32(w))
		for i := 0; i+1 < len(s); i++ {
			tr.add(pairKey(s[i], s[i+1]), tr.count[w], int32(w))
		}
	}
	tr.heap = make(pairHeap, 0, len(tr.stats))
	for k, i := range tr.pairs {
		tr.heap = append(tr.heap, heapEntry{count: tr.stats[i].count, key: k})
	}
	tr.heap.init()
	return tr
}

func (tr *trainer) word(w int32) []int32 {
	return tr.syms[tr.start[w] : tr.start[w]+tr.size[w]]
}

// add changes the count of a pair by delta; a positive delta also records word w.
func (tr *trainer) add(k uint32, delta int64, w int32) {
	i, ok := tr.pairs[k]
	if !ok {
		i = int32(len(tr.stats))
		tr.pairs[k] = i
		tr.stats = append(tr.stats, pairStats{key: k})
	}
	st := &tr.stats[i]
	st.count += delta
	if delta > 0 && (len(st.words) == 0 || st.words[len(st.words)-1] != w) {
		st.words = append(st.words, w)
	}
}

// best pops the most frequent pair. The heap holds, for every pair, an entry with a count at
// least its current one (counts of old pairs only fall; a new pair is pushed once its step has
// counted it), so an entry whose count is current is the maximum.
func (tr *trainer) best() (uint32, bool) {
	for len(tr.heap) > 0 {
		e := tr.heap.pop()
		cur := tr.stats[tr.pairs[e.key]].count
		if cur == e.count {
			return e.key, cur > 0
		}
		if cur > 0 {
			tr.heap.push(heapEntry{count: cur, key: e.key})
		}
	}
	return 0, false
}

func (tr *trainer) run(n int) []pair {
	for len(tr.merged) < n {
		k, ok := tr.best()
		if !ok {
			break
		}
		a, b := int32(k>>16), int32(k&0xffff)
		z := int32(ByteVocab + len(tr.merged))
		tr.merged = append(tr.merged, pair{a, b})
		si := tr.pairs[k]
		words := tr.stats[si].words
		nStats := len(tr.stats)
		for _, w := range words {
			tr.mergeWord(w, a, b, z)
		}
		// No (a, b) is left, whatever the decrements above summed to.
		tr.stats[si] = pairStats{key: k}
		// The pairs first counted in this step hold z, so no later step adds to them: their
		// counts are final for the heap.
		for _, st := range tr.stats[nStats:] {
			if st.count > 0 {
				tr.heap.push(heapEntry{count: st.count, key: st.key})
			}
		}
	}
	return tr.merged
}

// mergeWord replaces each (a, b) in word w by z, left to right, and moves the counts of the
// neighbouring pairs: (x, a) becomes (x, z) and (b, y) becomes (z, y). The left neighbour is
// read from the merged output, so in "abab" the second merge sees z, not b, and the pair
// (z, a) the first one counted is taken back.
func (tr *trainer) mergeWord(w, a, b, z int32) {
	s := tr.word(w)
	cnt := tr.count[w]
	j := 0
	for i := 0; i < len(s); j++ {
		if i+1 < len(s) && s[i] == a && s[i+1] == b {
			if j > 0 {
				prev := s[j-1]
				tr.add(pairKey(prev, a), -cnt, w)
				tr.add(pairKey(prev, z), cnt, w)
			}
			if i+2 < len(s) {
				next := s[i+2]
				tr.add(pairKey(b, next), -cnt, w)
				tr.add(pairKey(z, next), cnt, w)
			}
			s[j] = z
			i += 2
		} else {
			s[j] = s[i]
			i++
		}
	}
	tr.size[w] = int32(j)
}

// pairHeap is a max-heap of pairs by count, ties to the smaller key (the smaller (a, b)).
type pairHeap []heapEntry

type heapEntry struct {
	count int64
	key   uint32
}

func (h pairHeap) less(i, j int) bool {
	return cmp.Or(-cmp.Compare(h[i].count, h[j].count), cmp.Compare(h[i].key, h[j].key)) < 0
}

func (h pairHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h *pairHeap) push(e heapEntry) {
	*h = append(*h, e)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s.less(i, p) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *pairHeap) pop() heapEntry {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	*h = s[:last]
	h.down(0)
	return top
}

func (h pairHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}
