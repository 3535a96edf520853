package notice

import (
	"encoding/json"
	"testing"
	"time"
)

// The parsers read bodies from a service that may be impersonated or broken:
// they must never panic, and what they accept must be well-formed.

func FuzzAWSAction(f *testing.F) {
	for _, s := range []string{
		`{"action": "terminate", "time": "2017-09-18T08:22:00Z"}`,
		`{"action": "stop", "time": "2017-09-18T08:22:00.5+02:00"}`,
		`{"action": "hibernate", "time": "2017-09-18T08:22:00Z", "extra": [1, {}]}`,
		`{"ACTION": "terminate", "Time": "2017-09-18T08:22:00Z"}`,
		`{"action": "terminate", "time": "9999-12-31T23:59:59-23:59"}`,
		`{"action": "\u0074erminate", "time": "2017-09-18T08:22:00Z"}`,
		`{"action": null}`, `[]`, `""`, `{`, "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := parseAWSAction(body)
		if err != nil {
			if n != (Notice{}) {
				t.Fatalf("error %v with notice %+v", err, n)
			}
			return
		}
		if n.Deadline.IsZero() || n.Deadline.Location() != time.UTC || n.Deadline.Nanosecond() != 0 || n.Detail == "" {
			t.Fatalf("accepted %q as %+v", body, n)
		}
		// What was accepted reads back the same when written as AWS does.
		again, err := json.Marshal(map[string]string{"action": "stop", "time": n.Deadline.Format(time.RFC3339)})
		if err != nil {
			t.Fatal(err)
		}
		if m, err := parseAWSAction(again); err != nil || !m.Deadline.Equal(n.Deadline) {
			t.Fatalf("%q: deadline %v does not round-trip: %+v, %v", body, n.Deadline, m, err)
		}
	})
}

func FuzzAzureEvents(f *testing.F) {
	for _, s := range []string{
		`{"DocumentIncarnation": 1, "Events": []}`,
		`{"DocumentIncarnation": 2, "Events": [{"EventId": "602d9444-d2cd-49c7-8624-8643e7171297", "EventType": "Preempt", "ResourceType": "VirtualMachine", "Resources": ["vm0"], "EventStatus": "Scheduled", "NotBefore": "Mon, 19 Sep 2016 18:29:47 GMT", "Description": "", "EventSource": "Platform", "DurationInSeconds": -1}]}`,
		`{"Events": [{"EventType": "Terminate", "Resources": ["VM0"], "NotBefore": ""}, {"EventType": "Freeze", "NotBefore": "x"}]}`,
		`{"Events": [{"EventType": "Reboot", "Resources": ["vm0"], "NotBefore": "Mon, 19 Sep 2016 18:29:47 GMT"}]}`,
		`{"Events": [{"EventType": "Preempt", "Resources": null, "NotBefore": "Sun, 31 Dec 9999 23:59:59 GMT"}]}`,
		`{"Events": null}`, `{}`, `null`, `[`, "",
	} {
		f.Add([]byte(s), "vm0")
		f.Add([]byte(s), "")
	}
	f.Fuzz(func(t *testing.T, body []byte, resource string) {
		n, ok, err := parseAzureEvents(body, resource)
		if err != nil || !ok {
			if ok || n != (Notice{}) {
				t.Fatalf("ok %v, err %v with notice %+v", ok, err, n)
			}
			return
		}
		if n.Detail == "" || (!n.Deadline.IsZero() && (n.Deadline.Location() != time.UTC || n.Deadline.Nanosecond() != 0)) {
			t.Fatalf("accepted %q as %+v", body, n)
		}
		// A filter can only remove events: what counts for one VM counts
		// when every VM counts, never later.
		if resource != "" {
			all, ok, err := parseAzureEvents(body, "")
			if err != nil || !ok {
				t.Fatalf("%q: notice for %q but none unfiltered: %v", body, resource, err)
			}
			if !all.Deadline.IsZero() && (n.Deadline.IsZero() || n.Deadline.Before(all.Deadline)) {
				t.Fatalf("%q: filtered deadline %v before unfiltered %v", body, n.Deadline, all.Deadline)
			}
		}
	})
}

func FuzzGCPPreempted(f *testing.F) {
	for _, s := range []string{"TRUE", "FALSE", "TRUE\n", "true", "", "\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		v, err := parseGCPPreempted(body)
		if err != nil && v {
			t.Fatalf("%q: preempted with error %v", body, err)
		}
	})
}
