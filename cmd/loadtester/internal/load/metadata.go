/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package load

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults of the explicit form.
const (
	DefaultConcurrency    = 4
	DefaultDuration       = time.Minute
	DefaultRequestTimeout = 20 * time.Second
	explicitUserAgent     = "herald-loadtester"
)

// MetadataKeys are the settings of a "load" task, besides "type".
var MetadataKeys = []string{
	"url", "rate", "concurrency", "duration", "requests", "method", "headers", "body",
	"contentType", "host", "requestTimeout", "disableKeepAlive",
}

// FromMetadata reads the explicit form of a load from a hook's metadata:
//
//	url:              required, absolute http(s) URL
//	rate:             required, requests per second across all workers (not per worker)
//	concurrency:      workers, default 4
//	duration:         Go duration, default 1m (unless requests is given alone)
//	requests:         stop after this many requests
//	method:           default GET
//	headers:          one "Name: value" per line
//	body, contentType, host
//	requestTimeout:   Go duration per request, default 20s, 0 for none
//	disableKeepAlive: "true" opens a connection per request
//
// Unknown keys are errors, so that a typo does not silently change the load. Errors name
// the metadata key.
func FromMetadata(md map[string]string) (Spec, error) {
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(md)) { // sorted: the same input, the same message
		if k != "type" && !slices.Contains(MetadataKeys, k) {
			errs = append(errs, fmt.Errorf("metadata.%s is not a setting of a load task (settings: %s)", k, strings.Join(MetadataKeys, ", ")))
		}
	}
	s := Spec{
		URL:            md["url"],
		Method:         strings.ToUpper(md["method"]),
		Header:         http.Header{},
		Host:           md["host"],
		Concurrency:    DefaultConcurrency,
		RequestTimeout: DefaultRequestTimeout,
	}
	if s.Method == "" {
		s.Method = http.MethodGet
	}
	if s.URL == "" {
		errs = append(errs, errors.New("metadata.url is required"))
	}
	if md["rate"] == "" {
		errs = append(errs, errors.New("metadata.rate is required: requests per second across all workers"))
	} else {
		errs = append(errs, read(md, "rate", &s.Rate, parseFloat, func(r float64) bool { return r > 0 },
			"a number of requests per second above 0"))
	}
	errs = append(errs,
		read(md, "concurrency", &s.Concurrency, strconv.Atoi, func(int) bool { return true }, "a whole number"),
		read(md, "requests", &s.Requests, strconv.Atoi, func(n int) bool { return n > 0 }, "a whole number above 0"),
		read(md, "duration", &s.Duration, time.ParseDuration, func(d time.Duration) bool { return d > 0 },
			"a positive Go duration such as 1m or 30s"),
		read(md, "requestTimeout", &s.RequestTimeout, time.ParseDuration, func(d time.Duration) bool { return d >= 0 },
			"a Go duration such as 10s, or 0 for none"),
		read(md, "disableKeepAlive", &s.DisableKeepAlives, strconv.ParseBool, func(bool) bool { return true }, "true or false"),
	)
	if _, ok := md["duration"]; !ok && s.Requests == 0 {
		s.Duration = DefaultDuration
	}
	for i, line := range strings.Split(md["headers"], "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(name) == "" {
			errs = append(errs, fmt.Errorf("metadata.headers line %d %q must look like \"Name: value\"", i+1, line))
			continue
		}
		s.Header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	if ct := md["contentType"]; ct != "" {
		s.Header.Set("Content-Type", ct)
	}
	if s.Header.Get("User-Agent") == "" {
		s.Header.Set("User-Agent", explicitUserAgent)
	}
	if b := md["body"]; b != "" {
		s.Body = []byte(b)
	}
	if errors.Join(errs...) == nil {
		if err := s.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("metadata: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Spec{}, err
	}
	return s, nil
}

// read sets *dst from md[key] when the key is present. A value that does not parse, or
// is not valid, is an error that names the key and says what was wanted.
func read[T any](md map[string]string, key string, dst *T, parse func(string) (T, error), valid func(T) bool, want string) error {
	v, ok := md[key]
	if !ok {
		return nil
	}
	x, err := parse(v)
	if err != nil || !valid(x) {
		return fmt.Errorf("metadata.%s %q must be %s", key, v, want)
	}
	*dst = x
	return nil
}

func parseFloat(s string) (float64, error) { return strconv.ParseFloat(s, 64) }
