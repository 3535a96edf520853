package notice

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// ErrTransient marks a failed poll that the next one may well not meet: the
// service unreachable or slow, the connection dropped, a 429 or 5xx answer.
var ErrTransient = errors.New("notice: transient metadata service failure")

type transient struct{ err error }

func (t transient) Error() string        { return t.err.Error() }
func (t transient) Unwrap() error        { return t.err }
func (t transient) Is(target error) bool { return target == ErrTransient }

// statusError is an answer whose status the protocol does not expect.
type statusError struct {
	method, url string
	code        int
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s %s: unexpected status %d %s", e.method, e.url, e.code, http.StatusText(e.code))
}

func (e *statusError) Is(target error) bool {
	return target == ErrTransient && (e.code >= 500 || e.code == http.StatusTooManyRequests)
}

// do sends one request and returns its status and at most MaxBody bytes of
// its body; a longer body is an error.
func (w *Watcher) do(ctx context.Context, method, path string, header http.Header) (int, []byte, error) {
	url := w.base + path
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return 0, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, nil, transient{err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		return 0, nil, transient{fmt.Errorf("%s %s: reading body: %w", method, url, err)}
	}
	if len(body) > MaxBody {
		return 0, nil, fmt.Errorf("%s %s: body over %d bytes", method, url, MaxBody)
	}
	return resp.StatusCode, body, nil
}

func unexpected(method, url string, code int) error {
	return &statusError{method: method, url: url, code: code}
}

// clip quotes a value from a body for an error message, cut short: bodies
// may be hostile and logs should stay readable.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}
