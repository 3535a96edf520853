package notice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	awsTokenPath   = "/latest/api/token"
	awsActionPath  = "/latest/meta-data/spot/instance-action"
	awsTTLHeader   = "X-aws-ec2-metadata-token-ttl-seconds"
	awsTokenHeader = "X-aws-ec2-metadata-token"
	maxAWSToken    = 4096
)

func (w *Watcher) checkAWS(ctx context.Context) (Notice, bool, error) {
	if w.token == "" || !w.now().Before(w.renewAt) {
		if err := w.renewToken(ctx); err != nil {
			return Notice{}, false, err
		}
	}
	code, body, err := w.getAction(ctx)
	if err == nil && code == http.StatusUnauthorized {
		// The token is no longer valid (expired early, service restarted):
		// IMDS asks for a new one.
		if err := w.renewToken(ctx); err != nil {
			return Notice{}, false, err
		}
		code, body, err = w.getAction(ctx)
	}
	if err != nil {
		return Notice{}, false, err
	}
	switch code {
	case http.StatusNotFound: // nothing planned
		return Notice{}, false, nil
	case http.StatusOK:
		n, err := parseAWSAction(body)
		if err != nil {
			return Notice{}, false, fmt.Errorf("GET %s%s: %w", w.base, awsActionPath, err)
		}
		return n, true, nil
	}
	if code == http.StatusUnauthorized {
		w.token = ""
	}
	return Notice{}, false, unexpected(http.MethodGet, w.base+awsActionPath, code)
}

func (w *Watcher) getAction(ctx context.Context) (int, []byte, error) {
	h := http.Header{}
	h.Set(awsTokenHeader, w.token)
	return w.do(ctx, http.MethodGet, awsActionPath, h)
}

// renewToken fetches an IMDSv2 session token and plans its renewal once 90%
// of its life has passed, so a poll never sends one about to expire.
func (w *Watcher) renewToken(ctx context.Context) error {
	w.token = ""
	h := http.Header{}
	h.Set(awsTTLHeader, strconv.FormatInt(int64(w.tokenTTL/time.Second), 10))
	start := w.now()
	code, body, err := w.do(ctx, http.MethodPut, awsTokenPath, h)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return unexpected(http.MethodPut, w.base+awsTokenPath, code)
	}
	tok, err := parseAWSToken(body)
	if err != nil {
		return fmt.Errorf("PUT %s%s: %w", w.base, awsTokenPath, err)
	}
	w.token = tok
	w.renewAt = start.Add(w.tokenTTL - w.tokenTTL/10)
	return nil
}

// parseAWSToken accepts a token that can be sent back as a header value.
func parseAWSToken(body []byte) (string, error) {
	tok := strings.TrimSpace(string(body))
	if tok == "" || len(tok) > maxAWSToken {
		return "", fmt.Errorf("token of %d bytes", len(tok))
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c < 0x21 || c > 0x7e {
			return "", fmt.Errorf("token has byte %#x at %d", c, i)
		}
	}
	return tok, nil
}

// parseAWSAction reads an instance-action document such as
// {"action": "terminate", "time": "2017-09-18T08:22:00Z"}. Both fields are
// required: a document without a known action or a valid time is garbage,
// not a notice.
func parseAWSAction(body []byte) (Notice, error) {
	var a struct {
		Action string `json:"action"`
		Time   string `json:"time"`
	}
	if err := json.Unmarshal(body, &a); err != nil {
		return Notice{}, fmt.Errorf("instance-action: %w", err)
	}
	switch a.Action {
	case "terminate", "stop", "hibernate":
	case "":
		return Notice{}, errors.New("instance-action: no action")
	default:
		return Notice{}, fmt.Errorf("instance-action: unknown action %s", clip(a.Action))
	}
	t, err := time.Parse(time.RFC3339, a.Time)
	if err != nil {
		return Notice{}, fmt.Errorf("instance-action: time %s is not RFC 3339", clip(a.Time))
	}
	t = t.UTC().Truncate(time.Second)
	if y := t.Year(); y < 1 || y > 9999 {
		// An offset pushed it out of what RFC 3339 can write: garbage.
		return Notice{}, fmt.Errorf("instance-action: time %s is out of range", clip(a.Time))
	}
	return Notice{
		Deadline: t,
		Detail:   fmt.Sprintf("spot instance-action %s at %s", a.Action, t.Format(time.RFC3339)),
	}, nil
}
