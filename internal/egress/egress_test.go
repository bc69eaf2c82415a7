package egress

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
)

func TestCheckHost(t *testing.T) {
	open, strict := Policy{}, Policy{DenyLoopback: true}
	cases := []struct {
		host         string
		open, strict bool // allowed?
	}{
		{"prometheus.istio-system", true, true},
		{"10.0.0.7", true, true},
		{"127.0.0.1", true, false},
		{"::1", true, false},
		{"[::1]", true, false},
		{"localhost", true, false},
		{"169.254.169.254", false, false},
		{"169.254.0.1", false, false},
		{"fe80::1", false, false},
		{"[fe80::1%25eth0]", false, false},
		{"::ffff:169.254.169.254", false, false},
		{"0.0.0.0", false, false},
		{"::", false, false},
		{"100.100.100.200", false, false},
		{"fd00:ec2::254", false, false},
		{"metadata.google.internal", false, false},
		{"METADATA.google.internal.", false, false},
		{"metadata", false, false},
		{"instance-data", false, false},
		{"", false, false},
	}
	for _, c := range cases {
		for _, pc := range []struct {
			p    Policy
			want bool
		}{{open, c.open}, {strict, c.strict}} {
			err := pc.p.CheckHost(strings.ReplaceAll(c.host, "%25", "%"))
			if (err == nil) != pc.want {
				t.Errorf("DenyLoopback=%v CheckHost(%q) = %v, want allowed=%v", pc.p.DenyLoopback, c.host, err, pc.want)
			}
			if err != nil && !errors.Is(err, ErrRefused) {
				t.Errorf("CheckHost(%q): %v does not match ErrRefused", c.host, err)
			}
		}
	}
	err := open.CheckHost("169.254.169.254")
	if err == nil || !strings.Contains(err.Error(), "169.254.169.254") || !strings.Contains(err.Error(), "link-local") {
		t.Errorf("the refusal should name the address and the rule: %v", err)
	}
}

func TestControlRefusesResolvedAddresses(t *testing.T) {
	p := Policy{DenyLoopback: true}
	if err := p.Control("tcp4", "169.254.169.254:80", nil); !errors.Is(err, ErrRefused) {
		t.Errorf("link-local dial: %v", err)
	}
	if err := p.Control("tcp6", "[::1]:80", nil); !errors.Is(err, ErrRefused) {
		t.Errorf("loopback dial with DenyLoopback: %v", err)
	}
	if err := (Policy{}).Control("tcp4", "127.0.0.1:80", nil); err != nil {
		t.Errorf("loopback is allowed by default: %v", err)
	}
	if err := (Policy{}).CheckIP(netip.MustParseAddr("192.168.1.1")); err != nil {
		t.Errorf("private addresses are allowed: %v", err)
	}
}

// recorder is a real HTTP server that records the headers of every request.
type recorder struct {
	*httptest.Server
	mu      sync.Mutex
	headers []http.Header
}

func newRecorder(t *testing.T, h http.HandlerFunc) *recorder {
	r := &recorder{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.headers = append(r.headers, req.Header.Clone())
		r.mu.Unlock()
		if h != nil {
			h(w, req)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) requests() []http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]http.Header(nil), r.headers...)
}

func TestDialTimeCheckSeesTheResolvedAddress(t *testing.T) {
	srv := newRecorder(t, nil)
	// "localhost" passes no name rule of the transport itself: only the dialer, which sees
	// 127.0.0.1 or ::1, can refuse it.
	url := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	c := &http.Client{Transport: Policy{DenyLoopback: true}.Transport()}
	_, err := c.Get(url)
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("a name resolving to loopback should be refused at dial time, got %v", err)
	}
	if n := len(srv.requests()); n != 0 {
		t.Errorf("the server received %d requests", n)
	}
	resp, err := Policy{}.Client().Get(url)
	if err != nil {
		t.Fatalf("loopback is allowed by default: %v", err)
	}
	resp.Body.Close()
}

func TestRedirects(t *testing.T) {
	other := newRecorder(t, nil)
	var target string
	first := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/to-metadata":
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
		case "/to-other":
			http.Redirect(w, r, target, http.StatusTemporaryRedirect)
		case "/same":
			http.Redirect(w, r, "/final", http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		default:
			_, _ = w.Write([]byte("final"))
		}
	})
	target = other.URL + "/steal"
	c := Policy{}.Client()
	get := func(path string) (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodGet, first.URL+path, nil)
		req.Header.Set("Authorization", "Bearer team-b-token")
		return c.Do(req)
	}

	for _, path := range []string{"/to-metadata", "/to-other"} {
		_, err := get(path)
		if !errors.Is(err, ErrRefused) {
			t.Errorf("%s: want a refusal, got %v", path, err)
		}
	}
	if err := func() error { _, err := get("/to-metadata"); return err }(); err == nil || !strings.Contains(err.Error(), "169.254.169.254") {
		t.Errorf("the refusal should name the refused address: %v", err)
	}
	if n := len(other.requests()); n != 0 {
		t.Errorf("a redirect to another host was followed: it received %d requests", n)
	}

	resp, err := get("/same")
	if err != nil {
		t.Fatalf("a same-host redirect is followed: %v", err)
	}
	resp.Body.Close()
	reqs := first.requests()
	last := reqs[len(reqs)-1]
	if got := last.Get("Authorization"); got != "" {
		t.Errorf("the redirected request carried Authorization %q", got)
	}
	if _, err := get("/loop"); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "redirects") {
		t.Errorf("a redirect loop should stop: %v", err)
	}
}

func TestGuardRefusesByNameBeforeAnyProxy(t *testing.T) {
	proxy := newRecorder(t, nil)
	tr := Policy{}.Transport()
	tr.Proxy = func(*http.Request) (*urlT, error) { return parse(proxy.URL), nil }
	c := &http.Client{Transport: &Guard{Next: tr}}
	_, err := c.Get("http://metadata.google.internal/computeMetadata/v1/")
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("want a refusal, got %v", err)
	}
	if n := len(proxy.requests()); n != 0 {
		t.Errorf("the proxy received %d requests", n)
	}
}

type urlT = url.URL

func parse(raw string) *url.URL {
	u, err := url.Parse(raw)
	if err != nil {
		panic(err)
	}
	return u
}
