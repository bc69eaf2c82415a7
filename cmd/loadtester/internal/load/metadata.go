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
	if v, ok := md["rate"]; !ok || v == "" {
		errs = append(errs, errors.New("metadata.rate is required: requests per second across all workers"))
	} else if r, err := strconv.ParseFloat(v, 64); err != nil || r <= 0 {
		errs = append(errs, fmt.Errorf("metadata.rate %q must be a number of requests per second above 0", v))
	} else {
		s.Rate = r
	}
	if v, ok := md["concurrency"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("metadata.concurrency %q must be a whole number", v))
		}
		s.Concurrency = n
	}
	if v, ok := md["requests"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("metadata.requests %q must be a whole number above 0", v))
		}
		s.Requests = n
	}
	if v, ok := md["duration"]; ok {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("metadata.duration %q must be a positive Go duration such as 1m or 30s", v))
		}
		s.Duration = d
	} else if s.Requests == 0 {
		s.Duration = DefaultDuration
	}
	if v, ok := md["requestTimeout"]; ok {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			errs = append(errs, fmt.Errorf("metadata.requestTimeout %q must be a Go duration such as 10s, or 0 for none", v))
		}
		s.RequestTimeout = d
	}
	if v, ok := md["disableKeepAlive"]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("metadata.disableKeepAlive %q must be true or false", v))
		}
		s.DisableKeepAlives = b
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
	if len(errs) == 0 {
		if err := s.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("metadata: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Spec{}, err
	}
	return s, nil
}
