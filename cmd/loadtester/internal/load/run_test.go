/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package load

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// target is a loopback HTTP server that counts what it receives.
type target struct {
	*httptest.Server
	count    atomic.Int64
	inFlight atomic.Int64
	maxIn    atomic.Int64
	delay    time.Duration

	mu   sync.Mutex
	last *http.Request
	body string
}

func newTarget(t *testing.T, delay time.Duration) *target {
	tg := &target{delay: delay}
	tg.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := tg.inFlight.Add(1)
		defer tg.inFlight.Add(-1)
		for {
			m := tg.maxIn.Load()
			if n <= m || tg.maxIn.CompareAndSwap(m, n) {
				break
			}
		}
		b, _ := io.ReadAll(r.Body)
		tg.mu.Lock()
		tg.last, tg.body = r, string(b)
		tg.mu.Unlock()
		tg.count.Add(1)
		if tg.delay > 0 {
			time.Sleep(tg.delay)
		}
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/", http.StatusFound)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(tg.Close)
	return tg
}

func TestRunKeepsTheRequestedRate(t *testing.T) {
	tg := newTarget(t, 0)
	s := Spec{URL: tg.URL + "/", Rate: 50, Concurrency: 4, Duration: 3 * time.Second}
	var observed atomic.Int64
	res, err := Run(context.Background(), s, func(code int, err error) {
		if code == http.StatusOK && err == nil {
			observed.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	got := tg.count.Load()
	// 50 req/s for 3 s is 150 requests; within 10%.
	if got < 135 || got > 165 {
		t.Errorf("the target received %d requests, want 150 ±10%% (%s)", got, res)
	}
	if int64(res.Requests) != got || int64(res.Codes[200]) != got || observed.Load() != got {
		t.Errorf("result %s and observer (%d) disagree with the target (%d)", res, observed.Load(), got)
	}
}

func TestRunFromHeyCommandKeepsPerWorkerRate(t *testing.T) {
	tg := newTarget(t, 0)
	// hey's -q is per worker: 25 × 2 = 50 req/s.
	s, err := ParseHey([]string{"-z", "2s", "-q", "25", "-c", "2", tg.URL + "/"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), s, nil); err != nil {
		t.Fatal(err)
	}
	if got := tg.count.Load(); got < 90 || got > 110 {
		t.Errorf("the target received %d requests, want 100 ±10%%", got)
	}
}

func TestRunSendsExactlyRequestsWithAtMostConcurrencyInFlight(t *testing.T) {
	tg := newTarget(t, 20*time.Millisecond)
	s := Spec{URL: tg.URL + "/", Method: "POST", Body: []byte("payload"), Concurrency: 3, Requests: 30,
		Header: http.Header{"X-Test": {"yes"}}, Host: "podinfo.local", Username: "u", Password: "p"}
	res, err := Run(context.Background(), s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tg.count.Load() != 30 || res.Requests != 30 {
		t.Errorf("sent %d (result %s), want exactly 30", tg.count.Load(), res)
	}
	if m := tg.maxIn.Load(); m > 3 || m < 2 {
		t.Errorf("at most 3 requests in flight, and more than one: saw %d", m)
	}
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if tg.last.Method != "POST" || tg.body != "payload" || tg.last.Header.Get("X-Test") != "yes" || tg.last.Host != "podinfo.local" {
		t.Errorf("request: %s host %q body %q headers %v", tg.last.Method, tg.last.Host, tg.body, tg.last.Header)
	}
	if u, p, ok := tg.last.BasicAuth(); !ok || u != "u" || p != "p" {
		t.Errorf("basic auth: %q %q %v", u, p, ok)
	}
}

func TestRunRedirects(t *testing.T) {
	tg := newTarget(t, 0)
	res, err := Run(context.Background(), Spec{URL: tg.URL + "/redirect", Concurrency: 1, Requests: 2, DisableRedirects: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Codes[http.StatusFound] != 2 || tg.count.Load() != 2 {
		t.Errorf("with redirects disabled, want two 302s: %s, target saw %d", res, tg.count.Load())
	}
	tg.count.Store(0)
	res, err = Run(context.Background(), Spec{URL: tg.URL + "/redirect", Concurrency: 1, Requests: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Codes[http.StatusOK] != 2 || tg.count.Load() != 4 {
		t.Errorf("redirects are followed like hey does: %s, target saw %d", res, tg.count.Load())
	}
}

func TestRunStopsWhenCancelled(t *testing.T) {
	tg := newTarget(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Result)
	go func() {
		res, _ := Run(ctx, Spec{URL: tg.URL + "/", Rate: 100, Concurrency: 2, Duration: time.Hour}, nil)
		done <- res
	}()
	for tg.count.Load() < 5 {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the load did not stop when its context was cancelled")
	}
	// A request each worker had already written when Run returned may reach the server's
	// handler a moment later (a loaded machine schedules it late); nothing else may.
	after := tg.count.Load()
	time.Sleep(200 * time.Millisecond)
	settled := tg.count.Load()
	if settled > after+2 {
		t.Errorf("%d requests reached the target after Run returned (2 workers)", settled-after)
	}
	time.Sleep(200 * time.Millisecond)
	if tg.count.Load() != settled {
		t.Error("requests were still sent after Run returned")
	}
}

func TestRunCountsTransportErrors(t *testing.T) {
	tg := newTarget(t, 0)
	url := tg.URL + "/"
	tg.Close() // nothing listens any more
	res, err := Run(context.Background(), Spec{URL: url, Concurrency: 1, Requests: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 3 || res.Errors != 3 || res.LastError == nil {
		t.Errorf("want 3 requests without response: %s", res)
	}
}

func TestRunRefusesInvalidSpec(t *testing.T) {
	if _, err := Run(context.Background(), Spec{URL: "http://x/", Concurrency: 1}, nil); err == nil {
		t.Error("a load without an end was accepted")
	}
}

func BenchmarkRun(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	b.ResetTimer()
	res, err := Run(context.Background(), Spec{URL: srv.URL + "/", Concurrency: 8, Requests: max(b.N, 8)}, nil)
	if err != nil {
		b.Fatal(err)
	}
	if res.Errors > 0 {
		b.Fatal(res)
	}
}

// A rate so low that its interval overflows a time.Duration is refused rather than run at
// full speed; the lowest allowed rate paces correctly.
func TestRunRefusesRatesBelowMinRate(t *testing.T) {
	tg := newTarget(t, 0)
	for _, rate := range []float64{1e-10, 1e-300, MinRate / 2} {
		if _, err := Run(context.Background(), Spec{URL: tg.URL + "/", Rate: rate, Concurrency: 1, Duration: 200 * time.Millisecond}, nil); err == nil {
			t.Errorf("rate %v was accepted", rate)
		}
	}
	res, err := Run(context.Background(), Spec{URL: tg.URL + "/", Rate: MinRate, Concurrency: 1, Duration: 200 * time.Millisecond}, nil)
	if err != nil || res.Requests != 1 {
		t.Errorf("rate %v: %s %v, want the one request due at the start", MinRate, res, err)
	}
	if tg.count.Load() != 1 {
		t.Errorf("the target received %d requests, want 1", tg.count.Load())
	}
}

// Requests that hang past the load's duration are cancelled after a grace period, so that
// the load ends (and frees its key) instead of waiting for the task's timeout.
func TestRunCancelsHangingRequestsAfterTheDuration(t *testing.T) {
	defer func(g time.Duration) { drainGrace = g }(drainGrace)
	drainGrace = 200 * time.Millisecond
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(hang)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Run(ctx, Spec{URL: srv.URL + "/", Rate: 10, Concurrency: 2, Duration: 300 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("the load ran until its context ended: hanging requests were not cancelled")
	}
	if res.Requests != 2 || res.Errors != 2 || !errors.Is(res.LastError, context.Canceled) {
		t.Errorf("want the 2 hanging requests cancelled: %s", res)
	}
}
