/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

// Package metricchecks runs a Canary's metric checks against Prometheus: the builtin
// request-success-rate and request-duration, inline queries, and MetricTemplate queries
// with Flagger's template variables. Every check yields a Result; a failed one carries the
// reason, worded for the Canary's events and status.
//
// Unlike Flagger, a query that returns several series, NaN or ±Inf fails instead of being
// read silently, and {{ interval }} defaults to 1m in MetricTemplate queries too.
package metricchecks

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"sync"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/egress"
)

// Kinds of failure; test a Result's Err with errors.Is.
var (
	// ErrNoValues: the query returned no samples (usually no traffic reached the target).
	ErrNoValues = errors.New("no values found")
	// ErrNaN: the query returned NaN or ±Inf, such as 0/0 when no requests were made.
	ErrNaN = errors.New("the query returned NaN")
	// ErrSeveralSeries: the query returned more than one series.
	ErrSeveralSeries = errors.New("the query returned several series")
	// ErrUnexpectedType: the query returned a range vector or a string.
	ErrUnexpectedType = errors.New("the query returned an unexpected result type")
	// ErrQueryFailed: Prometheus could not be reached or refused the query.
	ErrQueryFailed = errors.New("metric query failed")
	// ErrOutOfRange: the value is outside the metric's threshold.
	ErrOutOfRange = errors.New("metric value out of range")
	// ErrInvalidMetric: the metric cannot be run as written (unknown metric, missing or
	// unsupported MetricTemplate, template error, bad Secret or address).
	ErrInvalidMetric = errors.New("invalid metric")
)

// failure is a failed check: msg is the user-facing reason, kind one of the sentinels
// above, and cause the underlying error when there is one.
type failure struct {
	kind  error
	msg   string
	cause error
}

func (f *failure) Error() string { return f.msg }

func (f *failure) Unwrap() []error {
	if f.cause == nil {
		return []error{f.kind}
	}
	return []error{f.kind, f.cause}
}

func invalid(cause error, format string, args ...any) *failure {
	return &failure{kind: ErrInvalidMetric, msg: fmt.Sprintf(format, args...), cause: cause}
}

// Checker runs metric checks. It is safe for concurrent use.
type Checker struct {
	// Reader reads MetricTemplates and their Secrets; use a live (uncached) reader so that
	// Secrets need not be cached.
	Reader client.Reader
	// DefaultAddress is the Prometheus address used when neither the Canary's
	// spec.metricsServer nor the MetricTemplate sets one (Herald's -metrics-server).
	DefaultAddress string
	// Provider is the provider whose builtin queries are used ("istio" or "kubernetes")
	// for Canaries without spec.provider; spec.provider wins when set. Empty means istio.
	Provider string
	// NoCrossNamespaceRefs refuses a templateRef to another namespace than the Canary's
	// (Flagger's -no-cross-namespace-refs).
	NoCrossNamespaceRefs bool
	// Egress decides which metrics servers may be called (link-local and metadata
	// addresses never).
	Egress egress.Policy
}

// Result is the outcome of one metric check.
type Result struct {
	// Name of the metric, as in spec.analysis.metrics[].name.
	Name string
	// Query is the rendered query (empty when the check failed before rendering).
	Query string
	// Value is the metric's value (milliseconds for request-duration); valid when Err is
	// nil, and also when Err is an ErrOutOfRange failure.
	Value float64
	// Err is nil when the check passed; otherwise its Error() is the reason to show.
	Err error
}

// Check runs every metric of the Canary's analysis concurrently and returns one Result per
// metric, in spec order. It returns nil when the Canary has no analysis.
func (k *Checker) Check(ctx context.Context, c *flaggerv1.Canary) []Result {
	if c == nil {
		return nil
	}
	a := c.GetAnalysis()
	if a == nil || len(a.Metrics) == 0 {
		return nil
	}
	logger := log.FromContext(ctx).WithValues("canary", c.Name, "namespace", c.Namespace)
	results := make([]Result, len(a.Metrics))
	var wg sync.WaitGroup
	for i, m := range a.Metrics {
		wg.Go(func() {
			// A panic in a check (a bug, or an answer no one foresaw) fails that check
			// instead of the process: this goroutine is Herald's, not the reconciler's, so
			// nothing above it would recover.
			defer func() {
				if p := recover(); p != nil {
					results[i] = Result{Name: m.Name, Err: &failure{kind: ErrQueryFailed,
						msg: fmt.Sprintf("Metric %s: the check failed unexpectedly: %v", m.Name, p)}}
					logger.Error(fmt.Errorf("panic: %v", p), "Metric check panicked", "metric", m.Name, "stack", string(debug.Stack()))
				}
			}()
			r := k.checkOne(ctx, c, i, m)
			logResult(logger, r)
			results[i] = r
		})
	}
	wg.Wait()
	return results
}

func logResult(logger logr.Logger, r Result) {
	if r.Err == nil {
		logger.V(1).Info("Metric check passed", "metric", r.Name, "value", r.Value)
		return
	}
	// The message never holds Secret values: only their names and the keys missing.
	logger.Info("Metric check failed", "metric", r.Name, "query", r.Query, "reason", r.Err.Error())
}

func (k *Checker) provider(c *flaggerv1.Canary) string {
	return c.GetProvider(k.Provider)
}

// canaryAddress is where builtin and inline metrics are queried.
func (k *Checker) canaryAddress(c *flaggerv1.Canary) string {
	if c.Spec.MetricsServer != "" {
		return c.Spec.MetricsServer
	}
	return k.DefaultAddress
}

func (k *Checker) checkOne(ctx context.Context, c *flaggerv1.Canary, i int, m flaggerv1.CanaryMetric) Result {
	r := Result{Name: m.Name}
	path := fmt.Sprintf("spec.analysis.metrics[%d]", i)
	switch {
	case m.TemplateRef != nil:
		k.checkTemplate(ctx, c, path, m, &r)
	case strings.TrimSpace(m.Query) != "":
		k.checkInline(ctx, c, path, m, &r)
	case IsBuiltin(m.Name):
		k.checkBuiltin(ctx, c, path, m, &r)
	default:
		r.Err = invalid(nil, "%s: metric %q has neither templateRef nor query and is not a builtin metric (%s, %s)",
			path, m.Name, RequestSuccessRate, RequestDuration)
	}
	return r
}

func (k *Checker) checkBuiltin(ctx context.Context, c *flaggerv1.Canary, path string, m flaggerv1.CanaryMetric, r *Result) {
	provider := k.provider(c)
	b, err := builtinFor(provider, m.Name)
	if err != nil {
		r.Err = invalid(err, "%s: %v", path, err)
		return
	}
	if r.Query, err = Render(b.query, ModelFor(c, m)); err != nil {
		r.Err = invalid(err, "%s: rendering the builtin query of %s: %v", path, m.Name, err)
		return
	}
	ep := &endpoint{address: k.canaryAddress(c), policy: k.Egress}
	val, err := ep.run(ctx, r.Query)
	if err != nil {
		r.Err = explain(err, c, m.Name, provider+" metric")
		return
	}
	r.Value = val * b.scale
	// Flagger's legacy threshold is a minimum for the success rate, a maximum otherwise.
	r.Err = checkThreshold(c, m, r.Value, m.Name == RequestSuccessRate)
}

func (k *Checker) checkInline(ctx context.Context, c *flaggerv1.Canary, path string, m flaggerv1.CanaryMetric, r *Result) {
	var err error
	if r.Query, err = Render(m.Query, ModelFor(c, m)); err != nil {
		r.Err = invalid(err, "%s.query: %v", path, err)
		return
	}
	ep := &endpoint{address: k.canaryAddress(c), policy: k.Egress}
	val, err := ep.run(ctx, r.Query)
	if err != nil {
		r.Err = explain(err, c, m.Name, "custom metric")
		return
	}
	r.Value = val
	r.Err = checkThreshold(c, m, val, false)
}

func (k *Checker) checkTemplate(ctx context.Context, c *flaggerv1.Canary, path string, m flaggerv1.CanaryMetric, r *Result) {
	ref := m.TemplateRef
	ns := ref.Namespace
	if ns == "" {
		ns = c.Namespace
	}
	if ref.Name == "" {
		r.Err = invalid(nil, "%s.templateRef.name is empty", path)
		return
	}
	if k.NoCrossNamespaceRefs && ns != c.Namespace {
		r.Err = invalid(nil, "%s.templateRef.namespace: %q is not the Canary's namespace %q, and Herald runs with -no-cross-namespace-refs",
			path, ns, c.Namespace)
		return
	}
	if k.Reader == nil {
		r.Err = invalid(nil, "%s: metric template %s/%s cannot be read: the checker has no reader", path, ns, ref.Name)
		return
	}
	var t flaggerv1.MetricTemplate
	if err := k.Reader.Get(ctx, types.NamespacedName{Namespace: ns, Name: ref.Name}, &t); err != nil {
		r.Err = invalid(err, "%s.templateRef: metric template %s/%s: %v", path, ns, ref.Name, err)
		return
	}
	tpath := fmt.Sprintf("metric template %s/%s", ns, ref.Name)
	if typ := t.Spec.Provider.Type; typ != flaggerv1.MetricProviderPrometheus {
		r.Err = invalid(nil, "%s: provider type %q is not supported: Herald only runs %s queries", tpath, typ, flaggerv1.MetricProviderPrometheus)
		return
	}
	var err error
	if r.Query, err = Render(t.Spec.Query, ModelFor(c, m)); err != nil {
		var missing *MissingVariableError
		if errors.As(err, &missing) {
			r.Err = invalid(err, "%s: %s uses {{ variables.%s }} but %s.templateVariables has no key %q",
				path, tpath, missing.Key, path, missing.Key)
			return
		}
		r.Err = invalid(err, "%s: spec.query: %v", tpath, err)
		return
	}
	ep, err := k.templateEndpoint(ctx, c, &t)
	if err != nil {
		r.Err = invalid(err, "%s: spec.provider.secretRef: %v", tpath, err)
		return
	}
	val, err := ep.run(ctx, r.Query)
	if err != nil {
		r.Err = explain(err, c, m.Name, "custom metric")
		return
	}
	r.Value = val
	r.Err = checkThreshold(c, m, val, false)
}

// templateEndpoint is where a MetricTemplate's query goes, and with which credentials. The
// template's credentials (its Secret, and headers that carry credentials) go only to an
// address the template names itself (spec.provider.address or its Secret's address): a
// template without one is queried at the Canary's metricsServer or Herald's default, which
// the Canary's author chose, so it is queried there without them. Otherwise any Canary that
// references the template, in any namespace, could send its owner's token to a server of
// its own.
func (k *Checker) templateEndpoint(ctx context.Context, c *flaggerv1.Canary, t *flaggerv1.MetricTemplate) (*endpoint, error) {
	ep := &endpoint{
		address:  t.Spec.Provider.Address,
		headers:  t.Spec.Provider.Headers,
		insecure: t.Spec.Provider.InsecureSkipVerify,
		policy:   k.Egress,
	}
	if ref := t.Spec.Provider.SecretRef; ref != nil {
		if err := k.applySecret(ctx, ep, t.Namespace, ref.Name); err != nil {
			return nil, err
		}
	}
	if ep.address == "" {
		ep.address = k.canaryAddress(c)
		ep.username, ep.password, ep.token = "", "", ""
		ep.headers = withoutCredentialHeaders(ep.headers)
	}
	return ep, nil
}

// credentialHeaders carry credentials; a template's literal headers of these names are
// sent only to the template's own address.
var credentialHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie", "X-Api-Key"}

func withoutCredentialHeaders(h http.Header) http.Header {
	if len(h) == 0 {
		return h
	}
	out := make(http.Header, len(h))
	for k, vs := range h {
		if !slices.ContainsFunc(credentialHeaders, func(c string) bool { return strings.EqualFold(c, k) }) {
			out[k] = vs
		}
	}
	return out
}

// Keys of a MetricTemplate's Secret for the Prometheus provider. Flagger documents
// username/password (basic auth) and token (bearer); address overrides the template's.
const (
	secretUsername = "username"
	secretPassword = "password"
	secretToken    = "token"
	secretAddress  = "address"
)

// applySecret reads the template's Secret into the endpoint. Errors name the Secret and
// the keys, never their values.
func (k *Checker) applySecret(ctx context.Context, ep *endpoint, namespace, name string) error {
	if name == "" {
		return errors.New("the Secret name is empty")
	}
	var s corev1.Secret
	if err := k.Reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &s); err != nil {
		return fmt.Errorf("reading Secret %s/%s: %w", namespace, name, err)
	}
	get := func(key string) string { return strings.TrimSpace(string(s.Data[key])) }
	if addr := get(secretAddress); addr != "" {
		ep.address = addr
	}
	user, pass, token := get(secretUsername), string(s.Data[secretPassword]), get(secretToken)
	switch {
	case token != "":
		// A bearer token wins over basic-auth keys also present.
		ep.token = token
	case user != "" && pass != "":
		ep.username, ep.password = user, pass
	case user != "":
		return fmt.Errorf("the Secret %s/%s has a %q key but no %q key", namespace, name, secretUsername, secretPassword)
	case pass != "":
		return fmt.Errorf("the Secret %s/%s has a %q key but no %q key", namespace, name, secretPassword, secretUsername)
	case get(secretAddress) == "":
		return fmt.Errorf("the Secret %s/%s has none of the keys %q, %q and %q, or %q", namespace, name,
			secretToken, secretUsername, secretPassword, secretAddress)
	}
	return nil
}

// explain turns a query failure into the reason shown to the user. what is "istio metric",
// "kubernetes metric" or "custom metric".
func explain(err error, c *flaggerv1.Canary, name, what string) error {
	var f *failure
	if !errors.As(err, &f) {
		f = &failure{kind: ErrQueryFailed, msg: err.Error(), cause: err}
	}
	target := fmt.Sprintf("%s.%s", c.Spec.TargetRef.Name, c.Namespace)
	var msg string
	switch {
	case errors.Is(f.kind, ErrNoValues):
		msg = fmt.Sprintf("Halt advancement no values found for %s %s probably %s is not receiving traffic", what, name, target)
		if f.msg != "" && f.msg != noSamples {
			msg += " (" + f.msg + ")"
		}
	case errors.Is(f.kind, ErrNaN):
		msg = fmt.Sprintf("Halt advancement %s %s: %s, probably %s is not receiving traffic", what, name, f.msg, target)
	case errors.Is(f.kind, ErrSeveralSeries), errors.Is(f.kind, ErrUnexpectedType):
		msg = fmt.Sprintf("Halt advancement %s %s: %s", what, name, f.msg)
	case errors.Is(f.kind, ErrQueryFailed):
		msg = fmt.Sprintf("Metric query failed for %s: %s", name, f.msg)
	default:
		msg = fmt.Sprintf("Metric %s: %s", name, f.msg)
	}
	return &failure{kind: f.kind, msg: msg, cause: f.cause}
}
