/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package load

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herald-rollouts/herald/cmd/loadtester/internal/shellwords"
)

func parse(t *testing.T, line string) (Spec, error) {
	t.Helper()
	words, err := shellwords.Split(line)
	if err != nil {
		t.Fatalf("split %q: %v", line, err)
	}
	if !IsHey(words[0]) {
		t.Fatalf("%q is not a hey command", line)
	}
	return ParseHey(words[1:])
}

func TestParseHeyDocumentedCommands(t *testing.T) {
	// The load tests of Flagger's documentation.
	s, err := parse(t, "hey -z 1m -q 10 -c 2 http://podinfo-canary.test:9898/")
	if err != nil {
		t.Fatal(err)
	}
	if s.URL != "http://podinfo-canary.test:9898/" || s.Method != "GET" {
		t.Errorf("request: %s %s", s.Method, s.URL)
	}
	if s.Rate != 20 || s.Concurrency != 2 {
		t.Errorf("-q is per worker: want 20 req/s over 2 workers, got %v over %d", s.Rate, s.Concurrency)
	}
	if s.Duration != time.Minute || s.Requests != 0 {
		t.Errorf("-z wins over -n: duration %s, requests %d", s.Duration, s.Requests)
	}
	if s.RequestTimeout != 20*time.Second {
		t.Errorf("hey's default -t is 20s, got %s", s.RequestTimeout)
	}
	if got := s.Header.Get("Content-Type"); got != "text/html" {
		t.Errorf("hey's default content type is text/html, got %q", got)
	}
	if got := s.Header.Get("User-Agent"); !strings.HasPrefix(got, "hey/") {
		t.Errorf("User-Agent %q should start like hey's", got)
	}

	s, err = parse(t, "hey -z 1m -q 10 -c 2 -m POST -d '{test: 2}' http://podinfo-canary.test:9898/echo")
	if err != nil {
		t.Fatal(err)
	}
	if s.Method != "POST" || string(s.Body) != "{test: 2}" {
		t.Errorf("POST body: %s %q", s.Method, s.Body)
	}

	s, err = parse(t, "hey -z 1m -q 10 -c 2 -h2 https://podinfo.example.com/")
	if err != nil || !s.HTTP2 {
		t.Errorf("-h2: %+v, %v", s, err)
	}
}

func TestParseHeyFlags(t *testing.T) {
	s, err := parse(t, `/usr/local/bin/hey -n 30 -c 3 -m put -H "X-Test: a b" -H 'Accept: text/plain' -T application/json `+
		`-A application/xml -a user:secret -host podinfo.local -U tester -t 0 -x proxy:3128 -o csv -cpus 4 `+
		`-disable-keepalive -disable-compression -disable-redirects http://127.0.0.1:1/x`)
	if err != nil {
		t.Fatal(err)
	}
	if s.Requests != 30 || s.Duration != 0 || s.Concurrency != 3 || s.Rate != 0 {
		t.Errorf("counts: requests %d duration %s workers %d rate %v", s.Requests, s.Duration, s.Concurrency, s.Rate)
	}
	if s.Method != "PUT" {
		t.Errorf("method %q", s.Method)
	}
	for name, want := range map[string]string{
		"X-Test": "a b", "Content-Type": "application/json", "Accept": "application/xml",
		"User-Agent": "tester " + heyUserAgent,
	} {
		if got := s.Header.Get(name); got != want {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}
	if s.Username != "user" || s.Password != "secret" || s.Host != "podinfo.local" {
		t.Errorf("auth/host: %q %q %q", s.Username, s.Password, s.Host)
	}
	if s.RequestTimeout != 0 || s.Proxy != "http://proxy:3128" {
		t.Errorf("timeout %s proxy %q", s.RequestTimeout, s.Proxy)
	}
	if !s.DisableKeepAlives || !s.DisableCompression || !s.DisableRedirects {
		t.Errorf("disable flags not set: %+v", s)
	}
	if s.Header.Get("X-Test") == "" || s.BodyFile != "" {
		t.Errorf("unexpected: %+v", s)
	}
	if s, err := parse(t, "hey -D /etc/hostname http://x/"); err != nil || s.BodyFile != "/etc/hostname" || s.Body != nil {
		t.Errorf("-D is recorded, not read: %+v, %v", s, err)
	}
}

func TestParseHeyRefusals(t *testing.T) {
	for line, want := range map[string]string{
		"hey -z 1m --rate 10 http://x/":       "flag provided but not defined: -rate",
		"hey -z 1m -foo http://x/":            "supported flags: -n -c -q -z",
		"hey -z 1m":                           "the URL to load is missing",
		"hey http://x/ -z 1m":                 `unexpected arguments after the URL: ["-z" "1m"]`,
		"hey -n 1 -c 2 http://x/":             "-n cannot be less than -c",
		"hey -n 0 http://x/":                  "-n and -c cannot be smaller than 1",
		"hey -z 1m -c 0 http://x/":            "-c cannot be smaller than 1",
		"hey -z 1m -c 5000 http://x/":         "concurrency 5000 must be between 1 and 1000",
		"hey -z 1m -q -1 http://x/":           "-q cannot be negative",
		"hey -z 1m -q 0.0000000001 http://x/": "below the lowest rate, 0.001",
		"hey -z 1m -h 'X: y' http://x/":       "-h is deprecated",
		"hey -z 1m -H nocolon http://x/":      `-H "nocolon" must look like`,
		"hey -z 1m -a nopassword http://x/":   "-a must look like user:password",
		"hey -z 1m podinfo:9898":              "must be an absolute http or https URL",
		"hey -z 1m -o json http://x/":         "only output type is csv",
		"hey -z abc http://x/":                `invalid value "abc" for flag -z`,
		"hey -help":                           "asks for usage",
	} {
		_, err := parse(t, line)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: want an error containing %q, got %v", line, want, err)
		}
	}
}

func TestIsHey(t *testing.T) {
	for argv0, want := range map[string]bool{"hey": true, "/usr/bin/hey": true, "./hey": true, "heyo": false, "ghz": false, "curl": false} {
		if IsHey(argv0) != want {
			t.Errorf("IsHey(%q) = %v", argv0, !want)
		}
	}
}

func TestKeyIgnoresFlagOrder(t *testing.T) {
	a, err := parse(t, "hey -z 1m -q 10 -c 2 http://podinfo-canary.test:9898/")
	if err != nil {
		t.Fatal(err)
	}
	b, err := parse(t, "hey -c 2 -q 10 -z 60s http://podinfo-canary.test:9898/")
	if err != nil {
		t.Fatal(err)
	}
	c, err := parse(t, "hey -c 2 -q 11 -z 60s http://podinfo-canary.test:9898/")
	if err != nil {
		t.Fatal(err)
	}
	if a.Key() != b.Key() {
		t.Error("the same load written in another order has another key")
	}
	if a.Key() == c.Key() {
		t.Error("a load at another rate has the same key")
	}
}

func TestStringHidesSecrets(t *testing.T) {
	s, err := parse(t, "hey -z 1m -q 5 -c 2 -a user:secret -H 'Authorization: Bearer tok' http://u:pw@x/path?token=abc")
	if err != nil {
		t.Fatal(err)
	}
	got := s.String()
	if want := "GET http://x/path at 10 req/s with 2 workers for 1m0s"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	for _, secret := range []string{"secret", "tok", "abc", "pw"} {
		if strings.Contains(got, secret) {
			t.Errorf("String() %q leaks %q", got, secret)
		}
	}
}

func FuzzParseHey(f *testing.F) {
	for _, s := range []string{"hey -z 1m -q 10 -c 2 http://x/", "hey -n 5 -c 1 -H 'a: b' http://x/", "hey -c -1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		words, err := shellwords.Split(line)
		if err != nil || len(words) == 0 {
			return
		}
		s, err := ParseHey(words[1:])
		if err == nil {
			if verr := s.Validate(); verr != nil {
				t.Fatalf("ParseHey(%q) accepted an invalid spec: %v", line, verr)
			}
		}
	})
}

// hey -D reads only a regular file of at most MaxBodyFile bytes into memory.
func TestLoadBodyFile(t *testing.T) {
	dir := t.TempDir()
	small, big := filepath.Join(dir, "small"), filepath.Join(dir, "big")
	if err := os.WriteFile(small, []byte("payload"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big, make([]byte, MaxBodyFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	s := Spec{BodyFile: small}
	if err := s.LoadBodyFile(); err != nil || string(s.Body) != "payload" {
		t.Errorf("small: %q %v", s.Body, err)
	}
	for file, want := range map[string]string{
		big:              "larger than 1048576 bytes",
		"/dev/zero":      "not a regular file",
		dir:              "not a regular file",
		dir + "/missing": "no such file",
	} {
		s := Spec{BodyFile: file}
		if err := s.LoadBodyFile(); err == nil || !strings.Contains(err.Error(), want) || s.Body != nil {
			t.Errorf("%s: %v, want an error containing %q", file, err, want)
		}
	}
}
