/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package load

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Observer is told the outcome of every request: its status code, or the error when no
// response came. It is called from several goroutines at once.
type Observer func(code int, err error)

// Result sums up a load.
type Result struct {
	// Requests is the number of requests sent, answered or not.
	Requests int
	// Errors is the number of requests that got no response.
	Errors int
	// Codes counts the responses by status code.
	Codes map[int]int
	// Elapsed is the time from the first request to the last outcome.
	Elapsed time.Duration
	// LastError is the last transport error, to say why requests failed.
	LastError error
}

// String is a one-line summary for logs.
func (r Result) String() string {
	var b strings.Builder
	rate := 0.0
	if r.Elapsed > 0 {
		rate = float64(r.Requests) / r.Elapsed.Seconds()
	}
	fmt.Fprintf(&b, "%d requests in %s (%s req/s)", r.Requests, r.Elapsed.Round(time.Millisecond), formatRate(rate))
	codes := slices.Sorted(maps.Keys(r.Codes))
	if len(codes) > 0 {
		parts := make([]string, 0, len(codes))
		for _, c := range codes {
			parts = append(parts, strconv.Itoa(c)+": "+strconv.Itoa(r.Codes[c]))
		}
		fmt.Fprintf(&b, ", responses {%s}", strings.Join(parts, ", "))
	}
	if r.Errors > 0 {
		fmt.Fprintf(&b, ", %d without response (last: %v)", r.Errors, r.LastError)
	}
	return b.String()
}

// lateness is how far the pacer may fall behind its schedule (all workers busy) before it
// gives up the missed slots instead of sending them in a burst.
const lateness = time.Second

// drainGrace is how long requests still in flight when a load's duration ends may take
// to complete before they are cancelled: a target that hangs must not keep the load, and
// with it the Canary's dedupe key, alive until the task's timeout.
var drainGrace = 5 * time.Second

// Run sends the load and returns when it is over: Duration has passed or Requests have
// been sent, or ctx is done. Requests in flight when the duration ends get drainGrace to
// complete, then are cancelled; those in flight when ctx is done are cancelled at once.
// The error is for a spec that cannot run.
func Run(ctx context.Context, s Spec, observe Observer) (Result, error) {
	if err := s.Validate(); err != nil {
		return Result{}, err
	}
	if observe == nil {
		observe = func(int, error) {}
	}
	client, err := newClient(&s)
	if err != nil {
		return Result{}, err
	}
	defer client.CloseIdleConnections()

	start := time.Now()
	slots := make(chan struct{})
	dispatchCtx := ctx
	if s.Duration > 0 {
		var cancel context.CancelFunc
		dispatchCtx, cancel = context.WithDeadline(ctx, start.Add(s.Duration)) // a slot wait ends with it
		defer cancel()
	}
	var end time.Time
	if s.Duration > 0 {
		end = start.Add(s.Duration)
	}
	go pace(dispatchCtx, &s, start, end, slots)
	requestCtx, cancelRequests := context.WithCancel(ctx)
	defer cancelRequests()
	if s.Duration > 0 {
		t := time.AfterFunc(s.Duration+drainGrace, cancelRequests)
		defer t.Stop()
	}

	results := make([]Result, s.Concurrency)
	var wg sync.WaitGroup
	for w := range s.Concurrency {
		wg.Go(func() {
			r := &results[w]
			r.Codes = map[int]int{}
			header := s.Header.Clone()
			for range slots {
				code, err := send(requestCtx, client, &s, header)
				r.Requests++
				if err != nil {
					r.Errors++
					r.LastError = err
				} else {
					r.Codes[code]++
				}
				observe(code, err)
			}
		})
	}
	wg.Wait()

	total := Result{Codes: map[int]int{}, Elapsed: time.Since(start)}
	for _, r := range results {
		total.Requests += r.Requests
		total.Errors += r.Errors
		if r.LastError != nil {
			total.LastError = r.LastError
		}
		for c, n := range r.Codes {
			total.Codes[c] += n
		}
	}
	return total, nil
}

// pace hands out one slot per request, at the spec's rate, to whichever worker is free,
// and closes slots when the load is over (at end, unless zero). The schedule is absolute
// (start + i/rate) so that the rate does not drift with timer latency; a slot due at end
// or later is not sent, so that d at r req/s is d×r requests.
func pace(ctx context.Context, s *Spec, start, end time.Time, slots chan<- struct{}) {
	defer close(slots)
	var interval time.Duration
	if s.Rate > 0 {
		interval = time.Duration(float64(time.Second) / s.Rate)
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C

	base, k := start, 0
	for sent := 0; s.Requests == 0 || sent < s.Requests; sent++ {
		if interval > 0 {
			due := base.Add(time.Duration(k) * interval)
			if late := time.Since(due); late > lateness {
				base, k, due = time.Now(), 0, time.Now()
			}
			k++
			if !end.IsZero() && !due.Before(end) {
				return
			}
			if wait := time.Until(due); wait > 0 {
				timer.Reset(wait)
				select {
				case <-ctx.Done():
					return
				case <-timer.C:
				}
			}
		}
		if ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case slots <- struct{}{}:
		}
	}
}

func send(ctx context.Context, client *http.Client, s *Spec, header http.Header) (int, error) {
	var body io.Reader
	if len(s.Body) > 0 {
		body = bytes.NewReader(s.Body)
	}
	req, err := http.NewRequestWithContext(ctx, s.Method, s.URL, body)
	if err != nil {
		return 0, err
	}
	req.Header = header
	if s.Host != "" {
		req.Host = s.Host
	}
	if s.Username != "" || s.Password != "" {
		req.SetBasicAuth(s.Username, s.Password)
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is known; do not repeat it (with its query) in every log line
		}
		return 0, err
	}
	// Reading the whole body is part of the load, and lets the connection be reused.
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func newClient(s *Spec) (*http.Client, error) {
	proxy := http.ProxyFromEnvironment
	if s.Proxy != "" {
		u, err := url.Parse(s.Proxy)
		if err != nil {
			return nil, fmt.Errorf("proxy: %w", err)
		}
		proxy = http.ProxyURL(u)
	}
	t := &http.Transport{
		Proxy: proxy,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		// One idle connection per worker, so that keep-alive really reuses them.
		MaxIdleConns:        s.Concurrency,
		MaxIdleConnsPerHost: s.Concurrency,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		DisableKeepAlives:   s.DisableKeepAlives,
		DisableCompression:  s.DisableCompression,
		// Like hey, a load test does not verify certificates: it targets canaries that
		// often serve self-signed ones, and sends nothing worth protecting.
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see above
		ForceAttemptHTTP2: s.HTTP2,
	}
	if !s.HTTP2 {
		// A non-nil empty map turns HTTP/2 off: hey speaks HTTP/1.1 unless -h2.
		t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	c := &http.Client{Transport: t, Timeout: s.RequestTimeout}
	if s.DisableRedirects {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	return c, nil
}
