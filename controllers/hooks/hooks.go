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

	"github.com/herald-rollouts/herald/internal/backoff"
	"github.com/herald-rollouts/herald/internal/hookwire"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/egress"
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

	// Egress decides which addresses hooks may call (see package egress); the clients the
	// Caller builds itself dial through it and follow redirects only to the same host. A
	// hook URL the policy refuses fails without a request, whatever Client is.
	Egress egress.Policy

	mu          sync.Mutex
	insecure    *http.Client // derived from Client
	own, ownTLS *http.Client // built from Egress when Client is nil
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
func (c *Caller) Call(ctx context.Context, hook flaggerv1.CanaryWebhook, p hookwire.Payload) error {
	if p.Metadata == nil {
		p.Metadata = hook.Metadata
	}
	e := &Error{Hook: hook.Name, URL: hookwire.RedactURL(hook.URL)}

	u, err := url.Parse(hook.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		e.Err = errors.New("invalid URL: must be an absolute http or https URL")
		return e
	}
	if err := c.Egress.CheckHost(u.Hostname()); err != nil {
		e.Err = err
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

	policy := backoff.Policy{Attempts: retries + 1, First: wait, Max: min(maxRetryWait, timeout)}
	err = backoff.Do(ctx, policy, func(ctx context.Context, attempt int) (bool, error) {
		e.Attempts = attempt
		if retry := c.attempt(ctx, client, hook.URL, body, timeout, e); retry {
			return true, e
		}
		if e.Err == nil && e.StatusCode > 0 && e.StatusCode <= http.StatusAccepted {
			return false, nil
		}
		return false, e
	})
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		e.Err = ctx.Err() // ended during a pause between attempts
		return e
	}
	if err != nil {
		return e
	}
	return nil
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

// Event posts an event to an event hook. The payload's metadata (the hook's when
// p.Metadata is nil) is completed with eventMessage, eventType and timestamp (now in
// Unix milliseconds); keys the metadata already has are kept. p.Phase should be the
// Canary's status phase. The hook's metadata is not modified.
func (c *Caller) Event(ctx context.Context, hook flaggerv1.CanaryWebhook, p hookwire.Payload,
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

// ownClients builds the Caller's clients from its egress policy: a pooled transport that
// dials through the policy and honours the proxy environment, and redirects only to the
// same host, without credentials.
func (c *Caller) ownClients() (verifying, insecure *http.Client) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.own == nil {
		t := c.Egress.Transport()
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		c.own = &http.Client{Transport: &egress.Guard{Policy: c.Egress, Next: t}, CheckRedirect: c.Egress.CheckRedirect}
		ti := c.Egress.Transport()
		ti.TLSClientConfig = insecureTLS(nil)
		c.ownTLS = &http.Client{Transport: &egress.Guard{Policy: c.Egress, Next: ti}, CheckRedirect: c.Egress.CheckRedirect}
	}
	return c.own, c.ownTLS
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
		own, _ := c.ownClients()
		return own
	}
	if c.InsecureClient != nil {
		return c.InsecureClient
	}
	if c.Client == nil {
		_, insecure := c.ownClients()
		return insecure
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
