/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

// Package load is the load tester's HTTP load generator: a Spec says what to send, how
// fast and for how long; Run sends it. A Spec comes from a `hey` command line (ParseHey),
// so that the hooks users already have work without the hey binary, or from the explicit
// metadata of a "load" task (FromMetadata).
package load

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/herald-rollouts/herald/internal/hookwire"
)

// MaxConcurrency bounds the workers of one load: each one holds a connection and a
// goroutine, and a typo such as -c 50000 must not exhaust the load tester.
const MaxConcurrency = 1000

// MinRate is the lowest rate a load may ask for, one request every 1000 s. Below it the
// interval between two requests no longer fits a time.Duration: the pacer would overflow
// and send at full speed, the opposite of what was asked.
const MinRate = 0.001

// Spec describes one load.
type Spec struct {
	// URL is the absolute http or https URL requested.
	URL string `json:"url"`
	// Method is the HTTP method, GET when empty.
	Method string `json:"method,omitempty"`
	// Header is sent with every request.
	Header http.Header `json:"header,omitempty"`
	// Host overrides the Host header.
	Host string `json:"host,omitempty"`
	// Body is sent with every request.
	Body []byte `json:"body,omitempty"`
	// BodyFile names a file of the load tester whose content is the body (hey's -D). It
	// is read by LoadBodyFile, which the caller calls only when reading local files is
	// allowed.
	BodyFile string `json:"bodyFile,omitempty"`
	// Username and Password are sent as basic authentication when either is set.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`

	// Rate is the number of requests per second across all workers; 0 sends as fast as
	// the workers can.
	Rate float64 `json:"rate,omitempty"`
	// Concurrency is the number of workers, each with at most one request in flight.
	Concurrency int `json:"concurrency"`
	// Duration ends the load after this long; 0 means: when Requests have been sent.
	Duration time.Duration `json:"duration,omitempty"`
	// Requests ends the load after this many requests; 0 means: when Duration is over.
	Requests int `json:"requests,omitempty"`
	// RequestTimeout bounds each request; 0 means no bound.
	RequestTimeout time.Duration `json:"requestTimeout,omitempty"`

	// Proxy is the URL of an HTTP proxy; empty uses the proxy environment variables.
	Proxy string `json:"proxy,omitempty"`
	// HTTP2 allows HTTP/2 over TLS; without it requests use HTTP/1.1, as hey does.
	HTTP2              bool `json:"http2,omitempty"`
	DisableKeepAlives  bool `json:"disableKeepAlives,omitempty"`
	DisableCompression bool `json:"disableCompression,omitempty"`
	DisableRedirects   bool `json:"disableRedirects,omitempty"`
}

// Validate reports every problem of the spec at once.
func (s *Spec) Validate() error {
	var errs []error
	u, err := url.Parse(s.URL)
	switch {
	case s.URL == "":
		errs = append(errs, errors.New("url is required"))
	case err != nil:
		errs = append(errs, fmt.Errorf("url %q does not parse: %w", s.URL, err))
	case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		errs = append(errs, fmt.Errorf("url %q must be an absolute http or https URL", s.URL))
	}
	if s.Method != "" && !isToken(s.Method) {
		errs = append(errs, fmt.Errorf("method %q is not a valid HTTP method", s.Method))
	}
	for name, values := range s.Header {
		if !isToken(name) {
			errs = append(errs, fmt.Errorf("header name %q is not valid", name))
		}
		for _, v := range values {
			if strings.ContainsAny(v, "\r\n\x00") {
				errs = append(errs, fmt.Errorf("header %s: the value must not contain line breaks", name))
			}
		}
	}
	if strings.ContainsAny(s.Host, "\r\n\x00 /") {
		errs = append(errs, fmt.Errorf("host %q is not a valid Host header", s.Host))
	}
	switch {
	case s.Rate < 0 || math.IsNaN(s.Rate) || math.IsInf(s.Rate, 0):
		errs = append(errs, fmt.Errorf("rate %v must be a finite number of requests per second, 0 or more", s.Rate))
	case s.Rate > 0 && s.Rate < MinRate:
		errs = append(errs, fmt.Errorf("rate %v requests per second is below the lowest rate, %v (one request every %s)",
			s.Rate, MinRate, time.Duration(float64(time.Second)/MinRate)))
	}
	if s.Concurrency < 1 || s.Concurrency > MaxConcurrency {
		errs = append(errs, fmt.Errorf("concurrency %d must be between 1 and %d", s.Concurrency, MaxConcurrency))
	}
	if s.Duration < 0 {
		errs = append(errs, fmt.Errorf("duration %s must not be negative", s.Duration))
	}
	if s.Requests < 0 {
		errs = append(errs, fmt.Errorf("requests %d must not be negative", s.Requests))
	}
	if s.Duration == 0 && s.Requests == 0 {
		errs = append(errs, errors.New("a duration or a number of requests is required, or the load would never end"))
	}
	if s.RequestTimeout < 0 {
		errs = append(errs, fmt.Errorf("request timeout %s must not be negative", s.RequestTimeout))
	}
	if s.Proxy != "" {
		if p, err := url.Parse(s.Proxy); err != nil || p.Host == "" {
			errs = append(errs, fmt.Errorf("proxy %q must be a URL such as http://proxy:3128", s.Proxy))
		}
	}
	return errors.Join(errs...)
}

// MaxBodyFile is the largest request body file LoadBodyFile reads: the body is held in
// memory for the whole load.
const MaxBodyFile = 1 << 20

// LoadBodyFile reads BodyFile into Body. It must be a regular file of at most
// MaxBodyFile bytes: a device such as /dev/zero or a huge file would fill the memory.
func (s *Spec) LoadBodyFile() error {
	if s.BodyFile == "" {
		return nil
	}
	f, err := os.Open(s.BodyFile)
	if err != nil {
		return fmt.Errorf("reading the request body file: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("reading the request body file: %w", err)
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("the request body file %s is not a regular file (%s)", s.BodyFile, info.Mode().Type())
	}
	// The size is checked while reading too: the file may grow after Stat.
	b, err := io.ReadAll(io.LimitReader(f, MaxBodyFile+1))
	if err != nil {
		return fmt.Errorf("reading the request body file: %w", err)
	}
	if info.Size() > MaxBodyFile || len(b) > MaxBodyFile {
		return fmt.Errorf("the request body file %s is larger than %d bytes", s.BodyFile, MaxBodyFile)
	}
	s.Body = b
	return nil
}

// Key identifies the load: two specs with the same key send the same requests at the
// same pace. The order of flags in a command line does not change it.
func (s *Spec) Key() string {
	b, err := json.Marshal(s) // map keys are sorted, so the encoding is stable
	if err != nil {
		// Spec holds only strings, numbers, booleans and bytes: Marshal cannot fail.
		panic(fmt.Sprintf("encoding a load spec: %v", err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// String describes the load for logs and responses, without credentials, headers, body or
// query string, which may hold secrets.
func (s *Spec) String() string {
	var b strings.Builder
	method := s.Method
	if method == "" {
		method = http.MethodGet
	}
	fmt.Fprintf(&b, "%s %s", method, hookwire.RedactURL(s.URL))
	if s.Rate > 0 {
		fmt.Fprintf(&b, " at %s req/s", formatRate(s.Rate))
	} else {
		b.WriteString(" at full speed")
	}
	fmt.Fprintf(&b, " with %d workers", s.Concurrency)
	if s.Duration > 0 {
		fmt.Fprintf(&b, " for %s", s.Duration)
	}
	if s.Requests > 0 {
		if s.Duration > 0 {
			b.WriteString(" or")
		}
		fmt.Fprintf(&b, " %d requests", s.Requests)
	}
	return b.String()
}

func formatRate(r float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.3f", r), "0"), ".")
}

// isToken reports whether s is an RFC 9110 token (method and header names).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
