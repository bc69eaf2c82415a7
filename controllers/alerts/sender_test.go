package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/egress"
)

func fakeReader(t testing.TB, objs ...client.Object) client.Reader {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := flaggerv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).Build()
}

func provider(ns, name, typ string, mutate ...func(*flaggerv1.AlertProviderSpec)) *flaggerv1.AlertProvider {
	p := &flaggerv1.AlertProvider{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       flaggerv1.AlertProviderSpec{Type: typ},
	}
	for _, m := range mutate {
		m(&p.Spec)
	}
	return p
}

func secret(ns, name string, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

func address(a string) func(*flaggerv1.AlertProviderSpec) {
	return func(s *flaggerv1.AlertProviderSpec) { s.Address = a }
}

func secretRef(name string) func(*flaggerv1.AlertProviderSpec) {
	return func(s *flaggerv1.AlertProviderSpec) { s.SecretRef = &corev1.LocalObjectReference{Name: name} }
}

func TestResolve(t *testing.T) {
	reader := fakeReader(t,
		provider("test", "inline", "slack", address("https://hooks.example.com/inline"), func(s *flaggerv1.AlertProviderSpec) {
			s.Channel, s.Username, s.Proxy = "on-call", "deployer", "http://proxy.example.com:3128"
		}),
		provider("test", "defaults", "rocket", address("https://chat.example.com/hooks/a/b")),
		provider("test", "from-secret", "slack", address("https://hooks.example.com/overridden"), secretRef("slack-url")),
		secret("test", "slack-url", map[string]string{"address": "https://hooks.example.com/secret\n", "token": "xoxb-1"}),
		provider("test", "token-only", "webhook", address("https://example.com/inline"), secretRef("token-only")),
		secret("test", "token-only", map[string]string{"token": "t"}),
		provider("test", "no-address", "slack", secretRef("empty")),
		secret("test", "empty", map[string]string{"token": "t"}),
		provider("test", "missing-secret", "slack", secretRef("nope")),
		provider("test", "discord", "discord", address("https://discord.com/api/webhooks/1/tok/slack")),
		provider("test", "bad-address", "slack", address("hooks.example.com/path")),
		provider("test", "bad-type", "pagerduty", address("https://example.com")),
	)
	s := &Sender{Reader: reader}
	ctx := context.Background()
	cases := []struct {
		name    string
		want    Destination
		wantErr string
	}{
		{name: "inline", want: Destination{Type: "slack", Name: "test/inline", Address: "https://hooks.example.com/inline",
			Proxy: "http://proxy.example.com:3128", Channel: "on-call", Username: "deployer"}},
		{name: "defaults", want: Destination{Type: "rocket", Name: "test/defaults", Address: "https://chat.example.com/hooks/a/b",
			Channel: "general", Username: "flagger"}},
		{name: "from-secret", want: Destination{Type: "slack", Name: "test/from-secret", Address: "https://hooks.example.com/secret",
			Token: "xoxb-1", Channel: "general", Username: "flagger"}},
		{name: "token-only", want: Destination{Type: "webhook", Name: "test/token-only", Address: "https://example.com/inline",
			Token: "t", Channel: "general", Username: "flagger"}},
		{name: "discord", want: Destination{Type: "discord", Name: "test/discord", Address: "https://discord.com/api/webhooks/1/tok",
			Channel: "general", Username: "flagger"}},
		{name: "no-address", wantErr: `Secret empty has no key "address"`},
		{name: "missing-secret", wantErr: "reading spec.secretRef nope"},
		{name: "bad-address", wantErr: "address: must be an absolute http or https URL"},
		{name: "bad-type", wantErr: `spec.type "pagerduty" is not supported`},
		{name: "absent", wantErr: "reading AlertProvider test/absent"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Resolve(ctx, "test", tc.name)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "hooks.example.com") {
					t.Errorf("the error leaks the address: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestDestinationsFilterAndPaths(t *testing.T) {
	reader := fakeReader(t,
		provider("test", "all", "slack", address("https://example.com/all")),
		provider("test", "warn", "slack", address("https://example.com/warn")),
		provider("test", "errors", "slack", address("https://example.com/errors")),
		provider("ops", "shared", "msteams", address("https://example.com/shared")),
	)
	s := &Sender{Reader: reader, Global: []Destination{{Type: "slack", Name: "global", Address: "https://example.com/global"}}}
	alerts := []flaggerv1.CanaryAlert{
		{Name: "unset", ProviderRef: flaggerv1.CrossNamespaceObjectReference{Name: "all"}},
		{Name: "warn", Severity: flaggerv1.SeverityWarn, ProviderRef: flaggerv1.CrossNamespaceObjectReference{Name: "warn"}},
		{Name: "errors", Severity: flaggerv1.SeverityError, ProviderRef: flaggerv1.CrossNamespaceObjectReference{Name: "errors"}},
		{Name: "other ns", Severity: flaggerv1.SeverityInfo, ProviderRef: flaggerv1.CrossNamespaceObjectReference{Name: "shared", Namespace: "ops"}},
		{Name: "missing", Severity: flaggerv1.SeverityError, ProviderRef: flaggerv1.CrossNamespaceObjectReference{Name: "missing"}},
	}
	names := func(ds []Destination) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.Name)
		}
		return out
	}
	ctx := context.Background()
	got, err := s.Destinations(ctx, "test", alerts, flaggerv1.SeverityInfo)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(names(got), ",") != "test/all,ops/shared" {
		t.Errorf("info goes to %v, want the unset-severity alert (info) and the info one", names(got))
	}
	got, err = s.Destinations(ctx, "test", alerts, flaggerv1.SeverityError)
	if strings.Join(names(got), ",") != "test/all,test/warn,test/errors,ops/shared" {
		t.Errorf("error goes to %v", names(got))
	}
	if err == nil || !strings.Contains(err.Error(), "spec.analysis.alerts[4].providerRef: reading AlertProvider test/missing") {
		t.Errorf("the missing provider is reported with its field path, got %v", err)
	}
	got, err = s.Destinations(ctx, "test", nil, flaggerv1.SeverityInfo)
	if err != nil || strings.Join(names(got), ",") != "global" {
		t.Errorf("a Canary without alerts uses the global provider, got %v, %v", names(got), err)
	}
}

func TestWants(t *testing.T) {
	sevs := []Severity{flaggerv1.SeverityInfo, flaggerv1.SeverityWarn, flaggerv1.SeverityError}
	want := map[Severity][]bool{ // subscribed -> receives info, warn, error
		"":                      {true, true, true},
		flaggerv1.SeverityInfo:  {true, true, true},
		flaggerv1.SeverityWarn:  {false, true, true},
		flaggerv1.SeverityError: {false, false, true},
	}
	for subscribed, row := range want {
		for i, sev := range sevs {
			if got := Wants(subscribed, sev); got != row[i] {
				t.Errorf("Wants(%q, %q) = %t, want %t", subscribed, sev, got, row[i])
			}
		}
	}
}

// receiver is a chat service on loopback that fails the first `failures` requests.
type receiver struct {
	*httptest.Server
	failures atomic.Int32
	status   int // answer while failing
	mu       sync.Mutex
	requests []*http.Request
	bodies   []map[string]any
}

func newReceiver(t testing.TB, failures int, status int) *receiver {
	r := &receiver{status: status}
	r.failures.Store(int32(failures))
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		var body map[string]any
		_ = json.Unmarshal(b, &body)
		r.mu.Lock()
		r.requests = append(r.requests, req)
		r.bodies = append(r.bodies, body)
		r.mu.Unlock()
		if r.failures.Add(-1) >= 0 {
			http.Error(w, "try later", r.status)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.requests)
}

func fastSender() *Sender { return &Sender{Backoff: time.Millisecond, Timeout: time.Second} }

func TestSendRetriesTransientFailures(t *testing.T) {
	r := newReceiver(t, 2, http.StatusBadGateway)
	d := Destination{Type: "slack", Name: "test/slack", Address: r.URL + "/secret-path", Token: "s3cret"}
	if err := fastSender().Send(context.Background(), d, sample(flaggerv1.SeverityError)); err != nil {
		t.Fatalf("the third try succeeds, got %v", err)
	}
	if r.count() != 3 {
		t.Fatalf("%d requests, want 3", r.count())
	}
	for _, req := range r.requests {
		if req.Header.Get("Authorization") != "Bearer s3cret" || req.Header.Get("Content-Type") != "application/json" {
			t.Errorf("headers %v", req.Header)
		}
		if req.URL.Path != "/secret-path" || req.Method != http.MethodPost {
			t.Errorf("%s %s", req.Method, req.URL.Path)
		}
	}
	if r.bodies[2]["attachments"] == nil {
		t.Errorf("the body is Slack's shape: %v", r.bodies[2])
	}
}

func TestSendGivesUp(t *testing.T) {
	t.Run("after the attempts", func(t *testing.T) {
		r := newReceiver(t, 100, http.StatusServiceUnavailable)
		err := fastSender().Send(context.Background(), Destination{Type: "webhook", Name: "test/w", Address: r.URL + "/secret-path"}, sample(flaggerv1.SeverityInfo))
		if err == nil || !strings.Contains(err.Error(), "503") {
			t.Fatalf("error %v", err)
		}
		if r.count() != DefaultAttempts {
			t.Errorf("%d requests, want %d", r.count(), DefaultAttempts)
		}
	})
	t.Run("at once on a client error", func(t *testing.T) {
		r := newReceiver(t, 100, http.StatusNotFound)
		err := fastSender().Send(context.Background(), Destination{Type: "webhook", Name: "test/w", Address: r.URL + "/secret-path"}, sample(flaggerv1.SeverityInfo))
		if err == nil || r.count() != 1 {
			t.Fatalf("error %v after %d requests, want one request", err, r.count())
		}
	})
	t.Run("without leaking the address", func(t *testing.T) {
		r := newReceiver(t, 0, 0)
		r.Close() // connection refused
		err := fastSender().Send(context.Background(), Destination{Type: "webhook", Name: "test/w", Address: r.URL + "/secret-path"}, sample(flaggerv1.SeverityInfo))
		if err == nil {
			t.Fatal("a closed server cannot succeed")
		}
		if strings.Contains(err.Error(), "secret-path") || strings.Contains(err.Error(), r.URL) {
			t.Errorf("the error leaks the address: %v", err)
		}
		if !strings.Contains(err.Error(), "webhook provider test/w") {
			t.Errorf("the error names the provider: %v", err)
		}
	})
	t.Run("on timeout", func(t *testing.T) {
		release := make(chan struct{})
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
		defer slow.Close()
		defer close(release)
		s := &Sender{Backoff: time.Millisecond, Timeout: 50 * time.Millisecond, Attempts: 2}
		if err := s.Send(context.Background(), Destination{Type: "webhook", Address: slow.URL}, sample(flaggerv1.SeverityInfo)); err == nil {
			t.Fatal("a server that never answers fails the send")
		}
	})
}

// The provider's proxy is used for the POST: a plain-HTTP proxy sees the absolute target URL.
func TestSendThroughProxy(t *testing.T) {
	var seen atomic.Value
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.URL.String())
		w.WriteHeader(http.StatusOK)
	}))
	defer proxy.Close()
	d := Destination{Type: "gchat", Address: "http://chat.invalid/v1/spaces/x/messages", Proxy: proxy.URL}
	if err := fastSender().Send(context.Background(), d, sample(flaggerv1.SeverityInfo)); err != nil {
		t.Fatal(err)
	}
	if got, _ := seen.Load().(string); got != "http://chat.invalid/v1/spaces/x/messages" {
		t.Errorf("the proxy saw %q", got)
	}
}

// Each destination's proxy is chosen per request from one shared client: no client is
// kept per proxy URL, and two destinations with different proxies reach each their own.
func TestOneClientManyProxies(t *testing.T) {
	var hits [3]atomic.Int32
	var proxies [3]*httptest.Server
	for i := range proxies {
		proxies[i] = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits[i].Add(1)
			w.WriteHeader(http.StatusOK)
		}))
		defer proxies[i].Close()
	}
	s := fastSender()
	for round := range 2 {
		for i, p := range proxies {
			d := Destination{Type: "webhook", Name: "test/w", Address: "http://chat.invalid/hook", Proxy: p.URL}
			if err := s.Send(context.Background(), d, sample(flaggerv1.SeverityInfo)); err != nil {
				t.Fatal(err)
			}
			if got := hits[i].Load(); got != int32(round+1) {
				t.Errorf("round %d: proxy %d got %d requests", round, i, got)
			}
		}
	}
	first := s.client()
	if s.client() != first {
		t.Error("the sender built a second client")
	}
}

func TestSendEgress(t *testing.T) {
	other := newReceiver(t, 0, 0)
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/steal", http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()
	for _, addr := range []string{"http://169.254.169.254/latest/meta-data", "http://metadata.google.internal/x", redirect.URL + "/hook"} {
		d := Destination{Type: "webhook", Name: "test/w", Address: addr, Token: "team-token"}
		err := fastSender().Send(context.Background(), d, sample(flaggerv1.SeverityInfo))
		if !errors.Is(err, egress.ErrRefused) {
			t.Errorf("%s: %v", addr, err)
		}
	}
	if n := other.count(); n != 0 {
		t.Errorf("a redirect to another host was followed (%d requests)", n)
	}
	d := Destination{Type: "webhook", Name: "test/w", Address: "http://chat.invalid/hook", Proxy: "http://169.254.169.254:3128"}
	if err := fastSender().Send(context.Background(), d, sample(flaggerv1.SeverityInfo)); !errors.Is(err, egress.ErrRefused) {
		t.Errorf("a link-local proxy: %v", err)
	}
}

func TestNoCrossNamespaceProviderRefs(t *testing.T) {
	reader := fakeReader(t,
		provider("team-b", "chat", "webhook", address("https://example.com/b")),
		provider("team-a", "chat", "webhook", address("https://example.com/a")))
	s := &Sender{Reader: reader, NoCrossNamespaceRefs: true}
	dests, err := s.Destinations(context.Background(), "team-a", []flaggerv1.CanaryAlert{
		{Name: "other", Severity: flaggerv1.SeverityInfo, ProviderRef: flaggerv1.CrossNamespaceObjectReference{Name: "chat", Namespace: "team-b"}},
		{Name: "own", Severity: flaggerv1.SeverityInfo, ProviderRef: flaggerv1.CrossNamespaceObjectReference{Name: "chat"}},
	}, flaggerv1.SeverityInfo)
	if err == nil || !strings.Contains(err.Error(), `spec.analysis.alerts[0].providerRef.namespace: "team-b" is not the Canary's namespace "team-a"`) {
		t.Errorf("error %v", err)
	}
	if len(dests) != 1 || dests[0].Name != "team-a/chat" {
		t.Errorf("destinations %v", dests)
	}
	s.NoCrossNamespaceRefs = false
	if dests, err := s.Destinations(context.Background(), "team-a", []flaggerv1.CanaryAlert{
		{Name: "other", Severity: flaggerv1.SeverityInfo, ProviderRef: flaggerv1.CrossNamespaceObjectReference{Name: "chat", Namespace: "team-b"}},
	}, flaggerv1.SeverityInfo); err != nil || len(dests) != 1 {
		t.Errorf("without the flag: %v, %v", dests, err)
	}
}
