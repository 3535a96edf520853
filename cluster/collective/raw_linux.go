//go:build linux

package collective

import (
	"io"
	"net"
	"syscall"
	"unsafe"
)

// rawStream reads and writes a plain TCP socket with system calls that skip the runtime's
// blocking-syscall bookkeeping. The socket is non-blocking, so a call never blocks; but a copy
// of a megabyte takes long enough that the scheduler would hand this thread's P to another
// thread meanwhile, and on a busy machine those hand-offs doubled the context switches of
// BenchmarkAllReduceProcesses. Waiting, deadlines and closing stay the runtime's
// (syscall.RawConn).
type rawStream struct {
	rc syscall.RawConn

	// The calls in flight, one read and one write at most (a TLS stream may do both at once):
	// set before rc.Read or rc.Write, used by the callbacks.
	buf        []byte
	n          int
	readErrno  syscall.Errno
	iov        [2]syscall.Iovec
	iovs       []syscall.Iovec
	writeErrno syscall.Errno
	readFn     func(uintptr) bool // method values, made once so that a call allocates nothing
	sendFn     func(uintptr) bool
}

// newRawStream returns a rawStream for tc, or nil where it has no file descriptor; other
// streams (TLS, pipes) go through their own Read and Write.
func newRawStream(tc *net.TCPConn) *rawStream {
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	r := &rawStream{rc: rc}
	r.readFn, r.sendFn = r.doRead, r.doWrite
	return r
}

// Read reads at least one byte into p, as io.Reader does; io.EOF once the peer has closed.
func (r *rawStream) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.buf, r.n, r.readErrno = p, 0, 0
	err := r.rc.Read(r.readFn)
	r.buf = nil
	switch {
	case err != nil:
		return 0, err
	case r.readErrno != 0:
		return 0, r.readErrno
	case r.n == 0:
		return 0, io.EOF
	}
	return r.n, nil
}

func (r *rawStream) doRead(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&r.buf[0])), uintptr(len(r.buf)))
		switch e {
		case 0:
			r.n = int(n)
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		default:
			r.readErrno = e
			return true
		}
	}
}

// writev writes a and then b, all of both.
func (r *rawStream) writev(a, b []byte) error {
	r.iovs = r.iov[:0]
	for _, p := range [2][]byte{a, b} {
		if len(p) > 0 {
			r.iovs = append(r.iovs, syscall.Iovec{Base: &p[0]})
			r.iovs[len(r.iovs)-1].SetLen(len(p))
		}
	}
	r.writeErrno = 0
	err := r.rc.Write(r.sendFn)
	r.iov, r.iovs = [2]syscall.Iovec{}, nil // keep no reference to the caller's data
	if err != nil {
		return err
	}
	if r.writeErrno != 0 {
		return r.writeErrno
	}
	return nil
}

func (r *rawStream) doWrite(fd uintptr) bool {
	for len(r.iovs) > 0 {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&r.iovs[0])), uintptr(len(r.iovs)))
		switch e {
		case 0:
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		default:
			r.writeErrno = e
			return true
		}
		for left := int(n); left > 0; {
			if l := int(r.iovs[0].Len); left < l {
				r.iovs[0].Base = (*byte)(unsafe.Add(unsafe.Pointer(r.iovs[0].Base), left))
				r.iovs[0].SetLen(l - left)
				break
			} else {
				left -= l
				r.iovs = r.iovs[1:]
			}
		}
	}
	return true
}
