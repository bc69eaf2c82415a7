/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package metricchecks

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/herald-rollouts/herald/internal/egress"
)

// QueryTimeout bounds one Prometheus query, as Flagger does: connecting, waiting for the
// answer and reading it. A server that stalls costs a check at most this long.
const QueryTimeout = 5 * time.Second

// queryTimeout is QueryTimeout, shortened by tests that exercise a hanging server.
var queryTimeout = QueryTimeout

// MaxResponseBytes bounds the body of a Prometheus answer that Herald reads; an instant
// query for one number answers a few hundred bytes.
const MaxResponseBytes = 10 << 20

// maxDetail is how many bytes of an error response body a failure message carries.
const maxDetail = 200

// maxListedSeries is how many series a "several series" failure names.
const maxListedSeries = 5

// endpoint is one Prometheus API and the way to authenticate to it. Credentials (username,
// password, token and credential-bearing headers) are only set when the address is the one
// their owner named (see Checker.checkTemplate).
type endpoint struct {
	address  string
	headers  http.Header
	username string
	password string
	token    string
	insecure bool
	policy   egress.Policy
}

// Two transports per egress policy serve every endpoint, so that checks reuse connections
// instead of leaking one connection pool per check.
type transportPair struct{ verifying, insecure http.RoundTripper }

var (
	transportsMu sync.Mutex
	transportsBy = map[egress.Policy]transportPair{}
)

func transports(p egress.Policy) transportPair {
	transportsMu.Lock()
	defer transportsMu.Unlock()
	if t, ok := transportsBy[p]; ok {
		return t
	}
	verifying := p.Transport()
	insecure := p.Transport()
	insecure.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for by the MetricTemplate's insecureSkipVerify
	t := transportPair{verifying: &egress.Guard{Policy: p, Next: verifying}, insecure: &egress.Guard{Policy: p, Next: insecure}}
	transportsBy[p] = t
	return t
}

// authTransport adds the endpoint's headers and credentials to every request but
// redirects: a redirect never carries credentials, even to the same host.
type authTransport struct {
	next http.RoundTripper
	ep   *endpoint
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	if !egress.IsRedirect(req) {
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
	}
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{ReadCloser: resp.Body, left: MaxResponseBytes}
	return resp, nil
}

// ErrTooLarge is the error of reading an answer larger than MaxResponseBytes.
var ErrTooLarge = fmt.Errorf("the response body is larger than %d MiB, the most Herald reads from a metrics server", MaxResponseBytes>>20)

// limitedBody stops reading a response body past its limit with ErrTooLarge.
type limitedBody struct {
	io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, ErrTooLarge
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

// validateAddress checks that a Prometheus address is an absolute http(s) URL that the
// egress policy allows.
func validateAddress(address string, p egress.Policy) error {
	if address == "" {
		return errors.New("no metrics server address: set the Canary's spec.metricsServer, the MetricTemplate's spec.provider.address or Herald's -metrics-server")
	}
	u, err := url.Parse(address)
	if err != nil {
		return fmt.Errorf("the metrics server address %q is not a valid URL: %w", redact(address), err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("the metrics server address %q is not an http(s) URL with a host", redact(address))
	}
	if err := p.CheckHost(u.Hostname()); err != nil {
		return fmt.Errorf("the metrics server address %q: %w", redact(address), err)
	}
	return nil
}

// redact drops a URL's userinfo and query, which may hold credentials.
func redact(address string) string {
	u, err := url.Parse(address)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// bodyClient is a Prometheus API client that keeps the body of the last answer, which
// Herald decodes strictly itself (see valueOf).
type bodyClient struct {
	promapi.Client
	body []byte
}

func (c *bodyClient) Do(ctx context.Context, req *http.Request) (*http.Response, []byte, error) {
	resp, body, err := c.Client.Do(ctx, req)
	c.body = body
	return resp, body, err
}

// run executes an instant query and returns the value of its only sample. Every error is
// a *failure whose kind is one of the package's sentinel errors.
func (ep *endpoint) run(ctx context.Context, query string) (float64, error) {
	if err := validateAddress(ep.address, ep.policy); err != nil {
		return 0, &failure{kind: ErrInvalidMetric, msg: err.Error(), cause: err}
	}
	ts := transports(ep.policy)
	next := ts.verifying
	if ep.insecure {
		next = ts.insecure
	}
	inner, err := promapi.NewClient(promapi.Config{
		Address: ep.address,
		Client: &http.Client{
			Transport:     &authTransport{next: next, ep: ep},
			CheckRedirect: ep.policy.CheckRedirect,
		},
	})
	if err != nil {
		return 0, &failure{kind: ErrInvalidMetric, msg: fmt.Sprintf("building a Prometheus client for %s: %v", redact(ep.address), err), cause: err}
	}
	client := &bodyClient{Client: inner}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	if _, _, _, err := promv1.NewAPI(client).Query(ctx, query, time.Now(), promv1.WithTimeout(queryTimeout)); err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			err = fmt.Errorf("no complete answer within %s: %w", queryTimeout, err)
		}
		return 0, &failure{kind: ErrQueryFailed, msg: describeQueryError(err), cause: err}
	}
	return valueOf(client.body)
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

// noSamples is the usual "no values": an empty vector, when the target had no traffic.
const noSamples = "the query returned no samples"

// The shapes of a successful instant query, decoded strictly: Prometheus's own model types
// turn a null sample into a nil pointer and a null value into 0, which would either crash
// the checker or pass a check on a number nobody measured.
type (
	queryAnswer struct {
		Data *struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	sampleJSON struct {
		Metric    map[string]string `json:"metric"`
		Value     []json.RawMessage `json:"value"`
		Histogram json.RawMessage   `json:"histogram"`
	}
)

// valueOf returns the value of an answer that holds exactly one number: an instant vector
// with one sample, or a scalar. Anything else is ambiguous and fails rather than picking
// one of several series, as Flagger does; a null sample or value is "no value".
func valueOf(body []byte) (float64, error) {
	var a queryAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return 0, &failure{kind: ErrQueryFailed, msg: fmt.Sprintf("the answer is not a Prometheus query result: %v", err), cause: err}
	}
	if a.Data == nil || isNull(a.Data.Result) {
		return 0, &failure{kind: ErrNoValues, msg: "the query returned no result"}
	}
	switch a.Data.ResultType {
	case "vector":
		var samples []*sampleJSON
		if err := json.Unmarshal(a.Data.Result, &samples); err != nil {
			return 0, &failure{kind: ErrQueryFailed, msg: fmt.Sprintf("the vector in the answer is malformed: %v", err), cause: err}
		}
		switch len(samples) {
		case 0:
			return 0, &failure{kind: ErrNoValues, msg: noSamples}
		case 1:
		default:
			return 0, &failure{kind: ErrSeveralSeries, msg: describeSeries(samples)}
		}
		s := samples[0]
		switch {
		case s == nil:
			return 0, &failure{kind: ErrNoValues, msg: "the query returned a null sample"}
		case len(s.Histogram) > 0 && !isNull(s.Histogram):
			return 0, &failure{kind: ErrUnexpectedType, msg: "the query returned a native histogram, expected an instant vector with one number"}
		}
		return number(s.Value)
	case "scalar":
		var pair []json.RawMessage
		if err := json.Unmarshal(a.Data.Result, &pair); err != nil {
			return 0, &failure{kind: ErrQueryFailed, msg: fmt.Sprintf("the scalar in the answer is malformed: %v", err), cause: err}
		}
		return number(pair)
	default:
		return 0, &failure{kind: ErrUnexpectedType, msg: fmt.Sprintf("the query returned a %s, expected an instant vector with one sample", a.Data.ResultType)}
	}
}

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

// number reads a [timestamp, "value"] pair; the value is a JSON string as Prometheus
// writes it ("NaN" and "+Inf" included).
func number(pair []json.RawMessage) (float64, error) {
	if len(pair) != 2 || isNull(pair[1]) {
		return 0, &failure{kind: ErrNoValues, msg: "the query returned a sample without a value"}
	}
	var s string
	if err := json.Unmarshal(pair[1], &s); err != nil {
		return 0, &failure{kind: ErrQueryFailed, msg: fmt.Sprintf("the sample value %s is not a quoted number", snippet(string(pair[1]))), cause: err}
	}
	x, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, &failure{kind: ErrQueryFailed, msg: fmt.Sprintf("the sample value %q is not a number", snippet(s)), cause: err}
	}
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0, &failure{kind: ErrNaN, msg: fmt.Sprintf("the query returned %v", x)}
	}
	return x, nil
}

func describeSeries(samples []*sampleJSON) string {
	labels := make([]string, 0, len(samples))
	for _, s := range samples {
		if s == nil {
			labels = append(labels, "null")
			continue
		}
		m := make(model.Metric, len(s.Metric))
		for k, v := range s.Metric {
			m[model.LabelName(k)] = model.LabelValue(v)
		}
		labels = append(labels, m.String())
	}
	sort.Strings(labels)
	listed := labels
	if len(listed) > maxListedSeries {
		listed = listed[:maxListedSeries]
	}
	msg := fmt.Sprintf("the query returned %d series, expected exactly one: %s", len(samples), strings.Join(listed, ", "))
	if n := len(labels) - len(listed); n > 0 {
		msg += fmt.Sprintf(" and %d more", n)
	}
	return msg
}
