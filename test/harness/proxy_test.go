package harness

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, url string, timeout time.Duration) (string, error) {
	t.Helper()
	c := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestProxyForwardsCutsAndRestores(t *testing.T) {
	a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "a") }))
	defer a.Close()
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "b") }))
	defer b.Close()
	p, err := StartProxy("127.0.0.1:0", strings.TrimPrefix(a.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	url := "http://" + p.Addr() + "/"

	if body, err := get(t, url, 2*time.Second); err != nil || body != "a" {
		t.Fatalf("open: %q %v", body, err)
	}

	p.Cut(Refuse)
	start := time.Now()
	if _, err := get(t, url, 2*time.Second); err == nil {
		t.Fatal("refuse: the request went through")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refuse: the failure took %s, want it at once", d)
	}

	p.Cut(Blackhole)
	start = time.Now()
	if _, err := get(t, url, 500*time.Millisecond); err == nil {
		t.Fatal("blackhole: the request went through")
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Errorf("blackhole: the failure came after %s, want the client's timeout", d)
	}

	p.Restore()
	if body, err := get(t, url, 2*time.Second); err != nil || body != "a" {
		t.Fatalf("restored: %q %v", body, err)
	}

	// A dead backend is skipped; a new one is used.
	a.Close()
	p.SetBackends(strings.TrimPrefix(a.URL, "http://"), strings.TrimPrefix(b.URL, "http://"))
	for range 3 {
		if body, err := get(t, url, 2*time.Second); err != nil || body != "b" {
			t.Fatalf("failover: %q %v", body, err)
		}
	}
	forwarded, failed := p.Counts()
	if forwarded != 5 || failed != 2 {
		t.Errorf("counts: forwarded %d failed %d, want 5 and 2", forwarded, failed)
	}
}

func TestProxyCutClosesEstablishedConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c) }() // echo
		}
	}()
	p, err := StartProxy("127.0.0.1:0", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := r.ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("echo: %q %v", line, err)
	}
	p.Cut(Refuse)
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, _ = io.WriteString(c, "again\n")
	if line, err := r.ReadString('\n'); err == nil {
		t.Fatalf("the established connection still works after the cut: %q", line)
	} else if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the established connection was left hanging instead of closed")
	}
}
