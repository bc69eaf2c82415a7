/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package metricchecks

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// QueryTimeout bounds one Prometheus query, as Flagger does.
const QueryTimeout = 5 * time.Second

// queryTimeout is QueryTimeout, shortened by tests that exercise a hanging server.
var queryTimeout = QueryTimeout

// maxDetail is how many bytes of an error response body a failure message carries.
const maxDetail = 200

// maxListedSeries is how many series a "several series" failure names.
const maxListedSeries = 5

// endpoint is one Prometheus API and the way to authenticate to it.
type endpoint struct {
	address  string
	headers  http.Header
	username string
	password string
	token    string
	insecure bool
}

// Two transports serve every endpoint, so that checks reuse connections instead of
// leaking one connection pool per check.
var (
	transportsOnce     sync.Once
	verifyingTransport http.RoundTripper
	insecureTransport  http.RoundTripper
)

func transports() (verifying, insecure http.RoundTripper) {
	transportsOnce.Do(func() {
		base, ok := http.DefaultTransport.(*http.Transport)
		if !ok {
			base = &http.Transport{Proxy: http.ProxyFromEnvironment}
		}
		verifyingTransport = base.Clone()
		t := base.Clone()
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for by the MetricTemplate's insecureSkipVerify
		insecureTransport = t
	})
	return verifyingTransport, insecureTransport
}

// authTransport adds the endpoint's headers and credentials to every request.
type authTransport struct {
	next http.RoundTripper
	ep   *endpoint
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	for k, vs := range t.ep.headers {
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	// Credentials from the Secret win over a literal Authorization header.
	switch {
	case t.ep.token != "":
		r.Header.Set("Authorization", "Bearer "+t.ep.token)
	case t.ep.username != "" || t.ep.password != "":
		r.SetBasicAuth(t.ep.username, t.ep.password)
	}
	return t.next.RoundTrip(r)
}

// validateAddress checks that a Prometheus address is an absolute http(s) URL.
func validateAddress(address string) error {
	if address == "" {
		return errors.New("no metrics server address: set the Canary's spec.metricsServer, the MetricTemplate's spec.provider.address or Herald's -metrics-server")
	}
	u, err := url.Parse(address)
	if err != nil {
		return fmt.Errorf("the metrics server address %q is not a valid URL: %w", address, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("the metrics server address %q is not an http(s) URL with a host", address)
	}
	return nil
}

// run executes an instant query and returns the value of its only sample. Every error is
// a *failure whose kind is one of the package's sentinel errors.
func (ep *endpoint) run(ctx context.Context, query string) (float64, error) {
	if err := validateAddress(ep.address); err != nil {
		return 0, &failure{kind: ErrInvalidMetric, msg: err.Error()}
	}
	verifying, insecure := transports()
	next := verifying
	if ep.insecure {
		next = insecure
	}
	client, err := promapi.NewClient(promapi.Config{
		Address:      ep.address,
		RoundTripper: &authTransport{next: next, ep: ep},
	})
	if err != nil {
		return 0, &failure{kind: ErrInvalidMetric, msg: fmt.Sprintf("building a Prometheus client for %s: %v", ep.address, err), cause: err}
	}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	v, _, _, err := promv1.NewAPI(client).Query(ctx, query, time.Now(), promv1.WithTimeout(queryTimeout))
	if err != nil {
		return 0, &failure{kind: ErrQueryFailed, msg: describeQueryError(err), cause: err}
	}
	return valueOf(v)
}

// describeQueryError adds the start of the response body, which Prometheus's client keeps
// apart, to an API error: a proxy's 401 or 503 page says more than the status code.
func describeQueryError(err error) string {
	var apiErr *promv1.Error
	if errors.As(err, &apiErr) && apiErr.Detail != "" {
		return fmt.Sprintf("%v: %s", err, snippet(apiErr.Detail))
	}
	return err.Error()
}

func snippet(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxDetail {
		return s[:maxDetail] + "…"
	}
	return s
}

// valueOf returns the value of a result that holds exactly one number: an instant vector
// with one sample, or a scalar. Anything else is ambiguous and fails rather than picking
// one of several series, as Flagger does.
func valueOf(v model.Value) (float64, error) {
	var f model.SampleValue
	switch r := v.(type) {
	case model.Vector:
		switch len(r) {
		case 0:
			return 0, &failure{kind: ErrNoValues, msg: "the query returned no samples"}
		case 1:
			f = r[0].Value
		default:
			return 0, &failure{kind: ErrSeveralSeries, msg: describeSeries(r)}
		}
	case *model.Scalar:
		if r == nil {
			return 0, &failure{kind: ErrNoValues, msg: "the query returned no value"}
		}
		f = r.Value
	case nil:
		return 0, &failure{kind: ErrNoValues, msg: "the query returned no result"}
	default:
		return 0, &failure{kind: ErrUnexpectedType, msg: fmt.Sprintf("the query returned a %s, expected an instant vector with one sample", v.Type())}
	}
	x := float64(f)
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0, &failure{kind: ErrNaN, msg: fmt.Sprintf("the query returned %v", x)}
	}
	return x, nil
}

func describeSeries(vec model.Vector) string {
	labels := make([]string, 0, len(vec))
	for _, s := range vec {
		labels = append(labels, s.Metric.String())
	}
	sort.Strings(labels)
	listed := labels
	if len(listed) > maxListedSeries {
		listed = listed[:maxListedSeries]
	}
	msg := fmt.Sprintf("the query returned %d series, expected exactly one: %s", len(vec), strings.Join(listed, ", "))
	if n := len(labels) - len(listed); n > 0 {
		msg += fmt.Sprintf(" and %d more", n)
	}
	return msg
}
