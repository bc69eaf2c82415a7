/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package hooks

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/egress"
	"github.com/herald-rollouts/herald/internal/hookwire"
)

// startRunner starts r until the test ends.
func startRunner(t *testing.T, r *Runner) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func key(step, hook string) Key {
	return Key{Namespace: "test", Canary: "podinfo", Step: step, Hook: hook}
}

// waitDone polls Do until the call is done.
func waitDone(t *testing.T, r *Runner, k Key, within time.Duration) Result {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		res, err := r.Do(k, flaggerv1.CanaryWebhook{}, hookwire.Payload{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if res.Done {
			return res
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not done within %s", k, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRunnerCallsOncePerKey(t *testing.T) {
	var calls atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if calls.Add(1) == 1 { // the first call hangs until released
			select {
			case <-release:
			case <-req.Context().Done():
			}
		}
	}))
	t.Cleanup(srv.Close)
	r := NewRunner(&Caller{}, logr.Discard(), RunnerOptions{})
	startRunner(t, r)
	hook := flaggerv1.CanaryWebhook{Name: "load", URL: srv.URL, Timeout: "5s"}

	for range 5 {
		res, err := r.Do(key("rev1/1", "load"), hook, payload(), time.Minute)
		if err != nil || res.Done {
			t.Fatalf("Do = %+v, %v; want a pending call", res, err)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if res, _ := r.Do(key("rev1/1", "load"), hook, payload(), time.Minute); res.Done || res.Started.IsZero() {
		t.Errorf("while the hook hangs: %+v, want a started call", res)
	}
	close(release)
	select {
	case ev := <-r.Events():
		if ev.Object.GetName() != "podinfo" || ev.Object.GetNamespace() != "test" {
			t.Errorf("wake-up for %s/%s", ev.Object.GetNamespace(), ev.Object.GetName())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no wake-up event")
	}
	res := waitDone(t, r, key("rev1/1", "load"), time.Second)
	if res.Err != nil || res.Started.IsZero() || res.Finished.Before(res.Started) {
		t.Errorf("result: %+v", res)
	}
	for range 3 {
		again, err := r.Do(key("rev1/1", "load"), hook, payload(), time.Minute)
		if err != nil || !again.Done || again.Finished != res.Finished {
			t.Fatalf("asking again: %+v, %v", again, err)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("the hook was called %d times for one key, want 1", n)
	}
	// Another step is another call.
	if _, err := r.Do(key("rev1/2", "load"), hook, payload(), time.Minute); err != nil {
		t.Fatal(err)
	}
	if res := waitDone(t, r, key("rev1/2", "load"), 5*time.Second); res.Err != nil {
		t.Errorf("second step: %v", res.Err)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("%d calls after two steps", n)
	}
}

func TestRunnerCapsTimeoutAndRetries(t *testing.T) {
	hang := &recorder{hangFor: time.Hour}
	hangSrv := newServer(t, hang)
	failing := &recorder{respond: answer(http.StatusServiceUnavailable, "down")}
	failSrv := newServer(t, failing)
	r := NewRunner(&Caller{RetryWait: time.Millisecond}, logr.Discard(), RunnerOptions{MaxRetries: 2})
	startRunner(t, r)

	start := time.Now()
	_, err := r.Do(key("s", "hangs"), flaggerv1.CanaryWebhook{Name: "hangs", URL: hangSrv.URL, Timeout: "10h", Retries: 0}, payload(), 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	res := waitDone(t, r, key("s", "hangs"), 5*time.Second)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("a hook with a 10h timeout held its call for %s; the limit was 300ms", d)
	}
	if res.Err == nil || !strings.Contains(res.Err.Error(), "300ms") {
		t.Errorf("error %v should name the limit", res.Err)
	}

	if _, err := r.Do(key("s", "fails"), flaggerv1.CanaryWebhook{Name: "fails", URL: failSrv.URL, Retries: 100}, payload(), time.Minute); err != nil {
		t.Fatal(err)
	}
	res = waitDone(t, r, key("s", "fails"), 5*time.Second)
	var e *Error
	if !errors.As(res.Err, &e) || e.Attempts != 3 {
		t.Errorf("retries 100 capped at 2: %v", res.Err)
	}
	if n := failing.calls.Load(); n != 3 {
		t.Errorf("the server got %d calls, want 3", n)
	}
}

func TestRunnerPoolAndQueueAreBounded(t *testing.T) {
	var inFlight, most atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		select {
		case <-release:
		case <-req.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	r := NewRunner(&Caller{}, logr.Discard(), RunnerOptions{Workers: 2, QueueSize: 3})
	startRunner(t, r)
	hook := flaggerv1.CanaryWebhook{Name: "h", URL: srv.URL, Timeout: "1h"}
	busyBefore := testutil.ToFloat64(hookCalls.WithLabelValues("busy"))

	accepted := 0
	for i := range 10 {
		_, err := r.Do(Key{Namespace: "test", Canary: "c" + string(rune('a'+i)), Step: "1", Hook: "h"}, hook, payload(), time.Hour)
		switch {
		case err == nil:
			accepted++
		case !errors.Is(err, ErrBusy):
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // let the workers take their calls
	}
	if accepted != 5 {
		t.Errorf("%d calls accepted, want 2 running + 3 queued", accepted)
	}
	if m := most.Load(); m != 2 {
		t.Errorf("%d calls ran at once, want 2", m)
	}
	if got := testutil.ToFloat64(hookCalls.WithLabelValues("busy")) - busyBefore; got != 5 {
		t.Errorf("herald_hook_calls_total{result=busy} rose by %v, want 5", got)
	}
	if active, _ := r.Len(); active != 5 {
		t.Errorf("%d calls in flight", active)
	}
}

func TestRunnerKeepsResultsBounded(t *testing.T) {
	rec := &recorder{}
	srv := newServer(t, rec)
	r := NewRunner(&Caller{}, logr.Discard(), RunnerOptions{MaxResults: 3, ResultTTL: time.Minute})
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	r.now = func() time.Time { return time.Unix(0, clock.Load()) }
	startRunner(t, r)
	hook := flaggerv1.CanaryWebhook{Name: "h", URL: srv.URL}
	for i := range 5 {
		k := key(string(rune('0'+i)), "h")
		if _, err := r.Do(k, hook, payload(), time.Second); err != nil {
			t.Fatal(err)
		}
		waitDone(t, r, k, 5*time.Second)
	}
	if _, finished := r.Len(); finished != 3 {
		t.Errorf("%d results kept, want 3", finished)
	}
	// The newest results are the ones kept: asking for step 4 makes no call.
	before := rec.calls.Load()
	if res, _ := r.Do(key("4", "h"), hook, payload(), time.Second); !res.Done {
		t.Error("the newest result was dropped")
	}
	// Past the TTL a result is gone.
	clock.Add(int64(2 * time.Minute))
	if res, _ := r.Do(key("4", "h"), hook, payload(), time.Second); res.Done {
		t.Error("an expired result was returned")
	}
	waitDone(t, r, key("4", "h"), 5*time.Second)
	if n := rec.calls.Load() - before; n != 1 {
		t.Errorf("%d calls after expiry, want 1", n)
	}
	r.Forget("test", "podinfo")
	if _, finished := r.Len(); finished != 0 {
		t.Errorf("%d results left after Forget", finished)
	}
}

type panicTransport struct{}

func (panicTransport) RoundTrip(*http.Request) (*http.Response, error) { panic("transport bug") }

func TestRunnerSurvivesAPanickingCall(t *testing.T) {
	r := NewRunner(&Caller{Client: &http.Client{Transport: panicTransport{}}}, logr.Discard(), RunnerOptions{Workers: 1})
	startRunner(t, r)
	hook := flaggerv1.CanaryWebhook{Name: "h", URL: "http://127.0.0.1:1/"}
	for _, step := range []string{"1", "2"} { // the one worker lives on
		if _, err := r.Do(key(step, "h"), hook, payload(), time.Second); err != nil {
			t.Fatal(err)
		}
		res := waitDone(t, r, key(step, "h"), 5*time.Second)
		if res.Err == nil || !strings.Contains(res.Err.Error(), "failed unexpectedly: transport bug") {
			t.Errorf("step %s: %v", step, res.Err)
		}
	}
}

func TestCallerEgress(t *testing.T) {
	other := &recorder{}
	otherSrv := newServer(t, other)
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		target := otherSrv.URL
		if req.URL.Path == "/metadata" {
			target = "http://169.254.169.254/latest/meta-data/iam/"
		}
		http.Redirect(w, req, target, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirect.Close)
	c := &Caller{}
	for _, u := range []string{"http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/x", "http://metadata.google.internal/"} {
		err := c.Call(context.Background(), flaggerv1.CanaryWebhook{Name: "h", URL: u}, payload())
		if !errors.Is(err, egress.ErrRefused) {
			t.Errorf("%s: %v", u, err)
		}
	}
	for _, path := range []string{"/other", "/metadata"} {
		err := c.Call(context.Background(), flaggerv1.CanaryWebhook{Name: "h", URL: "http://herald:token@" + strings.TrimPrefix(redirect.URL, "http://") + path}, payload())
		if !errors.Is(err, egress.ErrRefused) {
			t.Errorf("redirect %s: %v", path, err)
		}
	}
	if n := other.calls.Load(); n != 0 {
		t.Errorf("a cross-host redirect was followed (%d calls)", n)
	}
	strict := &Caller{Egress: egress.Policy{DenyLoopback: true}}
	if err := strict.Call(context.Background(), flaggerv1.CanaryWebhook{Name: "h", URL: otherSrv.URL}, payload()); !errors.Is(err, egress.ErrRefused) {
		t.Errorf("loopback with DenyLoopback: %v", err)
	}
}

func TestEventPosterIsBounded(t *testing.T) {
	// A dead address: connections are accepted and never answered, so every post waits for
	// its timeout.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	stop := make(chan struct{})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Go(func() { <-stop; c.Close() })
		}
	}()
	t.Cleanup(func() { l.Close(); close(stop); conns.Wait() })
	dead := "http://" + l.Addr().String() + "/"

	e := NewEventPoster(&Caller{}, logr.Discard(), EventPosterOptions{Workers: 2, QueueSize: 16, PerCanary: 8, MaxTimeout: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = e.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	droppedBefore := testutil.ToFloat64(eventHooksDropped)
	goroutines := runtime.NumGoroutine()
	accepted := 0
	for i := range 200 {
		hook := flaggerv1.CanaryWebhook{Name: "event-" + string(rune('a'+i%26)), URL: dead, Timeout: "1h", Type: flaggerv1.EventHook}
		if e.Post(hook, payload(), EventTypeNormal, "New revision detected", time.Now()) {
			accepted++
		}
	}
	if accepted != 8 {
		t.Errorf("%d of 200 posts accepted for one Canary, want 8", accepted)
	}
	if got := testutil.ToFloat64(eventHooksDropped) - droppedBefore; got != 192 {
		t.Errorf("herald_event_hooks_dropped_total rose by %v, want 192", got)
	}
	if n := runtime.NumGoroutine() - goroutines; n > 20 {
		t.Errorf("%d goroutines more after 200 posts", n)
	}
	// Another Canary still gets its share, and the queue drains within the timeouts.
	other := payload()
	other.Name = "other"
	if !e.Post(flaggerv1.CanaryWebhook{Name: "e", URL: dead}, other, EventTypeNormal, "x", time.Now()) {
		t.Error("another Canary's event was dropped")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		e.mu.Lock()
		n := len(e.perCanary)
		e.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the queue did not drain")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestEventPosterDelivers(t *testing.T) {
	rec := &recorder{}
	srv := newServer(t, rec)
	e := NewEventPoster(&Caller{}, logr.Discard(), EventPosterOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = e.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	if !e.Post(flaggerv1.CanaryWebhook{Name: "e", URL: srv.URL, Metadata: map[string]string{"k": "v"}}, payload(), EventTypeWarning, "Canary failed!", time.UnixMilli(1700000000000)) {
		t.Fatal("dropped")
	}
	deadline := time.Now().Add(5 * time.Second)
	for rec.calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.bodies) != 1 {
		t.Fatalf("%d posts", len(rec.bodies))
	}
	for _, want := range []string{`"eventMessage":"Canary failed!"`, `"eventType":"Warning"`, `"timestamp":"1700000000000"`, `"k":"v"`, `"name":"podinfo"`} {
		if !strings.Contains(string(rec.bodies[0]), want) {
			t.Errorf("payload %s lacks %s", rec.bodies[0], want)
		}
	}
}
