package actors

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"

	"github.com/troupe-ml/troupe/cluster/collective"
)

// StaticWorld places this process in a fixed world of ranks that sum their gradients over the
// collective's ring. Every rank runs the same job; each trains on its slice of every global
// batch, so the run follows the single-process run step for step (up to the order of float
// additions). The elastic cluster builds such worlds from membership and replaces them as
// members come and go; the data plane is this one.
type StaticWorld struct {
	Rank       int
	Addrs      []string             // every rank's collective endpoint, in rank order
	Endpoint   *collective.Endpoint // this rank's, listening at Addrs[Rank]
	Generation uint64               // stamps every reduction of this world
}

func (w *StaticWorld) validate() error {
	if w == nil {
		return nil
	}
	if len(w.Addrs) == 0 || w.Rank < 0 || w.Rank >= len(w.Addrs) {
		return fmt.Errorf("%w: world rank %d of %d", ErrBadJob, w.Rank, len(w.Addrs))
	}
	if w.Endpoint == nil && len(w.Addrs) > 1 {
		return fmt.Errorf("%w: a world of %d ranks needs this rank's collective endpoint", ErrBadJob, len(w.Addrs))
	}
	return nil
}

func (w *StaticWorld) size() int {
	if w == nil {
		return 1
	}
	return len(w.Addrs)
}

func (w *StaticWorld) rank() int {
	if w == nil {
		return 0
	}
	return w.Rank
}

// ParamsDigest is the sha256 of a parameter vector as little-endian float32 bytes: ranks that
// hold the same model report the same digest.
func ParamsDigest(params []float32) string {
	h := sha256.New()
	var b [4]byte
	for _, v := range params {
		binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
		h.Write(b[:])
	}
	return hex.EncodeToString(h.Sum(nil))
}
