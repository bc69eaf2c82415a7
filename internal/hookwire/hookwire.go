// Package hookwire is the wire format of Flagger's analysis webhooks, shared by Herald, which
// sends it, and the load tester, which receives it: the JSON payload, and the redaction that
// keeps a hook URL's secrets out of errors, events and logs.
package hookwire

import (
	"net/url"
	"strings"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// Payload is the JSON body every hook receives; the same document as Flagger's
// CanaryWebhookPayload.
type Payload struct {
	// Name of the Canary.
	Name string `json:"name"`
	// Namespace of the Canary.
	Namespace string `json:"namespace"`
	// Phase of the Canary's run.
	Phase flaggerv1.CanaryPhase `json:"phase"`
	// Checksum identifies the revision under analysis (last applied spec and tracked
	// configs).
	Checksum string `json:"checksum"`
	// Metadata of the hook. Left nil, Call sends the hook's own metadata.
	Metadata map[string]string `json:"metadata,omitempty"`
}

// RedactURL returns raw without userinfo, query and fragment, which may hold secrets: a
// URL as it may appear in errors, events and logs.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		// Keep only what precedes any query and strip what looks like userinfo.
		s := raw
		if i := strings.IndexAny(s, "?#"); i >= 0 {
			s = s[:i]
		}
		if i := strings.Index(s, "://"); i >= 0 {
			authority := s[i+3:]
			if k := strings.Index(authority, "/"); k >= 0 {
				authority = authority[:k]
			}
			if j := strings.LastIndex(authority, "@"); j >= 0 {
				s = s[:i+3] + s[i+3+j+1:]
			}
		}
		return s
	}
	u.User = nil
	u.RawQuery = ""
	u.ForceQuery = false
	u.Fragment = ""
	u.RawFragment = ""
	return u.String()
}
