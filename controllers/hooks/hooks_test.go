/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package hooks

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/hookwire"
)

// recorder is a hook server that records the requests it receives and answers with
// the status and body of respond.
type recorder struct {
	mu       sync.Mutex
	bodies   [][]byte
	ctypes   []string
	methods  []string
	calls    atomic.Int32
	respond  func(n int) (int, string)
	hangFor  time.Duration
	released chan struct{}
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	n := int(r.calls.Add(1))
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.bodies = append(r.bodies, b)
	r.ctypes = append(r.ctypes, req.Header.Get("Content-Type"))
	r.methods = append(r.methods, req.Method)
	r.mu.Unlock()
	if r.hangFor > 0 {
		select {
		case <-time.After(r.hangFor):
		case <-req.Context().Done():
			return
		case <-r.released:
			return
		}
	}
	code, body := http.StatusOK, ""
	if r.respond != nil {
		code, body = r.respond(n)
	}
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
}

func newServer(t *testing.T, r *recorder) *httptest.Server {
	t.Helper()
	r.released = make(chan struct{})
	srv := httptest.NewServer(r)
	t.Cleanup(func() { close(r.released); srv.Close() })
	return srv
}

func answer(code int, body string) func(int) (int, string) {
	return func(int) (int, string) { return code, body }
}

func payload() hookwire.Payload {
	return hookwire.Payload{Name: "podinfo", Namespace: "test", Phase: flaggerv1.CanaryPhaseProgressing, Checksum: "6d4c8b5f9"}
}

func TestCallPayloadShape(t *testing.T) {
	for _, tc := range []struct {
		name string
		hook flaggerv1.CanaryWebhook
		p    hookwire.Payload
		want string
	}{
		{
			name: "hook metadata",
			hook: flaggerv1.CanaryWebhook{Name: "load-test", Metadata: map[string]string{"type": "cmd", "cmd": "hey -z 1m http://podinfo-canary.test:9898/"}},
			p:    payload(),
			want: `{"name":"podinfo","namespace":"test","phase":"Progressing","checksum":"6d4c8b5f9","metadata":{"cmd":"hey -z 1m http://podinfo-canary.test:9898/","type":"cmd"}}`,
		},
		{
			name: "no metadata is left out",
			hook: flaggerv1.CanaryWebhook{Name: "gate"},
			p:    hookwire.Payload{Name: "podinfo", Namespace: "test", Phase: flaggerv1.CanaryPhaseWaiting},
			want: `{"name":"podinfo","namespace":"test","phase":"Waiting","checksum":""}`,
		},
		{
			name: "payload metadata wins over the hook's",
			hook: flaggerv1.CanaryWebhook{Name: "x", Metadata: map[string]string{"a": "hook"}},
			p:    hookwire.Payload{Name: "p", Namespace: "n", Phase: flaggerv1.CanaryPhaseSucceeded, Checksum: "c", Metadata: map[string]string{"b": "payload"}},
			want: `{"name":"p","namespace":"n","phase":"Succeeded","checksum":"c","metadata":{"b":"payload"}}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{}
			srv := newServer(t, r)
			tc.hook.URL = srv.URL + "/"
			if err := (&Caller{}).Call(context.Background(), tc.hook, tc.p); err != nil {
				t.Fatalf("Call: %v", err)
			}
			if len(r.bodies) != 1 {
				t.Fatalf("got %d requests, want 1", len(r.bodies))
			}
			if got := string(r.bodies[0]); got != tc.want {
				t.Errorf("body:\n got %s\nwant %s", got, tc.want)
			}
			if r.methods[0] != http.MethodPost || r.ctypes[0] != "application/json" {
				t.Errorf("method %q content type %q, want POST application/json", r.methods[0], r.ctypes[0])
			}
		})
	}
}

func TestCallStatus(t *testing.T) {
	long := strings.Repeat("x", 300)
	for _, tc := range []struct {
		code    int
		body    string
		wantErr string
	}{
		{code: 200},
		{code: 201},
		{code: 202},
		{code: 203, body: "non-authoritative", wantErr: `hook "load-test" (POST URL/): 203 Non-Authoritative Information: non-authoritative`},
		{code: 204, wantErr: `hook "load-test" (POST URL/): 204 No Content`},
		{code: 403, body: "Forbidden\n", wantErr: `hook "load-test" (POST URL/): 403 Forbidden: Forbidden`},
		{code: 404, wantErr: `hook "load-test" (POST URL/): 404 Not Found`},
		{code: 500, body: "command failed\nexit status 1\n", wantErr: `hook "load-test" (POST URL/): 500 Internal Server Error: command failed exit status 1`},
		{code: 500, body: long, wantErr: `hook "load-test" (POST URL/): 500 Internal Server Error: ` + long[:MaxBodySnippet] + "..."},
	} {
		t.Run(http.StatusText(tc.code), func(t *testing.T) {
			r := &recorder{respond: answer(tc.code, tc.body)}
			srv := newServer(t, r)
			hook := flaggerv1.CanaryWebhook{Name: "load-test", URL: srv.URL + "/"}
			err := (&Caller{}).Call(context.Background(), hook, payload())
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Call: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Call succeeded, want %q", tc.wantErr)
			}
			want := strings.ReplaceAll(tc.wantErr, "URL", srv.URL)
			if err.Error() != want {
				t.Errorf("error:\n got %s\nwant %s", err, want)
			}
			var he *Error
			if !errors.As(err, &he) || he.StatusCode != tc.code {
				t.Errorf("error %#v, want *Error with status %d", err, tc.code)
			}
			if tc.code < 500 && r.calls.Load() != 1 {
				t.Errorf("%d requests, want 1", r.calls.Load())
			}
		})
	}
}

func TestCallRedactsURL(t *testing.T) {
	r := &recorder{respond: answer(500, "boom")}
	srv := newServer(t, r)
	u := strings.Replace(srv.URL, "http://", "http://user:s3cret@", 1) + "/hook?token=s3cret#frag"
	err := (&Caller{}).Call(context.Background(), flaggerv1.CanaryWebhook{Name: "h", URL: u}, payload())
	if err == nil {
		t.Fatal("Call succeeded, want an error")
	}
	if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "user") {
		t.Errorf("error leaks a secret: %s", err)
	}
	if want := `hook "h" (POST ` + srv.URL + `/hook): 500 Internal Server Error: boom`; err.Error() != want {
		t.Errorf("error:\n got %s\nwant %s", err, want)
	}

	// A transport error must not repeat the URL with its query either.
	err = (&Caller{}).Call(context.Background(),
		flaggerv1.CanaryWebhook{Name: "h", URL: "http://127.0.0.1:1/x?token=s3cret", Timeout: "1s"}, payload())
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("transport error %v, want an error without the query", err)
	}
}

func TestCallInvalidURL(t *testing.T) {
	for _, u := range []string{"", "loadtester/", "ftp://x/", "http://"} {
		err := (&Caller{}).Call(context.Background(), flaggerv1.CanaryWebhook{Name: "bad", URL: u}, payload())
		if err == nil || !strings.Contains(err.Error(), "invalid URL") {
			t.Errorf("URL %q: error %v, want invalid URL", u, err)
		}
	}
}

func TestCallTimeout(t *testing.T) {
	r := &recorder{hangFor: 10 * time.Second}
	srv := newServer(t, r)
	hook := flaggerv1.CanaryWebhook{Name: "slow", URL: srv.URL + "/", Timeout: "100ms"}
	start := time.Now()
	err := (&Caller{}).Call(context.Background(), hook, payload())
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("Call succeeded, want a timeout")
	}
	if elapsed > 2*time.Second {
		t.Errorf("Call took %s, want about 100ms", elapsed)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no response within 100ms") {
		t.Errorf("error %v, want a timeout error", err)
	}
}

func TestCallTimeoutRetriedWithinBudget(t *testing.T) {
	r := &recorder{hangFor: 10 * time.Second}
	srv := newServer(t, r)
	hook := flaggerv1.CanaryWebhook{Name: "slow", URL: srv.URL + "/", Timeout: "100ms", Retries: 2}
	start := time.Now()
	err := (&Caller{RetryWait: 10 * time.Millisecond}).Call(context.Background(), hook, payload())
	if err == nil {
		t.Fatal("Call succeeded, want a timeout")
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("Call took %s, want about 3x100ms", elapsed)
	}
	if got := r.calls.Load(); got != 3 {
		t.Errorf("%d requests, want 3", got)
	}
	if !strings.HasSuffix(err.Error(), "(after 3 attempts)") {
		t.Errorf("error %q, want the number of attempts", err)
	}
}

func TestCallDefaultTimeout(t *testing.T) {
	if got := (&flaggerv1.CanaryWebhook{}).GetTimeout(); got != flaggerv1.DefaultWebhookTimeout {
		t.Fatalf("default timeout %s", got)
	}
}

func TestCallRetries(t *testing.T) {
	r := &recorder{respond: func(n int) (int, string) {
		if n < 3 {
			return http.StatusServiceUnavailable, "not yet"
		}
		return http.StatusAccepted, ""
	}}
	srv := newServer(t, r)
	hook := flaggerv1.CanaryWebhook{Name: "flaky", URL: srv.URL + "/", Retries: 2}
	if err := (&Caller{RetryWait: time.Millisecond}).Call(context.Background(), hook, payload()); err != nil {
		t.Fatalf("Call: %v", err)
	}
	if got := r.calls.Load(); got != 3 {
		t.Errorf("%d requests, want 3", got)
	}
	for i, b := range r.bodies {
		if string(b) != string(r.bodies[0]) {
			t.Errorf("attempt %d sent %s, want %s", i+1, b, r.bodies[0])
		}
	}
}

func TestCallRetriesExhausted(t *testing.T) {
	r := &recorder{respond: answer(http.StatusServiceUnavailable, "down")}
	srv := newServer(t, r)
	hook := flaggerv1.CanaryWebhook{Name: "flaky", URL: srv.URL + "/", Retries: 1}
	err := (&Caller{RetryWait: time.Millisecond}).Call(context.Background(), hook, payload())
	want := `hook "flaky" (POST ` + srv.URL + `/): 503 Service Unavailable: down (after 2 attempts)`
	if err == nil || err.Error() != want {
		t.Errorf("error:\n got %v\nwant %s", err, want)
	}
}

func TestCallNoRetryOn4xx(t *testing.T) {
	r := &recorder{respond: answer(http.StatusForbidden, "")}
	srv := newServer(t, r)
	hook := flaggerv1.CanaryWebhook{Name: "gate", URL: srv.URL + "/", Retries: 3}
	if err := (&Caller{RetryWait: time.Millisecond}).Call(context.Background(), hook, payload()); err == nil {
		t.Fatal("Call succeeded, want 403")
	}
	if got := r.calls.Load(); got != 1 {
		t.Errorf("%d requests, want 1", got)
	}
}

func TestCallRetriesTransportErrors(t *testing.T) {
	// A closed server refuses connections: every attempt is a transport error.
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	hook := flaggerv1.CanaryWebhook{Name: "gone", URL: u + "/", Retries: 2, Timeout: "1s"}
	err := (&Caller{RetryWait: time.Millisecond}).Call(context.Background(), hook, payload())
	var he *Error
	if !errors.As(err, &he) || he.Attempts != 3 || he.StatusCode != 0 || he.Err == nil {
		t.Errorf("error %#v, want a transport error after 3 attempts", err)
	}
}

func TestCallContextCancelled(t *testing.T) {
	r := &recorder{hangFor: 10 * time.Second}
	srv := newServer(t, r)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	hook := flaggerv1.CanaryWebhook{Name: "slow", URL: srv.URL + "/", Retries: 5}
	start := time.Now()
	err := (&Caller{}).Call(ctx, hook, payload())
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("Call took %s after cancellation", elapsed)
	}
	if got := r.calls.Load(); got != 1 {
		t.Errorf("%d requests, want 1 (no retry after cancellation)", got)
	}
}

func TestCallDisableTLS(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()

	for _, tc := range []struct {
		name   string
		caller *Caller
	}{
		{"default client", &Caller{}},
		{"custom client", &Caller{Client: &http.Client{Transport: &http.Transport{}}}},
		{"custom client without transport", &Caller{Client: &http.Client{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := calls.Load()
			hook := flaggerv1.CanaryWebhook{Name: "tls", URL: srv.URL + "/", Timeout: "2s"}
			err := tc.caller.Call(context.Background(), hook, payload())
			if err == nil || !strings.Contains(err.Error(), "certificate") {
				t.Errorf("without disableTLS: error %v, want a certificate error", err)
			}
			hook.DisableTLS = true
			if err := tc.caller.Call(context.Background(), hook, payload()); err != nil {
				t.Errorf("with disableTLS: %v", err)
			}
			if got := calls.Load() - before; got != 1 {
				t.Errorf("%d requests reached the handler, want 1", got)
			}
			// The derived client is reused.
			if first := tc.caller.client(true); tc.caller.Client != nil && first != tc.caller.client(true) {
				t.Error("insecure client not cached")
			}
		})
	}

	// An explicit InsecureClient is used for disableTLS hooks: it must carry the request (a
	// fallback client would reach the test server too, so count the requests it sends).
	counting := &countingTransport{base: srv.Client().Transport}
	c := &Caller{InsecureClient: &http.Client{Transport: counting}}
	if err := c.Call(context.Background(), flaggerv1.CanaryWebhook{Name: "tls", URL: srv.URL, DisableTLS: true}, payload()); err != nil {
		t.Errorf("InsecureClient: %v", err)
	}
	if n := counting.n.Load(); n != 1 {
		t.Errorf("InsecureClient sent %d requests, want 1", n)
	}
}

type countingTransport struct {
	base http.RoundTripper
	n    atomic.Int32
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.base.RoundTrip(r)
}

func TestEvent(t *testing.T) {
	r := &recorder{}
	srv := newServer(t, r)
	userMD := map[string]string{"channel": "#deploys", "eventType": "custom"}
	hook := flaggerv1.CanaryWebhook{Type: flaggerv1.EventHook, Name: "events", URL: srv.URL + "/", Metadata: userMD}
	p := payload()
	p.Phase = flaggerv1.CanaryPhaseFailed
	now := time.UnixMilli(1767225600123)

	if err := (&Caller{}).Event(context.Background(), hook, p, EventTypeWarning, "Canary failed! Scaling down podinfo.test", now); err != nil {
		t.Fatalf("Event: %v", err)
	}
	var got hookwire.Payload
	if err := json.Unmarshal(r.bodies[0], &got); err != nil {
		t.Fatal(err)
	}
	want := hookwire.Payload{
		Name: "podinfo", Namespace: "test", Phase: flaggerv1.CanaryPhaseFailed, Checksum: "6d4c8b5f9",
		Metadata: map[string]string{
			"channel":      "#deploys",
			"eventType":    "custom", // the user's key is not overridden
			"eventMessage": "Canary failed! Scaling down podinfo.test",
			"timestamp":    "1767225600123",
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("payload:\n got %+v\nwant %+v", got, want)
	}
	if len(userMD) != 2 {
		t.Errorf("hook metadata modified: %v", userMD)
	}

	// Without metadata the three keys are added.
	hook.Metadata = nil
	if err := (&Caller{}).Event(context.Background(), hook, payload(), EventTypeNormal, "New revision detected", now); err != nil {
		t.Fatalf("Event: %v", err)
	}
	wantBody := `{"name":"podinfo","namespace":"test","phase":"Progressing","checksum":"6d4c8b5f9","metadata":{"eventMessage":"New revision detected","eventType":"Normal","timestamp":"1767225600123"}}`
	if string(r.bodies[1]) != wantBody {
		t.Errorf("body:\n got %s\nwant %s", r.bodies[1], wantBody)
	}
}

func TestOf(t *testing.T) {
	hooks := []flaggerv1.CanaryWebhook{
		{Name: "untyped"},
		{Name: "pre", Type: flaggerv1.PreRolloutHook},
		{Name: "load", Type: flaggerv1.RolloutHook},
		{Name: "gate", Type: flaggerv1.ConfirmPromotionHook},
		{Name: "pre2", Type: flaggerv1.PreRolloutHook},
		{Name: "events", Type: flaggerv1.EventHook},
	}
	names := func(hs []flaggerv1.CanaryWebhook) []string {
		var out []string
		for _, h := range hs {
			out = append(out, h.Name)
		}
		return out
	}
	for _, tc := range []struct {
		t    flaggerv1.HookType
		want []string
	}{
		{flaggerv1.RolloutHook, []string{"untyped", "load"}},
		{"", []string{"untyped", "load"}},
		{flaggerv1.PreRolloutHook, []string{"pre", "pre2"}},
		{flaggerv1.ConfirmPromotionHook, []string{"gate"}},
		{flaggerv1.EventHook, []string{"events"}},
		{flaggerv1.RollbackHook, nil},
	} {
		if got := names(Of(hooks, tc.t)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Of(%q) = %v, want %v", tc.t, got, tc.want)
		}
	}
	if got := Of(nil, flaggerv1.RolloutHook); len(got) != 0 {
		t.Errorf("Of(nil) = %v", got)
	}
}

func TestSnippet(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"  ok \r\n", "ok"},
		{"a\tb\x00c", "a b c"},
		{strings.Repeat("é", 150), strings.Repeat("é", 100) + "..."},            // 300 bytes, cut on a rune
		{"x" + strings.Repeat("é", 150), "x" + strings.Repeat("é", 99) + "..."}, // boundary at byte 199
		{"\xff\xfe", "\uFFFD"},
	} {
		if got := snippet([]byte(tc.in)); got != tc.want {
			t.Errorf("snippet(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
