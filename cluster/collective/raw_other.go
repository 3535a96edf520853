//go:build !linux

package collective

import (
	"errors"
	"net"
)

// rawStream is Linux only; elsewhere every stream goes through its own Read and Write.
type rawStream struct{}

func newRawStream(*net.TCPConn) *rawStream { return nil }

var errNoRaw = errors.New("collective: no raw socket path on this system")

func (*rawStream) Read([]byte) (int, error) { return 0, errNoRaw }

func (*rawStream) writev(a, b []byte) error { return errNoRaw }
