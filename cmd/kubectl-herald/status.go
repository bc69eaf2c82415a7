package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/printers"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/router"
	"github.com/herald-rollouts/herald/controllers/workloads"
	"github.com/herald-rollouts/herald/internal/contract"
	"github.com/herald-rollouts/herald/internal/requests"
)

// maxEvents is how many of the Canary's latest events status shows; maxEventsRead bounds how
// many it reads.
const (
	maxEvents     = 8
	maxEventsRead = 500
)

type statusOptions struct {
	watch        bool
	timeout      time.Duration
	meshProvider string
}

func newStatusCmd(e *env) *cobra.Command {
	o := &statusOptions{}
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Show a Canary as a tree: workloads, Services, routes, metrics, gates, events",
		Long: `Shows a Canary and what Herald made for it: the target and the primary (ready/desired,
revision), the Services, the routes with their current split, the last metric check against the
thresholds, the gates and their state, and the latest events.

With -w it follows the release to its end and exits 0 when it Succeeded, 1 when it Failed
(or when --timeout passes first), for CI pipelines.`,
		Example: `  kubectl herald status podinfo
  kubectl -n test set image deployment/podinfo podinfod=ghcr.io/stefanprodan/podinfo:6.0.1
  kubectl herald -n test status podinfo -w --timeout 10m`,
		Args: exactlyOneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd.Context(), e, args[0])
		},
	}
	cmd.Flags().BoolVarP(&o.watch, "watch", "w", false, "Follow the release to its end: exit 0 when it Succeeded, 1 when it Failed.")
	cmd.Flags().DurationVar(&o.timeout, "timeout", time.Hour, "With -w, how long to wait for the release to end (0: no limit).")
	cmd.Flags().StringVar(&o.meshProvider, "mesh-provider", flaggerv1.ProviderIstio, "Provider of Canaries without spec.provider (Herald's -mesh-provider).")
	return cmd
}

func exactlyOneName(_ *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usageError("give the name of one Canary (kubectl herald get lists them)")
	}
	return nil
}

func (o *statusOptions) run(ctx context.Context, e *env, name string) error {
	cl, ns, err := e.client()
	if err != nil {
		return err
	}
	v, err := gather(ctx, cl, ns, name, o.meshProvider)
	if err != nil {
		return err
	}
	if !o.watch {
		writeColored(e.streams.Out, v.render(e.now()), e.color)
		return nil
	}
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	return o.follow(ctx, e, cl, ns, name, v)
}

// follow is status -w: the tree is redrawn on a terminal, and one line per change is written
// otherwise; it ends with the release.
func (o *statusOptions) follow(ctx context.Context, e *env, cl client.WithWatch, ns, name string, v *statusView) error {
	last := ""
	show := func(v *statusView) {
		switch {
		case e.terminal:
			writeColored(e.streams.Out, clearScreen+v.render(e.now()), e.color)
		default:
			if line := v.progressLine(); line != last {
				last = line
				writeColored(e.streams.Out, e.now().Format("15:04:05")+"  "+line+"\n", e.color)
			}
		}
	}
	if !e.terminal {
		writeColored(e.streams.Out, v.render(e.now())+"\n", e.color)
	}
	show(v)
	if done, err := v.outcome(); done {
		return err
	}
	refresh := func() error {
		nv, err := gather(ctx, cl, ns, name, o.meshProvider)
		if err != nil {
			return err
		}
		show(nv)
		if done, err := nv.outcome(); done {
			v = nv
			if err == nil {
				return errStopWatch
			}
			return err
		}
		return nil
	}
	err := watchCanaries(ctx, e, cl, ns, name, func(_ *flaggerv1.Canary, deleted bool) error {
		if deleted {
			return &exitError{code: 1, msg: fmt.Sprintf("canary %s/%s was deleted", ns, name)}
		}
		return refresh()
	}, refresh)
	switch {
	case errors.Is(err, errStopWatch):
		return nil
	case err != nil:
		return err
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return &exitError{code: 1, msg: fmt.Sprintf("timed out after %s: canary %s/%s is %s", o.timeout, ns, name, phaseText(v.c))}
	}
	return &exitError{code: 1, msg: "interrupted"}
}

// statusView is what status shows of one Canary.
type statusView struct {
	c            *flaggerv1.Canary
	meshProvider string
	target       workloads.Workload // nil when it does not exist
	primary      workloads.Workload
	services     []serviceView
	routes       string // the split, in words
	events       []corev1.Event
}

type serviceView struct {
	role, name string
	svc        *corev1.Service // nil when it does not exist
}

// gather reads the Canary and what it names.
func gather(ctx context.Context, cl client.Client, ns, name, meshProvider string) (*statusView, error) {
	c, err := getCanary(ctx, cl, ns, name)
	if err != nil {
		return nil, err
	}
	v := &statusView{c: c, meshProvider: meshProvider}
	kind := targetKind(c)
	if v.target, err = readWorkload(ctx, cl, kind, ns, c.Spec.TargetRef.Name); err != nil {
		return nil, err
	}
	if v.primary, err = readWorkload(ctx, cl, kind, ns, contract.PrimaryName(c.Spec.TargetRef.Name)); err != nil {
		return nil, err
	}
	apex, primary, canary := c.GetServiceNames()
	for _, s := range []serviceView{{role: "apex", name: apex}, {role: "primary", name: primary}, {role: "canary", name: canary}} {
		var svc corev1.Service
		switch err := cl.Get(ctx, types.NamespacedName{Namespace: ns, Name: s.name}, &svc); {
		case err == nil:
			s.svc = &svc
		case !apierrors.IsNotFound(err):
			return nil, fmt.Errorf("reading service %s/%s: %w", ns, s.name, err)
		}
		v.services = append(v.services, s)
	}
	v.routes = readRoutes(ctx, cl, c, meshProvider)
	var events corev1.EventList
	if err := cl.List(ctx, &events, client.InNamespace(ns), client.Limit(maxEventsRead),
		client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("involvedObject.uid", string(c.UID))}); err != nil {
		return nil, fmt.Errorf("listing the events of canary %s/%s: %w", ns, name, err)
	}
	v.events = latestEvents(events.Items, maxEvents)
	return v, nil
}

func targetKind(c *flaggerv1.Canary) string {
	if c.Spec.TargetRef.Kind == "" {
		return "Deployment"
	}
	return c.Spec.TargetRef.Kind
}

func readWorkload(ctx context.Context, cl client.Client, kind, ns, name string) (workloads.Workload, error) {
	w, err := workloads.New(kind)
	if err != nil {
		return nil, nil // the Canary names a kind Herald does not release: nothing to show
	}
	switch err := cl.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, w.Object()); {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading %s %s/%s: %w", strings.ToLower(kind), ns, name, err)
	}
	return w, nil
}

// readRoutes describes the split in place, read as the controller reads it.
func readRoutes(ctx context.Context, cl client.Client, c *flaggerv1.Canary, meshProvider string) string {
	provider := c.GetProvider(meshProvider)
	if provider == flaggerv1.ProviderKubernetes {
		return "blue/green: the apex Service selects the primary"
	}
	p, cw, mirrored, err := router.For(provider, cl).GetRoutes(ctx, c)
	if err != nil {
		return "unknown: " + err.Error()
	}
	s := fmt.Sprintf("primary %d%%, canary %d%%", p, cw)
	if mirrored {
		s += ", mirrored to the canary"
	}
	return s
}

// latestEvents returns the n latest events, oldest first.
func latestEvents(evs []corev1.Event, n int) []corev1.Event {
	sort.SliceStable(evs, func(i, j int) bool { return eventTime(evs[i]).Before(eventTime(evs[j])) })
	if len(evs) > n {
		evs = evs[len(evs)-n:]
	}
	return evs
}

func eventTime(e corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

// outcome says whether the release has ended: the Canary is at rest (Succeeded, Initialized
// or Failed) on the revision the target has now, so a release that Herald has not taken in yet
// is waited for. err is set when it failed.
func (v *statusView) outcome() (done bool, err error) {
	c := v.c
	if v.target != nil {
		if rev, ok := v.target.Object().GetAnnotations()[contract.AnnotationRevision]; ok && rev != c.Status.LastAppliedSpec {
			return false, nil
		}
	}
	switch c.Status.Phase {
	case flaggerv1.CanaryPhaseSucceeded, flaggerv1.CanaryPhaseInitialized:
		return true, nil
	case flaggerv1.CanaryPhaseFailed:
		return true, &exitError{code: 1, msg: fmt.Sprintf("canary %s/%s failed: %s", c.Namespace, c.Name, promotedMessage(c))}
	}
	return false, nil
}

// progressLine is one line of status -w on a non-terminal.
func (v *statusView) progressLine() string {
	c := v.c
	s := c.Status
	parts := []string{phaseText(c)}
	if w := weightText(c, v.meshProvider); w != "-" {
		parts = append(parts, "weight "+w)
	}
	if it := iterationsText(c, v.meshProvider); it != "-" {
		parts = append(parts, "iterations "+it)
	}
	parts = append(parts, fmt.Sprintf("failed checks %d/%d", s.FailedChecks, c.GetAnalysisThreshold()),
		"revision "+dash(requests.Short(s.LastAppliedSpec)))
	if m := promotedMessage(c); m != "" {
		parts = append(parts, m)
	}
	return cell(strings.Join(parts, "  "))
}

// render draws the tree.
func (v *statusView) render(now time.Time) string {
	c := v.c
	s := c.Status
	var b bytes.Buffer
	head := printers.GetNewTabWriter(&b)
	field := func(k, val string) { fmt.Fprintf(head, "%s:\t%s\n", k, cell(val)) }
	field("Name", c.Name)
	field("Namespace", c.Namespace)
	field("Phase", phaseText(c))
	field("Strategy", v.strategyText())
	if w := weightText(c, v.meshProvider); w != "-" {
		field("Weight", w)
	}
	if it := iterationsText(c, v.meshProvider); it != "-" {
		field("Iterations", it)
	}
	field("Failed checks", fmt.Sprintf("%d/%d", s.FailedChecks, c.GetAnalysisThreshold()))
	rev := dash(requests.Short(s.LastAppliedSpec))
	if s.LastPromotedSpec != s.LastAppliedSpec {
		rev += " (promoted: " + dash(requests.Short(s.LastPromotedSpec)) + ")"
	}
	field("Revision", rev)
	if m := promotedMessage(c); m != "" {
		field("Message", m)
	}
	if r := s.LastRequest; r != nil {
		who := ""
		if r.User != "" {
			who = " by " + r.User
		}
		field("Last request", fmt.Sprintf("%s%s, %s %s ago: %s", dash(string(r.Action)), who, r.Outcome, age(r.Time.Time, now), r.Message))
	}
	if c.Spec.Suspend {
		field("Suspended", "yes (spec.suspend): Herald does not act on this Canary")
	}
	_ = head.Flush()
	b.WriteString("\n")

	t := &tree{}
	t.add(0, "Canary "+c.Name, string(s.Phase), "age "+age(c.CreationTimestamp.Time, now))
	kind := targetKind(c)
	t.add(1, kind+" "+c.Spec.TargetRef.Name, "target", workloadText(v.target, contract.AnnotationRevision))
	t.add(1, kind+" "+contract.PrimaryName(c.Spec.TargetRef.Name), "primary", workloadText(v.primary, ""))
	for _, sv := range v.services {
		info := "missing"
		if sv.svc != nil {
			info = "selects " + selectorText(sv.svc.Spec.Selector)
		}
		t.add(1, "Service "+sv.name, sv.role, info)
	}
	routeKind := "Routes"
	apex, _, _ := c.GetServiceNames()
	switch c.GetProvider(v.meshProvider) {
	case flaggerv1.ProviderIstio:
		routeKind = "VirtualService " + apex
	case flaggerv1.ProviderGatewayAPI, flaggerv1.ProviderGatewayAPIV1, flaggerv1.ProviderGatewayAPIV1Beta1:
		routeKind = "Gateway API route " + apex
	}
	t.add(1, routeKind, "routes", v.routes)
	v.addMetrics(t, now)
	v.addGates(t, now)
	t.add(1, "Events", "", fmt.Sprintf("latest %d", len(v.events)))
	for _, e := range v.events {
		t.add(2, age(eventTime(e), now), e.Type, e.Message)
	}
	b.WriteString(t.String())
	return b.String()
}

func (v *statusView) strategyText() string {
	c := v.c
	provider := c.GetProvider(v.meshProvider)
	st := strategy(c, v.meshProvider)
	parts := []string{st, "provider " + provider}
	if a := c.GetAnalysis(); a != nil {
		switch st {
		case flaggerv1.StrategyCanary:
			if len(a.StepWeights) > 0 && a.StepWeight <= 0 {
				parts = append(parts, "steps "+intsText(a.StepWeights))
			} else {
				step := a.StepWeight
				if step <= 0 {
					step = 10
				}
				parts = append(parts, fmt.Sprintf("step %d up to %d", step, c.GetMaxWeight()))
			}
		}
		interval := a.Interval
		if interval == "" {
			interval = c.GetAnalysisInterval().String()
		}
		parts = append(parts, "interval "+interval)
	}
	if c.SkipAnalysis() {
		parts = append(parts, "analysis skipped")
	}
	return strings.Join(parts, ", ")
}

func intsText(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// workloadText is "ready/desired ready, revision R" of a workload. revKey is the annotation
// that names its revision ("" for a primary: its template's promoted revision).
func workloadText(w workloads.Workload, revKey string) string {
	if w == nil {
		return "missing"
	}
	ready := fmt.Sprintf("%d ready", w.ReadyPods())
	if r := w.Replicas(); r != nil {
		ready = fmt.Sprintf("%d/%d ready", w.ReadyPods(), *r)
	}
	rev := ""
	if revKey != "" {
		rev = w.Object().GetAnnotations()[revKey]
	} else {
		rev = w.Template().Annotations[contract.AnnotationPromotedRevision]
	}
	text := ready
	if rev != "" {
		text += ", revision " + requests.Short(rev)
	}
	if _, idle := w.Object().GetAnnotations()[contract.AnnotationIdle]; idle {
		text += ", idle"
	}
	return text
}

func selectorText(sel map[string]string) string {
	if len(sel) == 0 {
		return "nothing"
	}
	keys := make([]string, 0, len(sel))
	for k := range sel {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + sel[k]
	}
	return strings.Join(parts, ",")
}

// addMetrics adds the last metric check of the current revision, against the thresholds.
func (v *statusView) addMetrics(t *tree, now time.Time) {
	c := v.c
	a := c.GetAnalysis()
	if a == nil || len(a.Metrics) == 0 {
		return
	}
	check := c.Status.LastCheck
	if check == nil || check.Revision != c.Status.LastAppliedSpec {
		t.add(1, "Metrics", "", "no check of this revision yet")
		for _, m := range a.Metrics {
			t.add(2, m.Name, "-", thresholdText(m))
		}
		return
	}
	t.add(1, "Metrics", "", "checked "+age(check.Time.Time, now)+" ago")
	results := map[string]flaggerv1.CanaryMetricResult{}
	for _, r := range check.Metrics {
		results[r.Name] = r
	}
	for _, m := range a.Metrics {
		r, ok := results[m.Name]
		if !ok {
			t.add(2, m.Name, "-", thresholdText(m))
			continue
		}
		verdict := "passed"
		if !r.Passed {
			verdict = "failed"
		}
		info := dash(r.Value) + " (" + thresholdText(m) + ")"
		if r.Message != "" {
			info += ": " + r.Message
		}
		t.add(2, m.Name, verdict, info)
	}
}

func thresholdText(m flaggerv1.CanaryMetric) string {
	var parts []string
	if r := m.ThresholdRange; r != nil {
		if r.Min != nil {
			parts = append(parts, "min "+strconv.FormatFloat(*r.Min, 'g', -1, 64))
		}
		if r.Max != nil {
			parts = append(parts, "max "+strconv.FormatFloat(*r.Max, 'g', -1, 64))
		}
	}
	if len(parts) == 0 {
		return "no threshold"
	}
	return strings.Join(parts, ", ")
}

// addGates adds the gate hooks with the state the phase implies, and a pause.
func (v *statusView) addGates(t *tree, now time.Time) {
	c := v.c
	phase := c.Status.Phase
	var rows [][3]string
	if a := c.GetAnalysis(); a != nil {
		for _, h := range a.Webhooks {
			state := ""
			switch h.Type {
			case flaggerv1.ConfirmRolloutHook:
				switch phase {
				case flaggerv1.CanaryPhaseWaiting:
					state = "waiting for approval"
				case flaggerv1.CanaryPhaseProgressing, flaggerv1.CanaryPhaseWaitingPromotion, flaggerv1.CanaryPhasePromoting, flaggerv1.CanaryPhaseFinalising:
					state = "approved"
				default:
					state = "asked at the next revision"
				}
			case flaggerv1.ConfirmTrafficIncreaseHook:
				state = "asked before each weight step"
			case flaggerv1.ConfirmPromotionHook:
				switch phase {
				case flaggerv1.CanaryPhaseWaitingPromotion:
					state = "waiting for approval"
				case flaggerv1.CanaryPhasePromoting, flaggerv1.CanaryPhaseFinalising:
					state = "approved"
				default:
					state = "asked before the promotion"
				}
			case flaggerv1.RollbackHook:
				state = "rolls back when it answers 2xx"
			default:
				continue
			}
			rows = append(rows, [3]string{h.Name, string(h.Type), state})
		}
	}
	if requests.IsPaused(c) {
		rows = append(rows, [3]string{"kubectl herald pause", "pause", "paused " + age(c.Status.Paused.Since.Time, now) + " ago"})
	}
	if len(rows) == 0 {
		return
	}
	t.add(1, "Gates", "", "")
	for _, r := range rows {
		t.add(2, r[0], r[1], r[2])
	}
}

// tree is a tree of rows with three columns, drawn with kubectl's tab writer.
type tree struct {
	rows []treeRow
}

type treeRow struct {
	depth            int
	name, kind, info string
}

func (t *tree) add(depth int, name, kind, info string) {
	t.rows = append(t.rows, treeRow{depth, cell(name), cell(kind), cell(info)})
}

// String draws the rows with ├── and └── before each child, aligned in columns.
func (t *tree) String() string {
	var b bytes.Buffer
	w := printers.GetNewTabWriter(&b)
	for i, r := range t.rows {
		prefix := ""
		for d := 1; d <= r.depth; d++ {
			last := t.lastAt(i, d)
			switch {
			case d < r.depth && last:
				prefix += "    "
			case d < r.depth:
				prefix += "│   "
			case last:
				prefix += "└── "
			default:
				prefix += "├── "
			}
		}
		fmt.Fprintf(w, "%s%s\t%s\t%s\n", prefix, r.name, r.kind, r.info)
	}
	_ = w.Flush()
	return trimLines(b.String())
}

// lastAt reports whether row i's ancestor at depth d (or row i itself, at its own depth) is
// the last child of its parent.
func (t *tree) lastAt(i, d int) bool {
	// Find the row at depth d that row i descends from.
	j := i
	for t.rows[j].depth > d {
		j--
	}
	for k := j + 1; k < len(t.rows); k++ {
		switch {
		case t.rows[k].depth == d:
			return false
		case t.rows[k].depth < d:
			return true
		}
	}
	return true
}
