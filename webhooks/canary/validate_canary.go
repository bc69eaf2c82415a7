/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package canary

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/metricchecks"
	"github.com/herald-rollouts/herald/controllers/router"
	"github.com/herald-rollouts/herald/controllers/workloads"
	"github.com/herald-rollouts/herald/internal/contract"
)

var (
	targetKinds = workloads.Kinds
	hookTypes   = []flaggerv1.HookType{
		"", flaggerv1.ConfirmRolloutHook, flaggerv1.PreRolloutHook, flaggerv1.RolloutHook,
		flaggerv1.ConfirmTrafficIncreaseHook, flaggerv1.ConfirmPromotionHook,
		flaggerv1.PostRolloutHook, flaggerv1.RollbackHook, flaggerv1.EventHook,
	}
	severities = []flaggerv1.AlertSeverity{
		"", flaggerv1.SeverityInfo, flaggerv1.SeverityWarn, flaggerv1.SeverityError,
	}
	canaryGK = flaggerv1.GroupVersion.WithKind(flaggerv1.CanaryKind).GroupKind()
)

// CanaryValidator validates Canaries. Build it with NewCanaryValidator.
type CanaryValidator struct {
	opts Options
}

var _ admission.Validator[*flaggerv1.Canary] = (*CanaryValidator)(nil)

// NewCanaryValidator returns a Canary validator; unset options take their defaults.
func NewCanaryValidator(opts Options) *CanaryValidator {
	return &CanaryValidator{opts: opts.withDefaults()}
}

// ValidateCreate checks a new Canary. It returns every problem at once as an Invalid
// status error, and warnings for risky settings and for lookups that could not be made.
func (v *CanaryValidator) ValidateCreate(ctx context.Context, c *flaggerv1.Canary) (admission.Warnings, error) {
	return v.validate(ctx, c)
}

// ValidateUpdate checks the new Canary like ValidateCreate, unless its spec is unchanged:
// status and metadata writes (by the controller, or a GitOps re-apply) are always allowed.
func (v *CanaryValidator) ValidateUpdate(ctx context.Context, oldObj, newObj *flaggerv1.Canary) (admission.Warnings, error) {
	if oldObj != nil && newObj != nil && reflect.DeepEqual(oldObj.Spec, newObj.Spec) {
		return nil, nil
	}
	return v.validate(ctx, newObj)
}

// ValidateDelete allows every delete.
func (v *CanaryValidator) ValidateDelete(context.Context, *flaggerv1.Canary) (admission.Warnings, error) {
	return nil, nil
}

// check collects the errors and warnings of one validation.
type check struct {
	ctx      context.Context
	opts     *Options
	c        *flaggerv1.Canary
	ns       string
	provider string // effective provider; "" when unsupported
	errs     field.ErrorList
	warns    admission.Warnings
}

func (k *check) err(e *field.Error) { k.errs = append(k.errs, e) }

// maxWarningLength is the length above which the API server may truncate a warning.
const maxWarningLength = 256

func (k *check) warn(p *field.Path, format string, args ...any) {
	w := p.String() + ": " + fmt.Sprintf(format, args...)
	if len(w) > maxWarningLength {
		w = strings.ToValidUTF8(w[:maxWarningLength-3], "") + "..."
	}
	k.warns = append(k.warns, w)
}

// get reads one object from the cache, and on a miss from the API server (within the lookup
// deadline of the validation). It reports whether the object exists; err is set only for
// failures other than NotFound.
func (k *check) get(key types.NamespacedName, obj client.Object) (bool, error) {
	err := k.opts.Reader.Get(k.ctx, key, obj)
	if apierrors.IsNotFound(err) && k.opts.MissReader != nil {
		err = k.opts.MissReader.Get(k.ctx, key, obj)
	}
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

func (v *CanaryValidator) validate(ctx context.Context, c *flaggerv1.Canary) (admission.Warnings, error) {
	if c == nil {
		return nil, nil
	}
	// One deadline for every lookup: the webhook must answer well within its timeout even
	// when an informer has not synced.
	lookupCtx, cancel := context.WithTimeout(ctx, v.opts.LookupTimeout)
	defer cancel()
	k := &check{ctx: lookupCtx, opts: &v.opts, c: c, ns: c.Namespace}
	if k.ns == "" {
		if req, err := admission.RequestFromContext(ctx); err == nil {
			k.ns = req.Namespace
		}
	}
	if k.ns == "" {
		k.ns = metav1.NamespaceDefault
	}
	k.checkName()
	spec := field.NewPath("spec")
	k.checkProvider(spec)
	k.checkAutoscaler(spec.Child("autoscalerRef"))
	k.checkTarget(spec.Child("targetRef"))
	k.checkService(spec.Child("service"))
	if c.Spec.MetricsServer != "" {
		if e := checkHTTPURL(spec.Child("metricsServer"), c.Spec.MetricsServer, false); e != nil {
			k.err(e)
		}
	}
	k.checkAnalysis(spec)
	if len(k.errs) == 0 {
		return k.warns, nil
	}
	name := c.Name
	if name == "" {
		name = c.GenerateName
	}
	return k.warns, apierrors.NewInvalid(canaryGK, name, k.errs)
}

// checkName refuses a name that cannot be a label value: the controller labels the target,
// the primary and the objects it adopts with the Canary's name (herald.dev/canary), and the API
// server would refuse each of those writes, leaving the Canary unable to start.
func (k *check) checkName() {
	if n := k.c.Name; n != "" {
		for _, msg := range validation.IsValidLabelValue(n) {
			k.err(field.Invalid(field.NewPath("metadata", "name"), n, "the name is the value of the herald.dev/canary label on the target and primary: "+msg))
		}
		return
	}
	// The API server appends five characters to generateName.
	if n := k.c.GenerateName; len(n)+5 > validation.LabelValueMaxLength {
		k.err(field.TooLong(field.NewPath("metadata", "generateName"), n, validation.LabelValueMaxLength-5))
	}
}

func quoted[T ~string](values []T) string {
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = strconv.Quote(string(v))
	}
	return strings.Join(q, ", ")
}

func (k *check) checkProvider(spec *field.Path) {
	p := spec.Child("provider")
	prov := k.c.Spec.Provider
	switch {
	case slices.Contains(flaggerv1.SupportedProviders, prov):
		k.provider = prov
	case prov != "":
		k.err(field.NotSupported(p, prov, flaggerv1.SupportedProviders))
	case slices.Contains(flaggerv1.SupportedProviders, k.opts.DefaultProvider):
		k.provider = k.opts.DefaultProvider
	default:
		k.err(&field.Error{
			Type: field.ErrorTypeNotSupported, Field: p.String(), BadValue: k.opts.DefaultProvider,
			Detail: fmt.Sprintf("supported values: %s; the Canary sets no provider, so the controller's "+
				"default (flag --mesh-provider=%s) applies: set spec.provider", quoted(flaggerv1.SupportedProviders), k.opts.DefaultProvider),
		})
	}
	if k.provider == "" {
		return
	}
	// References that only other providers read.
	ignored := func(path *field.Path) {
		k.warn(path, "is ignored by provider %s", k.provider)
	}
	if k.c.Spec.IngressRef != nil {
		ignored(spec.Child("ingressRef"))
	}
	if k.c.Spec.RouteRef != nil {
		ignored(spec.Child("routeRef"))
	}
	if k.c.Spec.UpstreamRef != nil {
		ignored(spec.Child("upstreamRef"))
	}
	svc := &k.c.Spec.Service
	sp := spec.Child("service")
	if !flaggerv1.IsGatewayAPI(k.provider) {
		if len(svc.GatewayRefs) > 0 {
			k.warn(sp.Child("gatewayRefs"), "is ignored by provider %s; set spec.provider: %s to route with the Gateway API",
				k.provider, flaggerv1.ProviderGatewayAPIV1)
		}
		if svc.BackendTimeout != "" {
			ignored(sp.Child("backendTimeout"))
		}
		if len(svc.Mirror) > 0 {
			ignored(sp.Child("mirror"))
		}
		return
	}
	// Istio's settings that a Gateway API route has no place for.
	if len(svc.Gateways) > 0 {
		k.warn(sp.Child("gateways"), "is ignored by provider %s: the route attaches to spec.service.gatewayRefs", k.provider)
	}
	if svc.Delegation {
		ignored(sp.Child("delegation"))
	}
	if svc.TrafficPolicy != nil {
		k.warn(sp.Child("trafficPolicy"), "is ignored by provider %s: set load balancing and TLS with your implementation's policies", k.provider)
	}
	if svc.Retries != nil {
		k.warn(sp.Child("retries"), "is ignored by provider %s: HTTPRoute retries are in the Gateway API's experimental channel, "+
			"which Herald does not write (a cluster with the standard CRDs would drop them)", k.provider)
	}
}

func (k *check) checkTarget(p *field.Path) {
	ref := k.c.Spec.TargetRef
	kindOK := false
	switch ref.Kind {
	case "":
		k.err(field.Required(p.Child("kind"), "one of "+quoted(targetKinds)))
	case "Deployment", "DaemonSet", "StatefulSet":
		kindOK = true
	case "Service":
		k.err(&field.Error{
			Type: field.ErrorTypeNotSupported, Field: p.Child("kind").String(), BadValue: ref.Kind,
			Detail: "supported values: " + quoted(targetKinds) + "; Herald does not release Knative Services",
		})
	default:
		k.err(field.NotSupported(p.Child("kind"), ref.Kind, targetKinds))
	}
	if ref.APIVersion != "" && ref.APIVersion != "apps/v1" && kindOK {
		k.warn(p.Child("apiVersion"), "%q is not apps/v1; the target is read as an apps/v1 %s", ref.APIVersion, ref.Kind)
	}
	if ref.Name == "" {
		k.err(field.Required(p.Child("name"), "the name of the workload to release"))
		return
	}
	if !kindOK || k.opts.Reader == nil {
		return
	}

	key := types.NamespacedName{Namespace: k.ns, Name: ref.Name}
	desc := fmt.Sprintf("%s %s", strings.ToLower(ref.Kind), key)
	target, err := workloads.New(ref.Kind)
	if err != nil {
		return
	}
	found, err := k.get(key, target.Object())
	switch {
	case err != nil:
		k.warn(p.Child("name"), "could not read target %s from the cache, so it was not checked: %v", desc, err)
		return
	case !found:
		k.warn(p.Child("name"), "target %s does not exist yet; the Canary waits for it", desc)
		return
	}

	// The controller's rule (contract.SelectorLabel): refuse what it would refuse, and say
	// which label it takes when the selector carries several.
	if _, _, err := contract.SelectorLabel(target.Selector(), target.Template().Labels, k.opts.SelectorLabels); err != nil {
		k.err(field.Invalid(p.Child("name"), ref.Name, fmt.Sprintf("target %s: %v", desc, err)))
		return
	}
	if err := workloads.CheckGoverningService(target, k.c); err != nil {
		k.err(field.Invalid(p.Child("name"), ref.Name, err.Error()))
	}
	if used := contract.SelectorLabelsIn(target.Selector(), k.opts.SelectorLabels); len(used) > 1 {
		k.warn(p.Child("name"), "the selector of %s carries several of the selector labels %s; Herald names its pods by the first, %q",
			desc, quoted(used), used[0])
	}
}

func (k *check) checkService(p *field.Path) {
	s := &k.c.Spec.Service
	if s.Port < 1 || s.Port > 65535 {
		k.err(field.Invalid(p.Child("port"), s.Port, "must be between 1 and 65535"))
	}
	k.duration(p.Child("timeout"), s.Timeout)
	k.duration(p.Child("backendTimeout"), s.BackendTimeout)
	// What the router could not turn into its objects is refused here, at apply time,
	// rather than failing every reconcile later.
	var routeErrs field.ErrorList
	switch {
	case k.provider == flaggerv1.ProviderIstio:
		routeErrs = router.ValidateIstio(k.c)
	case flaggerv1.IsGatewayAPI(k.provider):
		routeErrs = router.ValidateGatewayAPI(k.c)
	}
	for _, e := range routeErrs {
		if !slices.ContainsFunc(k.errs, func(have *field.Error) bool { return have.Field == e.Field }) {
			k.err(e)
		}
	}
}

// duration checks a duration field and returns its value; ok is false when it is unset or
// invalid.
func (k *check) duration(p *field.Path, s string) (time.Duration, bool) {
	if s == "" {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		k.err(field.Invalid(p, s, "must be a duration such as 30s, 1m or 1m30s"))
		return 0, false
	}
	if d < 0 {
		k.err(field.Invalid(p, s, "must not be negative"))
		return 0, false
	}
	return d, true
}

func (k *check) percent(p *field.Path, v int) {
	if v < 0 || v > 100 {
		k.err(field.Invalid(p, v, "must be between 0 and 100"))
	}
}

func (k *check) checkAnalysis(spec *field.Path) {
	c := k.c
	a := c.GetAnalysis()
	skip := c.Spec.SkipAnalysis
	if a == nil {
		if !skip {
			k.err(field.Required(spec.Child("analysis"), "a Canary needs an analysis unless spec.skipAnalysis is true"))
		}
		return
	}
	p := spec.Child("analysis")
	if c.Spec.Analysis == nil {
		p = spec.Child("canaryAnalysis")
		k.warn(p, "is deprecated: rename it to spec.analysis")
	} else if c.Spec.CanaryAnalysis != nil {
		k.warn(spec.Child("canaryAnalysis"), "is ignored because spec.analysis is set")
	}

	// The interval: other durations are compared with it only when it is valid.
	interval := flaggerv1.DefaultAnalysisInterval
	intervalOK := true
	if a.Interval != "" {
		d, ok := k.duration(p.Child("interval"), a.Interval)
		intervalOK = ok
		if ok {
			interval = c.GetAnalysisInterval()
			if d < flaggerv1.MinAnalysisInterval {
				k.warn(p.Child("interval"), "%s is raised to the minimum of %s", a.Interval, flaggerv1.MinAnalysisInterval)
			}
		}
	}

	k.checkWeights(p, a)
	k.checkStrategy(p, a, skip)
	k.checkSessionAffinity(p.Child("sessionAffinity"), a.SessionAffinity)
	k.checkMetrics(p.Child("metrics"), a.Metrics, interval, intervalOK)
	k.checkHooks(p.Child("webhooks"), a.Webhooks, interval, intervalOK)
	k.checkAlerts(p.Child("alerts"), a.Alerts)
}

func (k *check) checkWeights(p *field.Path, a *flaggerv1.CanaryAnalysis) {
	k.percent(p.Child("maxWeight"), a.MaxWeight)
	k.percent(p.Child("stepWeight"), a.StepWeight)
	k.percent(p.Child("stepWeightPromotion"), a.StepWeightPromotion)
	k.percent(p.Child("mirrorWeight"), a.MirrorWeight)
	if a.PrimaryReadyThreshold != nil {
		k.percent(p.Child("primaryReadyThreshold"), *a.PrimaryReadyThreshold)
	}
	if a.CanaryReadyThreshold != nil {
		k.percent(p.Child("canaryReadyThreshold"), *a.CanaryReadyThreshold)
	}
	if a.MaxWeight > 0 && a.StepWeight > a.MaxWeight {
		k.err(field.Invalid(p.Child("stepWeight"), a.StepWeight,
			fmt.Sprintf("must not be greater than maxWeight (%d)", a.MaxWeight)))
	}
	for i, w := range a.StepWeights {
		wp := p.Child("stepWeights").Index(i)
		switch {
		case w < 1 || w > 100:
			k.err(field.Invalid(wp, w, "must be between 1 and 100"))
		case i > 0 && w <= a.StepWeights[i-1]:
			k.err(field.Invalid(wp, w, fmt.Sprintf(
				"must be greater than the step before it (%d): stepWeights must be strictly increasing", a.StepWeights[i-1])))
		}
	}
	if n := len(a.StepWeights); n > 0 && a.MaxWeight > 0 && a.MaxWeight != a.StepWeights[n-1] {
		k.warn(p.Child("maxWeight"), "is ignored when stepWeights is set: the last step (%d) is the highest weight", a.StepWeights[n-1])
	}
}

func (k *check) checkStrategy(p *field.Path, a *flaggerv1.CanaryAnalysis, skip bool) {
	if a.Iterations < 0 {
		k.err(field.Invalid(p.Child("iterations"), a.Iterations, "must not be negative"))
	}
	if k.provider == flaggerv1.ProviderKubernetes {
		trafficFields := []string{}
		if a.StepWeight != 0 {
			trafficFields = append(trafficFields, "stepWeight")
		}
		if len(a.StepWeights) > 0 {
			trafficFields = append(trafficFields, "stepWeights")
		}
		if len(a.Match) > 0 {
			trafficFields = append(trafficFields, "match")
		}
		if a.Mirror {
			trafficFields = append(trafficFields, "mirror")
		}
		if a.Iterations <= 0 && (!skip || len(trafficFields) > 0) {
			// Flagger runs such a Canary as ten blue/green iterations; so does Herald.
			detail := "is not set: provider kubernetes runs blue/green only, with 10 iterations as Flagger does; set spec.analysis.iterations"
			if len(trafficFields) > 0 {
				detail += fmt.Sprintf(" (%s are ignored: they need a traffic router)", strings.Join(trafficFields, ", "))
			}
			k.warn(p.Child("iterations"), "%s", detail)
		} else if a.Iterations > 0 {
			if len(a.Match) > 0 {
				k.warn(p.Child("match"), "is ignored by provider kubernetes, which cannot route by request: the run is blue/green")
			}
			if a.Mirror {
				k.warn(p.Child("mirror"), "is ignored by provider kubernetes, which cannot mirror traffic")
			}
		}
	}
	if skip {
		return
	}
	if a.Threshold < 1 {
		// Flagger takes 1 for a threshold below 1; so does Herald.
		k.warn(p.Child("threshold"), "is %d: 1 is used (one failed check rolls the run back), as Flagger does; set it to the number of failed checks a run tolerates plus one", a.Threshold)
	}
	if a.Iterations == 0 && a.StepWeight == 0 && len(a.StepWeights) == 0 && k.provider != flaggerv1.ProviderKubernetes {
		k.err(field.Required(p.Child("stepWeight"),
			"without iterations the canary strategy shifts traffic step by step: set stepWeight or stepWeights "+
				"(or iterations, for blue/green or A/B testing)"))
	}
	if a.Iterations > 0 && a.Threshold >= a.Iterations {
		k.warn(p.Child("threshold"), "%d is not below iterations (%d): a run needs %d passing checks and tolerates "+
			"%d failed ones, so a revision that fails as often as it passes is still promoted; set threshold below iterations",
			a.Threshold, a.Iterations, a.Iterations, a.Threshold-1)
	}
}

func (k *check) checkSessionAffinity(p *field.Path, s *flaggerv1.SessionAffinity) {
	if s == nil {
		return
	}
	if k.provider == flaggerv1.ProviderKubernetes {
		k.err(field.Forbidden(p, "provider kubernetes has no traffic router to pin users with cookies: use provider istio or gatewayapi"))
	}
	if s.CookieName == "" {
		k.err(field.Required(p.Child("cookieName"), ""))
	} else if s.PrimaryCookieName == s.CookieName {
		k.err(field.Invalid(p.Child("primaryCookieName"), s.PrimaryCookieName, "must differ from cookieName"))
	}
	if s.MaxAge < 0 {
		k.err(field.Invalid(p.Child("maxAge"), s.MaxAge, "must not be negative"))
	}
}

func (k *check) checkMetrics(p *field.Path, metrics []flaggerv1.CanaryMetric, interval time.Duration, intervalOK bool) {
	for i := range metrics {
		m := &metrics[i]
		mp := p.Index(i)
		builtin := metricchecks.IsBuiltin(m.Name)
		if m.Name == "" {
			k.err(field.Required(mp.Child("name"), ""))
		}
		window, windowOK := k.duration(mp.Child("interval"), m.Interval)
		if m.Interval == "" && m.TemplateRef == nil && (builtin || m.Query != "") {
			window, _ = time.ParseDuration(flaggerv1.DefaultMetricInterval)
			windowOK = true
		}
		if intervalOK && windowOK && window > interval {
			shown := m.Interval
			if shown == "" {
				shown = flaggerv1.DefaultMetricInterval + " (the default)"
			}
			k.warn(mp.Child("interval"), "the query window %s is longer than the analysis interval %s: "+
				"each check also sees traffic from before the last step", shown, interval)
		}
		if r := m.ThresholdRange; r != nil && r.Min != nil && r.Max != nil && *r.Min > *r.Max {
			k.err(field.Invalid(mp.Child("thresholdRange"), fmt.Sprintf("min %v, max %v", *r.Min, *r.Max),
				"min must not be greater than max"))
		}
		if m.Query != "" {
			if m.TemplateRef != nil {
				k.warn(mp.Child("query"), "is ignored because templateRef is set")
			} else {
				k.warn(mp.Child("query"), "inline queries are deprecated: move the query to a MetricTemplate and use templateRef")
			}
		}
		switch {
		case m.TemplateRef != nil:
			k.checkTemplateRef(mp.Child("templateRef"), m.TemplateRef)
		case builtin:
			if m.Query == "" && m.ThresholdRange == nil && m.Threshold == 0 {
				k.warn(mp, "builtin metric %s has neither thresholdRange nor threshold: it never fails", m.Name)
			}
		case m.Query != "":
		case m.Name != "":
			k.err(field.Invalid(mp.Child("name"), m.Name, fmt.Sprintf(
				"is not a builtin metric (%s): set templateRef to a MetricTemplate", quoted(metricchecks.BuiltinNames))))
		}
	}
}

// crossNamespace refuses a reference to another namespace under -no-cross-namespace-refs.
func (k *check) crossNamespace(p *field.Path, namespace string) bool {
	if !k.opts.NoCrossNamespaceRefs || namespace == "" || namespace == k.ns {
		return false
	}
	k.err(field.Forbidden(p.Child("namespace"), fmt.Sprintf("%q is not the Canary's namespace %q: Herald runs with -no-cross-namespace-refs", namespace, k.ns)))
	return true
}

func (k *check) checkTemplateRef(p *field.Path, ref *flaggerv1.CrossNamespaceObjectReference) {
	if ref.Name == "" {
		k.err(field.Required(p.Child("name"), "the name of a MetricTemplate"))
		return
	}
	if k.crossNamespace(p, ref.Namespace) {
		return
	}
	if k.opts.Reader == nil {
		return
	}
	key := types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}
	if key.Namespace == "" {
		key.Namespace = k.ns
	}
	found, err := k.get(key, &flaggerv1.MetricTemplate{})
	switch {
	case err != nil:
		k.warn(p, "could not read MetricTemplate %s from the cache, so it was not checked: %v", key, err)
	case !found:
		// Never refused: kubectl apply -f dir/, Helm and Flux may send the template after the
		// Canary. The controller shows the Canary Stalled until it exists.
		k.warn(p, "MetricTemplate %s does not exist yet: the Canary is Stalled (MetricTemplateNotFound) until it is created", key)
	}
}

func (k *check) checkHooks(p *field.Path, hooks []flaggerv1.CanaryWebhook, interval time.Duration, intervalOK bool) {
	seen := make(map[string]bool, len(hooks))
	var rolloutTotal time.Duration
	for i := range hooks {
		h := &hooks[i]
		hp := p.Index(i)
		switch {
		case h.Name == "":
			k.err(field.Required(hp.Child("name"), ""))
		case seen[h.Name]:
			k.err(field.Duplicate(hp.Child("name"), h.Name))
		default:
			seen[h.Name] = true
		}
		if !slices.Contains(hookTypes, h.Type) {
			k.err(field.NotSupported(hp.Child("type"), h.Type, hookTypes[1:]))
		}
		if e := checkHTTPURL(hp.Child("url"), h.URL, false); e != nil {
			k.err(e)
		}
		if d, ok := k.duration(hp.Child("timeout"), h.Timeout); ok && d == 0 {
			k.err(field.Invalid(hp.Child("timeout"), h.Timeout, "must be greater than zero"))
		}
		if h.Retries < 0 {
			k.err(field.Invalid(hp.Child("retries"), h.Retries, "must not be negative"))
		}
		if h.Type == "" || h.Type == flaggerv1.RolloutHook {
			rolloutTotal += h.GetTimeout()
		}
	}
	if intervalOK && rolloutTotal > interval {
		k.warn(p, "the rollout hooks, called one after the other at every check, may take up to %s "+
			"(their timeouts, %s when unset), more than the analysis interval %s: slow hooks delay every check",
			rolloutTotal, flaggerv1.DefaultWebhookTimeout, interval)
	}
}

func (k *check) checkAlerts(p *field.Path, alerts []flaggerv1.CanaryAlert) {
	for i := range alerts {
		al := &alerts[i]
		ap := p.Index(i)
		if !slices.Contains(severities, al.Severity) {
			k.err(field.NotSupported(ap.Child("severity"), al.Severity, severities))
		}
		ref := al.ProviderRef
		rp := ap.Child("providerRef")
		if ref.Name == "" {
			k.err(field.Required(rp.Child("name"), "the name of an AlertProvider"))
			continue
		}
		if k.crossNamespace(rp, ref.Namespace) {
			continue
		}
		if k.opts.Reader == nil {
			continue
		}
		key := types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}
		if key.Namespace == "" {
			key.Namespace = k.ns
		}
		found, err := k.get(key, &flaggerv1.AlertProvider{})
		switch {
		case err != nil:
			k.warn(rp, "could not read AlertProvider %s from the cache, so it was not checked: %v", key, err)
		case !found:
			k.warn(rp, "AlertProvider %s does not exist yet: the Canary is Stalled (AlertProviderNotFound) until it is created", key)
		}
	}
}

// checkAutoscaler refuses a KEDA ScaledObject: Herald copies HorizontalPodAutoscalers only, and
// a ScaledObject left alone would keep scaling the target while the primary has no scaler.
func (k *check) checkAutoscaler(p *field.Path) {
	ref := k.c.Spec.AutoscalerRef
	if ref == nil || ref.Kind == "HorizontalPodAutoscaler" {
		return
	}
	if ref.Kind == "ScaledObject" {
		k.err(&field.Error{Type: field.ErrorTypeNotSupported, Field: p.Child("kind").String(), BadValue: ref.Kind,
			Detail: "KEDA ScaledObjects are not supported by Herald: use a HorizontalPodAutoscaler (supported values: \"HorizontalPodAutoscaler\")"})
		return
	}
	k.err(field.NotSupported(p.Child("kind"), ref.Kind, []string{"HorizontalPodAutoscaler"}))
}
