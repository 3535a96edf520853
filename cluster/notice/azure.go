package notice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

const (
	azureEventsPath = "/metadata/scheduledevents?api-version=" + azureAPIVersion
	// azureTimeLayout is NotBefore's format, RFC 1123 in GMT:
	// "Mon, 19 Sep 2016 18:29:47 GMT".
	azureTimeLayout = "Mon, 02 Jan 2006 15:04:05 GMT"
)

func (w *Watcher) checkAzure(ctx context.Context) (Notice, bool, error) {
	h := http.Header{}
	h.Set("Metadata", "true")
	code, body, err := w.do(ctx, http.MethodGet, azureEventsPath, h)
	if err != nil {
		return Notice{}, false, err
	}
	if code != http.StatusOK {
		return Notice{}, false, unexpected(http.MethodGet, w.base+azureEventsPath, code)
	}
	n, ok, err := parseAzureEvents(body, w.resource)
	if err != nil {
		return Notice{}, false, fmt.Errorf("GET %s%s: %w", w.base, azureEventsPath, err)
	}
	return n, ok, nil
}

type azureEvent struct {
	EventId     string
	EventType   string
	Resources   []string
	EventStatus string
	NotBefore   string
}

// parseAzureEvents reads a Scheduled Events document and reports its most
// urgent Preempt or Terminate event, restricted to those naming resource
// when it is set. An event already started (blank NotBefore) is the most
// urgent and has no deadline.
func parseAzureEvents(body []byte, resource string) (Notice, bool, error) {
	var doc struct {
		Events *[]azureEvent
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return Notice{}, false, fmt.Errorf("scheduled events: %w", err)
	}
	if doc.Events == nil {
		return Notice{}, false, errors.New("scheduled events: no Events array")
	}
	var (
		best     *azureEvent
		bestTime time.Time
	)
	for i := range *doc.Events {
		e := &(*doc.Events)[i]
		if e.EventType != "Preempt" && e.EventType != "Terminate" {
			continue // Freeze, Reboot, Redeploy: the machine stays ours
		}
		if resource != "" && !names(e.Resources, resource) {
			continue // another VM of the availability set or placement group
		}
		var t time.Time
		if nb := strings.TrimSpace(e.NotBefore); nb != "" {
			var err error
			if t, err = time.Parse(azureTimeLayout, nb); err != nil {
				return Notice{}, false, fmt.Errorf("scheduled event %s: NotBefore %s is not RFC 1123 GMT", clip(e.EventId), clip(nb))
			}
			t = t.UTC()
		}
		switch {
		case best == nil:
		case bestTime.IsZero():
			continue
		case !t.IsZero() && !t.Before(bestTime):
			continue
		}
		best, bestTime = e, t
	}
	if best == nil {
		return Notice{}, false, nil
	}
	detail := fmt.Sprintf("scheduled event %s %s (%s)", best.EventType, clip(best.EventId), clip(best.EventStatus))
	if bestTime.IsZero() {
		detail += ", started"
	} else {
		detail += ", not before " + bestTime.Format(time.RFC3339)
	}
	return Notice{Deadline: bestTime, Detail: detail}, true, nil
}

// names reports whether resources lists name; Azure resource names ignore case.
func names(resources []string, name string) bool {
	for _, r := range resources {
		if strings.EqualFold(r, name) {
			return true
		}
	}
	return false
}
