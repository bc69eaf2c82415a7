/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

// Package hooks calls a Canary's webhooks the way Flagger does: a JSON POST of the
// Canary's identity, phase, revision checksum and the hook's metadata, answered with
// success when the status code is at most 202.
//
// The package never logs. Errors name the hook, the URL without userinfo, query or
// fragment, the status code and at most the first 200 bytes of the response body.
package hooks

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

const (
	// MaxBodySnippet is the number of response-body bytes an error may carry.
	MaxBodySnippet = 200
	// maxDrain is how much of a response body is read (and discarded) so that the
	// connection can be reused; larger bodies are abandoned.
	maxDrain = 64 << 10
	// DefaultRetryWait is the first pause between two attempts; it doubles after each
	// attempt up to maxRetryWait, and never exceeds the hook's timeout.
	DefaultRetryWait = 100 * time.Millisecond
	maxRetryWait     = 2 * time.Second
)

// Event types of an event hook's eventType metadata (those of Kubernetes Events).
const (
	EventTypeNormal  = "Normal"
	EventTypeWarning = "Warning"
)

// Metadata keys an event hook adds to the payload, unless the hook's metadata already
// has them.
const (
	EventMessageKey = "eventMessage"
	EventTypeKey    = "eventType"
	TimestampKey    = "timestamp"
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

// Caller makes webhook calls. The zero value is ready to use; a Caller is safe for
// concurrent use and must not be copied after first use.
type Caller struct {
	// Client sends the requests. Nil: a shared client with a pooled transport that
	// honours the proxy environment. Its Timeout, if any, applies in addition to the
	// hook's timeout.
	Client *http.Client

	// InsecureClient sends the requests of hooks with disableTLS. Nil: a copy of
	// Client whose transport skips certificate verification (Client is used as is when
	// its transport is not an *http.Transport).
	InsecureClient *http.Client

	// RetryWait is the first pause between attempts, DefaultRetryWait when zero.
	RetryWait time.Duration

	mu       sync.Mutex
	insecure *http.Client // derived from Client
}

// Error is the failure of a hook call.
type Error struct {
	// Hook is the hook's name.
	Hook string
	// URL is the hook's URL without userinfo, query and fragment.
	URL string
	// StatusCode is the last response's status, 0 when no response was received.
	StatusCode int
	// Status is the last response's status line, such as "500 Internal Server Error".
	Status string
	// Body is at most MaxBodySnippet bytes of the last response's body, on one line.
	Body string
	// Attempts is the number of requests made.
	Attempts int
	// Err is the transport error, when no response was received.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "hook %q (POST %s): ", e.Hook, e.URL)
	switch {
	case e.Err != nil:
		b.WriteString(e.Err.Error())
	default:
		b.WriteString(e.Status)
		if e.Body != "" {
			b.WriteString(": ")
			b.WriteString(e.Body)
		}
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (after %d attempts)", e.Attempts)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Of returns the hooks of type t in spec order. A hook without a type is a rollout
// hook, and so is t "".
func Of(hooks []flaggerv1.CanaryWebhook, t flaggerv1.HookType) []flaggerv1.CanaryWebhook {
	if t == "" {
		t = flaggerv1.RolloutHook
	}
	var out []flaggerv1.CanaryWebhook
	for _, h := range hooks {
		ht := h.Type
		if ht == "" {
			ht = flaggerv1.RolloutHook
		}
		if ht == t {
			out = append(out, h)
		}
	}
	return out
}

// Call POSTs p to the hook. When p.Metadata is nil, the hook's metadata is sent. Each
// attempt is bounded by hook.GetTimeout(); transport errors (timeouts included) and 5xx
// responses are retried hook.Retries times with a short, growing pause. A status of at
// most 202 is success; anything else, or the cancellation of ctx, returns an *Error.
func (c *Caller) Call(ctx context.Context, hook flaggerv1.CanaryWebhook, p Payload) error {
	if p.Metadata == nil {
		p.Metadata = hook.Metadata
	}
	e := &Error{Hook: hook.Name, URL: RedactURL(hook.URL)}

	u, err := url.Parse(hook.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		e.Err = errors.New("invalid URL: must be an absolute http or https URL")
		return e
	}
	body, err := json.Marshal(p)
	if err != nil {
		e.Err = fmt.Errorf("encoding payload: %w", err)
		return e
	}

	client := c.client(hook.DisableTLS)
	timeout := hook.GetTimeout()
	wait := c.RetryWait
	if wait <= 0 {
		wait = DefaultRetryWait
	}
	retries := max(hook.Retries, 0)

	for attempt := 0; ; attempt++ {
		e.Attempts = attempt + 1
		retry := c.attempt(ctx, client, hook.URL, body, timeout, e)
		if !retry {
			if e.Err == nil && e.StatusCode > 0 && e.StatusCode <= http.StatusAccepted {
				return nil
			}
			return e
		}
		if attempt >= retries {
			return e
		}
		pause := min(wait<<attempt, maxRetryWait, timeout)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			e.Err = ctx.Err()
			return e
		case <-t.C:
		}
	}
}

// attempt makes one request and records its outcome in e. It reports whether the
// outcome may be retried.
func (c *Caller) attempt(ctx context.Context, client *http.Client, rawURL string, body []byte,
	timeout time.Duration, e *Error) bool {
	e.StatusCode, e.Status, e.Body, e.Err = 0, "", "", nil
	if err := ctx.Err(); err != nil {
		e.Err = err
		return false
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	req, err := http.NewRequestWithContext(actx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		e.Err = errors.New("cannot build request")
		return false
	}
	req.Header.Set("Content-Type", "application/json")

	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil { // the caller gave up: do not retry
			e.Err = ctx.Err()
			return false
		}
		e.Err = transportError(err, actx, timeout)
		return true
	}
	defer resp.Body.Close()

	e.StatusCode = resp.StatusCode
	e.Status = resp.Status
	if e.Status == "" {
		e.Status = strconv.Itoa(resp.StatusCode) + " " + http.StatusText(resp.StatusCode)
	}
	if resp.StatusCode <= http.StatusAccepted {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
		return false
	}
	head := make([]byte, MaxBodySnippet+utf8.UTFMax)
	n, _ := io.ReadFull(resp.Body, head)
	e.Body = snippet(head[:n])
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	return resp.StatusCode >= 500
}

// transportError describes a failed request without repeating its URL (a *url.Error
// would print the query).
func transportError(err error, actx context.Context, timeout time.Duration) error {
	if errors.Is(actx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no response within %s: %w", timeout, context.DeadlineExceeded)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("no response within %s: %w", timeout, err)
	}
	return err
}

// snippet returns at most MaxBodySnippet bytes of b as a single line of valid UTF-8,
// with "..." when b was longer.
func snippet(b []byte) string {
	cut := len(b) > MaxBodySnippet
	if cut {
		b = b[:MaxBodySnippet]
		// Do not split a rune: drop a trailing incomplete sequence.
		for i := 0; i < utf8.UTFMax-1 && len(b) > 0; i++ {
			if r, size := utf8.DecodeLastRune(b); r != utf8.RuneError || size > 1 {
				break
			}
			b = b[:len(b)-1]
		}
	}
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if cut {
		s += "..."
	}
	return s
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

// Event posts an event to an event hook. The payload's metadata (the hook's when
// p.Metadata is nil) is completed with eventMessage, eventType and timestamp (now in
// Unix milliseconds); keys the metadata already has are kept. p.Phase should be the
// Canary's status phase. The hook's metadata is not modified.
func (c *Caller) Event(ctx context.Context, hook flaggerv1.CanaryWebhook, p Payload,
	eventType, message string, now time.Time) error {
	base := p.Metadata
	if base == nil {
		base = hook.Metadata
	}
	md := make(map[string]string, len(base)+3)
	for k, v := range base {
		md[k] = v
	}
	for k, v := range map[string]string{
		EventMessageKey: message,
		EventTypeKey:    eventType,
		TimestampKey:    strconv.FormatInt(now.UnixMilli(), 10),
	} {
		if _, ok := md[k]; !ok {
			md[k] = v
		}
	}
	p.Metadata = md
	return c.Call(ctx, hook, p)
}

var (
	defaultClient = sync.OnceValue(func() *http.Client {
		return &http.Client{Transport: newTransport()}
	})
	defaultInsecureClient = sync.OnceValue(func() *http.Client {
		t := newTransport()
		t.TLSClientConfig = insecureTLS(nil)
		return &http.Client{Transport: t}
	})
)

func newTransport() *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
	}
}

func insecureTLS(base *tls.Config) *tls.Config {
	var cfg *tls.Config
	if base != nil {
		cfg = base.Clone()
	} else {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	cfg.InsecureSkipVerify = true //nolint:gosec // requested by the hook's disableTLS
	return cfg
}

// client returns the HTTP client for a hook.
func (c *Caller) client(disableTLS bool) *http.Client {
	if !disableTLS {
		if c.Client != nil {
			return c.Client
		}
		return defaultClient()
	}
	if c.InsecureClient != nil {
		return c.InsecureClient
	}
	if c.Client == nil {
		return defaultInsecureClient()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.insecure != nil {
		return c.insecure
	}
	rt := c.Client.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	t, ok := rt.(*http.Transport)
	if !ok {
		c.insecure = c.Client
		return c.insecure
	}
	t = t.Clone()
	t.TLSClientConfig = insecureTLS(t.TLSClientConfig)
	derived := *c.Client
	derived.Transport = t
	c.insecure = &derived
	return c.insecure
}
