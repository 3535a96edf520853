package notice

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
)

const gcpPreemptedPath = "/computeMetadata/v1/instance/preempted"

func (w *Watcher) checkGCP(ctx context.Context) (Notice, bool, error) {
	h := http.Header{}
	h.Set("Metadata-Flavor", "Google")
	code, body, err := w.do(ctx, http.MethodGet, gcpPreemptedPath, h)
	if err != nil {
		return Notice{}, false, err
	}
	if code != http.StatusOK {
		return Notice{}, false, unexpected(http.MethodGet, w.base+gcpPreemptedPath, code)
	}
	preempted, err := parseGCPPreempted(body)
	if err != nil {
		return Notice{}, false, fmt.Errorf("GET %s%s: %w", w.base, gcpPreemptedPath, err)
	}
	if !preempted {
		return Notice{}, false, nil
	}
	// GCP announces preemption about 30 s ahead and gives no time.
	return Notice{Detail: "instance preempted"}, true, nil
}

// parseGCPPreempted reads the preempted value: "TRUE" or "FALSE", nothing else.
func parseGCPPreempted(body []byte) (bool, error) {
	switch v := bytes.TrimSpace(body); string(v) {
	case "TRUE":
		return true, nil
	case "FALSE":
		return false, nil
	default:
		return false, fmt.Errorf("preempted is %s, want TRUE or FALSE", clip(string(v)))
	}
}
