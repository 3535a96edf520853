package collective

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// ErrClosed is returned by Connect once the endpoint is closed.
var ErrClosed = errors.New("collective: endpoint closed")

// Endpoint is a node's data-plane listener: the bulk bytes of reductions travel over streams
// of their own, while control goes through actors. For each world a rank dials the next rank's
// endpoint and is dialled by the previous one; a hello naming the generation and ranks matches
// streams to worlds, so a stream from a stale world is never mistaken for a current one.
type Endpoint struct {
	ln     net.Listener
	server *tls.Config // for streams accepted; nil: plain TCP
	client *tls.Config // for dials; nil: plain TCP (loopback tests and --insecure clusters)

	mu      sync.Mutex
	pending map[helloKey]net.Conn // accepted streams waiting for their world's Connect
	arrived chan struct{}         // closed and replaced whenever pending changes
	closed  bool
	wg      sync.WaitGroup
}

type helloKey struct {
	generation uint64
	from, size int
}

// Listen opens the endpoint on addr ("127.0.0.1:0" picks a port). With TLS configurations
// (cluster.TLSConfigs gives both) every stream is mutually authenticated: server for the
// streams accepted, client for those dialled. Both nil: plain TCP.
func Listen(addr string, server, client *tls.Config) (*Endpoint, error) {
	if (server == nil) != (client == nil) {
		return nil, errors.New("collective: give both TLS configurations or neither")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("collective: listen: %w", err)
	}
	e := &Endpoint{ln: ln, server: server, client: client, pending: map[helloKey]net.Conn{}, arrived: make(chan struct{})}
	e.wg.Add(1)
	go e.accept()
	return e, nil
}

// Addr is the address peers dial.
func (e *Endpoint) Addr() string { return e.ln.Addr().String() }

// helloSize: magic "TRPR", version u8 + 3 pad, generation u64, from u32, size u32.
const helloSize = 4 + 4 + 8 + 4 + 4

var helloMagic = []byte("TRPR")

const protocolVersion = 1

// helloTimeout bounds how long an accepted stream may take to say who it is.
const helloTimeout = 5 * time.Second

func (e *Endpoint) accept() {
	defer e.wg.Done()
	for {
		c, err := e.ln.Accept()
		if err != nil {
			return // closed
		}
		if e.server != nil {
			c = tls.Server(underTLS(c), e.server) // the handshake runs within readHello's deadline
		}
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			key, err := readHello(c)
			if err != nil {
				c.Close() // garbage, a wrong key (TLS fails here) or a dead peer: drop it
				return
			}
			e.mu.Lock()
			if e.closed {
				e.mu.Unlock()
				c.Close()
				return
			}
			if old := e.pending[key]; old != nil {
				old.Close()
			}
			e.pending[key] = c
			close(e.arrived)
			e.arrived = make(chan struct{})
			e.mu.Unlock()
		}()
	}
}

func readHello(c net.Conn) (helloKey, error) {
	var b [helloSize]byte
	_ = c.SetReadDeadline(time.Now().Add(helloTimeout))
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return helloKey{}, err
	}
	_ = c.SetReadDeadline(time.Time{})
	return parseHello(b[:])
}

// parseHello reads a hello's helloSize bytes; anything but this version's magic is refused.
func parseHello(b []byte) (helloKey, error) {
	if !bytes.Equal(b[:4], helloMagic) || b[4] != protocolVersion {
		return helloKey{}, fmt.Errorf("%w: bad hello", ErrProtocol)
	}
	return helloKey{
		generation: binary.LittleEndian.Uint64(b[8:]),
		from:       int(binary.LittleEndian.Uint32(b[16:])),
		size:       int(binary.LittleEndian.Uint32(b[20:])),
	}, nil
}

// Link is a ring's pair of streams; Close releases both.
type Link struct {
	Ring
	next, prev net.Conn
}

// Close closes both streams. A reduction blocked on them returns an error.
func (l *Link) Close() error {
	var errs []error
	for _, c := range []net.Conn{l.next, l.prev} {
		if c != nil {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// Connect builds this rank's ring for world generation among addrs (addrs[i] is rank i's
// endpoint): it dials the next rank, says hello, and waits for the previous rank's stream.
// Streams of older generations still waiting are dropped. A world of one needs no streams.
func (e *Endpoint) Connect(ctx context.Context, generation uint64, rank int, addrs []string) (*Link, error) {
	size := len(addrs)
	if rank < 0 || rank >= size {
		return nil, fmt.Errorf("%w: rank %d of %d", ErrProtocol, rank, size)
	}
	if size == 1 {
		return &Link{Ring: Ring{Rank: 0, Size: 1}}, nil
	}
	e.dropOlder(generation)
	next, err := e.dial(ctx, addrs[(rank+1)%size], generation, rank, size)
	if err != nil {
		return nil, err
	}
	prev, err := e.await(ctx, helloKey{generation: generation, from: mod(rank-1, size), size: size})
	if err != nil {
		next.Close()
		return nil, err
	}
	return &Link{Ring: Ring{Rank: rank, Size: size, Next: next, Prev: prev}, next: next, prev: prev}, nil
}

func (e *Endpoint) dial(ctx context.Context, addr string, generation uint64, rank, size int) (net.Conn, error) {
	var d net.Dialer
	var c net.Conn
	var err error
	for {
		c, err = d.DialContext(ctx, "tcp", addr)
		if err == nil && e.client != nil {
			tc := tls.Client(underTLS(c), e.client)
			if err = tc.HandshakeContext(ctx); err != nil {
				c.Close()
			}
			c = tc
		}
		if err == nil {
			break
		}
		// The next rank may not be listening yet: retry until the context says stop.
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("collective: dial rank %d at %s: %w", (rank+1)%size, addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	var b [helloSize]byte
	copy(b[:4], helloMagic)
	b[4] = protocolVersion
	binary.LittleEndian.PutUint64(b[8:], generation)
	binary.LittleEndian.PutUint32(b[16:], uint32(rank))
	binary.LittleEndian.PutUint32(b[20:], uint32(size))
	if _, err := c.Write(b[:]); err != nil {
		c.Close()
		return nil, fmt.Errorf("collective: hello to %s: %w", addr, err)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	return c, nil
}

// tlsTransport is the TCP stream under a TLS connection, read and written through a rawStream
// (as a plain stream is) so that TLS records, too, go without the runtime's syscall hand-offs.
type tlsTransport struct {
	*net.TCPConn // deadlines, addresses, Close
	raw          *rawStream
}

// underTLS returns what a TLS connection should run over: c itself where no rawStream can be
// made.
func underTLS(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok || !useRaw {
		return c
	}
	_ = tc.SetNoDelay(true)
	raw := newRawStream(tc)
	if raw == nil {
		return c
	}
	return &tlsTransport{TCPConn: tc, raw: raw}
}

func (t *tlsTransport) Read(p []byte) (int, error) { return t.raw.Read(p) }

func (t *tlsTransport) Write(p []byte) (int, error) {
	if err := t.raw.writev(p, nil); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (e *Endpoint) await(ctx context.Context, key helloKey) (net.Conn, error) {
	for {
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			return nil, ErrClosed
		}
		if c := e.pending[key]; c != nil {
			delete(e.pending, key)
			e.mu.Unlock()
			return c, nil
		}
		arrived := e.arrived
		e.mu.Unlock()
		select {
		case <-arrived:
		case <-ctx.Done():
			return nil, fmt.Errorf("collective: waiting for rank %d of generation %d: %w", key.from, key.generation, ctx.Err())
		}
	}
}

func (e *Endpoint) dropOlder(generation uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, c := range e.pending {
		if k.generation < generation {
			c.Close()
			delete(e.pending, k)
		}
	}
}

// Close stops accepting, closes streams not yet claimed, and waits for its goroutines.
func (e *Endpoint) Close() error {
	e.mu.Lock()
	e.closed = true
	for k, c := range e.pending {
		c.Close()
		delete(e.pending, k)
	}
	close(e.arrived)
	e.arrived = make(chan struct{})
	e.mu.Unlock()
	err := e.ln.Close()
	e.wg.Wait()
	return err
}
