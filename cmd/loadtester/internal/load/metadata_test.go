/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package load

import (
	"strings"
	"testing"
	"time"
)

func TestFromMetadata(t *testing.T) {
	s, err := FromMetadata(map[string]string{
		"type": "load", "url": "http://podinfo-canary.test:9898/echo", "rate": "25", "concurrency": "3",
		"duration": "30s", "method": "post", "headers": "X-A: 1\n\nX-B: two words\n", "body": `{"a":1}`,
		"contentType": "application/json", "host": "podinfo.local", "requestTimeout": "2s", "disableKeepAlive": "true",
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.Rate != 25 || s.Concurrency != 3 || s.Duration != 30*time.Second || s.Requests != 0 {
		t.Errorf("pace: %+v", s)
	}
	if s.Method != "POST" || string(s.Body) != `{"a":1}` || s.Host != "podinfo.local" {
		t.Errorf("request: %+v", s)
	}
	if s.Header.Get("X-A") != "1" || s.Header.Get("X-B") != "two words" || s.Header.Get("Content-Type") != "application/json" {
		t.Errorf("headers: %v", s.Header)
	}
	if s.RequestTimeout != 2*time.Second || !s.DisableKeepAlives {
		t.Errorf("options: %+v", s)
	}
}

func TestFromMetadataDefaults(t *testing.T) {
	s, err := FromMetadata(map[string]string{"url": "http://x/", "rate": "10"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Method != "GET" || s.Concurrency != DefaultConcurrency || s.Duration != DefaultDuration || s.RequestTimeout != DefaultRequestTimeout {
		t.Errorf("defaults: %+v", s)
	}
	s, err = FromMetadata(map[string]string{"url": "http://x/", "rate": "10", "requests": "50"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Requests != 50 || s.Duration != 0 {
		t.Errorf("requests alone ends the load after them, not after the default duration: %+v", s)
	}
}

func TestFromMetadataErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		md   map[string]string
		want []string
	}{
		{map[string]string{"rate": "10"}, []string{"metadata.url is required"}},
		{map[string]string{"url": "http://x/"}, []string{"metadata.rate is required"}},
		{map[string]string{"url": "http://x/", "rate": "fast", "concurrency": "two", "duration": "1 minute"},
			[]string{`metadata.rate "fast"`, `metadata.concurrency "two"`, `metadata.duration "1 minute"`}},
		{map[string]string{"url": "http://x/", "rate": "10", "rps": "10", "cmd": "x"},
			[]string{"metadata.cmd is not a setting of a load task", "metadata.rps is not a setting"}},
		{map[string]string{"url": "http://x/", "rate": "10", "headers": "broken"}, []string{`metadata.headers line 1 "broken"`}},
		{map[string]string{"url": "ftp://x/", "rate": "10"}, []string{"must be an absolute http or https URL"}},
		{map[string]string{"url": "http://x/", "rate": "10", "concurrency": "0"}, []string{"concurrency 0 must be between 1 and 1000"}},
	} {
		_, err := FromMetadata(tc.md)
		if err == nil {
			t.Errorf("%v: accepted", tc.md)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q lacks %q", tc.md, err, w)
			}
		}
	}
}
