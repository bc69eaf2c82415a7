package alerts

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

func counter(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func canaryWithAlerts(name string, alerts ...flaggerv1.CanaryAlert) *flaggerv1.Canary {
	return &flaggerv1.Canary{
		ObjectMeta: metav1.ObjectMeta{Namespace: "test", Name: name},
		Spec: flaggerv1.CanarySpec{
			TargetRef: flaggerv1.LocalObjectReference{Kind: "Deployment", Name: name},
			Analysis:  &flaggerv1.CanaryAnalysis{Iterations: 3, Alerts: alerts},
		},
	}
}

func ref(name string, sev Severity) flaggerv1.CanaryAlert {
	return flaggerv1.CanaryAlert{Name: name, Severity: sev, ProviderRef: flaggerv1.CrossNamespaceObjectReference{Name: name}}
}

func startDispatcher(t *testing.T, s *Sender, o Options) *Dispatcher {
	d := NewDispatcher(s, logr.Discard(), o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return d
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDispatcherDeliversBySeverityInOrder(t *testing.T) {
	all := newReceiver(t, 1, http.StatusInternalServerError) // the first alert needs a retry
	errorsOnly := newReceiver(t, 0, 0)
	reader := fakeReader(t,
		provider("test", "all", "webhook", address(all.URL)),
		provider("test", "errors-only", "webhook", address(errorsOnly.URL)),
	)
	sent := counter(t, alertsTotal.WithLabelValues("webhook", ResultSent))
	d := startDispatcher(t, &Sender{Reader: reader, Backoff: time.Millisecond}, Options{})
	c := canaryWithAlerts("podinfo", ref("all", ""), ref("errors-only", flaggerv1.SeverityError))

	texts := []string{"start", "waiting", "rollback"}
	sevs := []Severity{flaggerv1.SeverityInfo, flaggerv1.SeverityWarn, flaggerv1.SeverityError}
	for i := range texts {
		if !d.Enqueue(c, Message{Canary: c.Name, Namespace: c.Namespace, Text: texts[i], Severity: sevs[i]}) {
			t.Fatalf("alert %q dropped", texts[i])
		}
	}
	waitFor(t, "four deliveries", func() bool {
		return counter(t, alertsTotal.WithLabelValues("webhook", ResultSent))-sent == 4
	})
	all.mu.Lock()
	var got []string
	for _, b := range all.bodies {
		got = append(got, fmt.Sprint(b["message"]))
	}
	all.mu.Unlock()
	// The first alert was retried; the others waited for it: one Canary's alerts keep their order.
	if strings.Join(got, ",") != "start,start,waiting,rollback" {
		t.Errorf("the alert with severity unset received %v", got)
	}
	errorsOnly.mu.Lock()
	defer errorsOnly.mu.Unlock()
	if len(errorsOnly.bodies) != 1 || errorsOnly.bodies[0]["message"] != "rollback" || errorsOnly.bodies[0]["severity"] != "error" {
		t.Errorf("the error-only alert received %v", errorsOnly.bodies)
	}
}

func TestDispatcherCountsFailures(t *testing.T) {
	dead := newReceiver(t, 100, http.StatusBadRequest)
	reader := fakeReader(t, provider("test", "dead", "rocket", address(dead.URL)))
	failed := counter(t, alertsTotal.WithLabelValues("rocket", ResultFailed))
	unresolved := counter(t, alertsTotal.WithLabelValues(ProviderUnresolved, ResultFailed))
	d := startDispatcher(t, &Sender{Reader: reader, Backoff: time.Millisecond}, Options{})
	c := canaryWithAlerts("podinfo", ref("dead", ""), ref("missing", ""))
	d.Enqueue(c, Message{Canary: c.Name, Namespace: c.Namespace, Text: "x", Severity: flaggerv1.SeverityInfo})
	waitFor(t, "the failures to be counted", func() bool {
		return counter(t, alertsTotal.WithLabelValues("rocket", ResultFailed))-failed == 1 &&
			counter(t, alertsTotal.WithLabelValues(ProviderUnresolved, ResultFailed))-unresolved == 1
	})
}

func TestEnqueueDropsWhenFull(t *testing.T) {
	// Not started: nothing drains the queue.
	var rec logRecorder
	d := NewDispatcher(&Sender{}, rec.logger(), Options{Workers: 1, QueueSize: 2})
	c := canaryWithAlerts("podinfo")
	dropped := counter(t, alertsDropped.WithLabelValues(ProviderUnresolved))
	for i, want := range []bool{true, true, false, false} {
		if got := d.Enqueue(c, Message{Text: fmt.Sprint(i)}); got != want {
			t.Errorf("enqueue %d = %t, want %t", i, got, want)
		}
	}
	if n := counter(t, alertsDropped.WithLabelValues(ProviderUnresolved)) - dropped; n != 2 {
		t.Errorf("%v drops counted, want 2", n)
	}
	if infos, errs := rec.lines(); len(errs) != 2 || len(infos) != 0 || !strings.Contains(errs[0], "Alert dropped") {
		t.Errorf("each drop is an error line: errors %v, infos %v", errs, infos)
	}
	var disabled *Dispatcher
	if disabled.Enqueue(c, Message{}) {
		t.Error("a nil dispatcher accepts nothing")
	}
}

// The global provider configured by flags (or their environment variables) receives the
// alerts of a Canary without analysis.alerts.
func TestGlobalFlagsToDispatcher(t *testing.T) {
	slack := newReceiver(t, 0, 0)
	var g GlobalFlags
	fs := flag.NewFlagSet("herald", flag.ContinueOnError)
	g.Bind(fs)
	if err := fs.Parse([]string{"-slack-url", "http://ignored.invalid", "-slack-token", "from-flag", "-slack-channel", "deploys"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SLACK_URL": slack.URL + "/hook", "SLACK_TOKEN": "from-env"}
	global, err := g.Destinations(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if len(global) != 1 {
		t.Fatalf("destinations %v", global)
	}
	d := startDispatcher(t, &Sender{Reader: fakeReader(t), Global: global}, Options{})
	c := canaryWithAlerts("podinfo")
	d.Enqueue(c, Message{Canary: "podinfo", Namespace: "test", Text: "Canary analysis completed successfully, promotion finished.", Severity: flaggerv1.SeverityInfo})
	waitFor(t, "the global Slack alert", func() bool { return slack.count() == 1 })
	slack.mu.Lock()
	defer slack.mu.Unlock()
	b, req := slack.bodies[0], slack.requests[0]
	// Flagger's precedence: a variable that is set wins over its flag.
	if req.URL.Path != "/hook" {
		t.Errorf("SLACK_URL wins over -slack-url: posted to %s", req.URL)
	}
	if req.Header.Get("Authorization") != "Bearer from-env" {
		t.Errorf("SLACK_TOKEN wins over -slack-token: %v", req.Header)
	}
	if b["channel"] != "deploys" || b["username"] != "flagger" || b["attachments"] == nil {
		t.Errorf("body %v", b)
	}
}

func TestGlobalFlags(t *testing.T) {
	noEnv := func(string) string { return "" }
	parse := func(args ...string) *GlobalFlags {
		var g GlobalFlags
		fs := flag.NewFlagSet("herald", flag.ContinueOnError)
		g.Bind(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return &g
	}
	if ds, err := parse().Destinations(noEnv); err != nil || len(ds) != 0 {
		t.Errorf("no flags: %v, %v", ds, err)
	}
	ds, err := parse().Destinations(func(k string) string {
		return map[string]string{"MSTEAMS_URL": "https://contoso.webhook.office.com/x", "MSTEAMS_PROXY_URL": "http://proxy:3128"}[k]
	})
	if err != nil || len(ds) != 1 || ds[0].Type != "msteams" || ds[0].Proxy != "http://proxy:3128" {
		t.Errorf("MS Teams from the environment: %+v, %v", ds, err)
	}
	ds, err = parse("-slack-url", "https://hooks.slack.com/x", "-msteams-url", "https://contoso.webhook.office.com/x").Destinations(noEnv)
	if err != nil || len(ds) != 2 {
		t.Errorf("both: %+v, %v", ds, err)
	}
	ds, err = parse("-slack-url", "https://hooks.slack.com/flag", "-slack-proxy-url", "http://flag-proxy:3128").Destinations(func(k string) string {
		return map[string]string{"SLACK_URL": " ", "SLACK_PROXY_URL": "http://env-proxy:3128"}[k]
	})
	if err != nil || len(ds) != 1 || ds[0].Address != "https://hooks.slack.com/flag" || ds[0].Proxy != "http://env-proxy:3128" {
		t.Errorf("a blank variable leaves the flag, a set one wins: %+v, %v", ds, err)
	}
	_, err = parse("-slack-url", "hooks.slack.com/services/secret", "-slack-token", "t", "-msteams-proxy-url", "proxy:3128", "-msteams-url", "https://x.example.com").Destinations(noEnv)
	if err == nil || !strings.Contains(err.Error(), "-slack-url: must be an absolute http or https URL") ||
		!strings.Contains(err.Error(), "-msteams-proxy-url") {
		t.Errorf("bad URLs are refused by flag name: %v", err)
	}
	if err != nil && strings.Contains(err.Error(), "secret") {
		t.Errorf("the error leaks the URL: %v", err)
	}
	if _, err := parse("-slack-token", "t").Destinations(noEnv); err == nil {
		t.Error("a token without a URL is refused")
	}
}

func TestMetadata(t *testing.T) {
	c := &flaggerv1.Canary{
		ObjectMeta: metav1.ObjectMeta{Namespace: "test", Name: "podinfo"},
		Spec: flaggerv1.CanarySpec{
			TargetRef:               flaggerv1.LocalObjectReference{Kind: "Deployment", Name: "podinfo"},
			ProgressDeadlineSeconds: ptr.To(int32(120)),
			Analysis:                &flaggerv1.CanaryAnalysis{Threshold: 5, StepWeight: 10, MaxWeight: 50},
		},
	}
	got := fmt.Sprint(Metadata(c))
	want := "[{Target Deployment/podinfo.test} {Failed checks threshold 5} {Progress deadline 120s} {Traffic routing Weight step: 10 max: 50} {Strategy canary}]"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	c.Spec.Analysis = &flaggerv1.CanaryAnalysis{StepWeights: []int{1, 5, 20}}
	if got := fmt.Sprint(Metadata(c)[3]); got != "{Traffic routing Weight steps: 1,5,20 max: 20}" {
		t.Errorf("step weights: %s", got)
	}
	c.Spec.Analysis = &flaggerv1.CanaryAnalysis{Iterations: 3}
	if got := fmt.Sprint(Metadata(c)[3:]); got != "[{Traffic routing Blue/Green} {Strategy blue-green}]" {
		t.Errorf("blue/green: %s", got)
	}
}

// Enqueue must stay cheap and never block, even when every queue is full.
func BenchmarkEnqueueFull(b *testing.B) {
	d := NewDispatcher(&Sender{}, logr.Discard(), Options{Workers: 1, QueueSize: 1})
	c := canaryWithAlerts("podinfo", ref("all", ""))
	m := Message{Canary: "podinfo", Namespace: "test", Text: "x"}
	d.Enqueue(c, m)
	b.ReportAllocs()
	for b.Loop() {
		d.Enqueue(c, m)
	}
}

func BenchmarkEnqueueDrained(b *testing.B) {
	d := NewDispatcher(&Sender{}, logr.Discard(), Options{Workers: 1, QueueSize: 1024})
	c := canaryWithAlerts("podinfo", ref("all", ""))
	m := Message{Canary: "podinfo", Namespace: "test", Text: "x"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // a consumer that takes jobs without sending them
		for {
			select {
			case <-ctx.Done():
				return
			case <-d.intake[0]:
			}
		}
	}()
	b.ReportAllocs()
	for b.Loop() {
		d.Enqueue(c, m)
	}
}

// logRecorder is a logr sink that keeps what it is given, so a test can tell errors from
// informational lines.
type logRecorder struct {
	mu     sync.Mutex
	infos  []string
	errors []string
}

type recordingSink struct {
	rec    *logRecorder
	values []any
}

func (s recordingSink) Init(logr.RuntimeInfo)  {}
func (s recordingSink) Enabled(level int) bool { return true }
func (s recordingSink) Info(level int, msg string, kv ...any) {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	s.rec.infos = append(s.rec.infos, fmt.Sprint(msg, append(slices.Clone(s.values), kv...)))
}
func (s recordingSink) Error(err error, msg string, kv ...any) {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	s.rec.errors = append(s.rec.errors, fmt.Sprint(msg, append(slices.Clone(s.values), kv...), " ", err))
}
func (s recordingSink) WithValues(kv ...any) logr.LogSink {
	return recordingSink{rec: s.rec, values: append(slices.Clone(s.values), kv...)}
}
func (s recordingSink) WithName(string) logr.LogSink { return s }

func (r *logRecorder) logger() logr.Logger { return logr.New(recordingSink{rec: r}) }

func (r *logRecorder) lines() (infos, errs []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.infos), slices.Clone(r.errors)
}

// Failed deliveries are errors, so that a filter on error lines sees them.
func TestDeliveryFailuresAreLoggedAsErrors(t *testing.T) {
	dead := newReceiver(t, 100, http.StatusForbidden)
	reader := fakeReader(t, provider("test", "dead", "discord", address(dead.URL)))
	var rec logRecorder
	d := NewDispatcher(&Sender{Reader: reader, Backoff: time.Millisecond}, rec.logger(), Options{Workers: 1, QueueSize: 1})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Start(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	c := canaryWithAlerts("podinfo", ref("dead", ""), ref("missing", ""))
	d.Enqueue(c, Message{Canary: c.Name, Namespace: c.Namespace, Text: "x"})
	waitFor(t, "two error lines", func() bool { _, errs := rec.lines(); return len(errs) == 2 })
	infos, errs := rec.lines()
	all := strings.Join(errs, "\n")
	if !strings.Contains(all, "Alert not delivered") || !strings.Contains(all, "test/dead") || !strings.Contains(all, "403") {
		t.Errorf("the failed delivery is an error naming the provider and the answer:\n%s", all)
	}
	if !strings.Contains(all, "Alert not sent") || !strings.Contains(all, `"missing" not found`) {
		t.Errorf("the unresolved provider is an error:\n%s", all)
	}
	if len(infos) != 0 {
		t.Errorf("failures logged as info: %v", infos)
	}
}

// heldReceiver answers nothing until released: a chat service that is slow, or dead when it
// is never released. It records each message and whether its POST was aborted.
type heldReceiver struct {
	*httptest.Server
	release chan struct{}
	mu      sync.Mutex
	texts   []string
	waiting int
	aborted int
}

func newHeldReceiver(t *testing.T) *heldReceiver {
	r := &heldReceiver{release: make(chan struct{})}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(req.Body).Decode(&body)
		r.mu.Lock()
		r.texts = append(r.texts, fmt.Sprint(body["message"]))
		r.waiting++
		r.mu.Unlock()
		defer func() { r.mu.Lock(); r.waiting--; r.mu.Unlock() }()
		select {
		case <-r.release:
			w.WriteHeader(http.StatusOK)
		case <-req.Context().Done():
			r.mu.Lock()
			r.aborted++
			r.mu.Unlock()
		}
	}))
	t.Cleanup(func() { r.open(); r.Close() })
	return r
}

// open lets every held and future request through.
func (r *heldReceiver) open() {
	select {
	case <-r.release:
	default:
		close(r.release)
	}
}

func (r *heldReceiver) state() (texts []string, waiting, aborted int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.texts), r.waiting, r.aborted
}

// run starts d and returns a stop function that cancels its context and waits for Start to
// return (failing the test if it does not).
func run(t *testing.T, d *Dispatcher) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Start(ctx); close(done) }()
	stopped := false
	stop = func() {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("Start did not return after its context ended")
		}
	}
	t.Cleanup(stop)
	return stop
}

func message(c *flaggerv1.Canary, text string) Message {
	return Message{Canary: c.Name, Namespace: c.Namespace, Text: text, Severity: flaggerv1.SeverityInfo}
}

// A shutdown neither aborts the alert being sent nor forgets those queued behind it: their
// Canaries' status is written, so nothing would send them again.
func TestDispatcherDeliversQueuedAlertsAtShutdown(t *testing.T) {
	slow := newHeldReceiver(t)
	reader := fakeReader(t, provider("test", "slow", "webhook", address(slow.URL)))
	sent := counter(t, alertsTotal.WithLabelValues("webhook", ResultSent))
	d := NewDispatcher(&Sender{Reader: reader, Backoff: time.Millisecond}, logr.Discard(), Options{Workers: 1})
	stop := run(t, d)
	c := canaryWithAlerts("podinfo", ref("slow", ""))
	for _, text := range []string{"started", "waiting", "promotion finished"} {
		d.Enqueue(c, message(c, text))
	}
	waitFor(t, "the first alert in flight", func() bool { _, waiting, _ := slow.state(); return waiting == 1 })

	go func() { time.Sleep(50 * time.Millisecond); slow.open() }() // the chat service answers after the shutdown began
	stop()

	texts, _, aborted := slow.state()
	if strings.Join(texts, ",") != "started,waiting,promotion finished" || aborted != 0 {
		t.Errorf("received %q, %d aborted; want all three, none aborted", texts, aborted)
	}
	if n := counter(t, alertsTotal.WithLabelValues("webhook", ResultSent)) - sent; n != 3 {
		t.Errorf("%v alerts counted as sent, want 3", n)
	}
	if d.Enqueue(c, message(c, "late")) {
		t.Error("a stopped dispatcher accepted an alert it will never send")
	}
}

// The drain is bounded: a chat service that never answers holds the shutdown for the drain
// timeout only, and what is left is counted.
func TestDispatcherDrainIsBounded(t *testing.T) {
	dead := newHeldReceiver(t) // never released while the test runs
	reader := fakeReader(t, provider("test", "dead", "gchat", address(dead.URL)))
	failed := counter(t, alertsTotal.WithLabelValues("gchat", ResultFailed))
	dropped := counter(t, alertsDropped.WithLabelValues("gchat"))
	d := NewDispatcher(&Sender{Reader: reader, Backoff: time.Millisecond, Timeout: time.Hour}, logr.Discard(),
		Options{Workers: 1, DrainTimeout: 100 * time.Millisecond})
	stop := run(t, d)
	c := canaryWithAlerts("podinfo", ref("dead", ""))
	d.Enqueue(c, message(c, "in flight"))
	waitFor(t, "the first alert in flight", func() bool { _, waiting, _ := dead.state(); return waiting == 1 })
	d.Enqueue(c, message(c, "queued"))
	stop() // fails the test unless Start returns once the drain timeout has passed

	if n := counter(t, alertsTotal.WithLabelValues("gchat", ResultFailed)) - failed; n != 1 {
		t.Errorf("%v failures counted, want 1 (the POST cut at the drain timeout)", n)
	}
	if n := counter(t, alertsDropped.WithLabelValues("gchat")) - dropped; n != 1 {
		t.Errorf("%v drops counted, want 1 (the alert never tried)", n)
	}
	waitFor(t, "the receiver to see the POST aborted", func() bool { _, _, aborted := dead.state(); return aborted == 1 })
}

// A chat service that never answers delays only its own alerts: other providers, of other
// Canaries or of the same Canary, receive theirs meanwhile.
func TestDeadProviderDelaysOnlyItsOwnAlerts(t *testing.T) {
	dead := newHeldReceiver(t) // never released while the test runs
	alive := newReceiver(t, 0, 0)
	reader := fakeReader(t,
		provider("test", "dead", "slack", address(dead.URL)),
		provider("test", "alive", "webhook", address(alive.URL)),
	)
	// One resolving worker: every Canary's alerts pass through the same queue.
	d := NewDispatcher(&Sender{Reader: reader, Timeout: time.Hour}, logr.Discard(), Options{Workers: 1, DrainTimeout: 100 * time.Millisecond})
	run(t, d)
	onDead := canaryWithAlerts("on-dead", ref("dead", ""))
	onBoth := canaryWithAlerts("on-both", ref("dead", ""), ref("alive", ""))
	onAlive := canaryWithAlerts("on-alive", ref("alive", ""))

	d.Enqueue(onDead, message(onDead, "stuck"))
	waitFor(t, "the dead provider to hold the first alert", func() bool { _, waiting, _ := dead.state(); return waiting == 1 })
	d.Enqueue(onBoth, message(onBoth, "both"))
	d.Enqueue(onAlive, message(onAlive, "alive"))
	waitFor(t, "the live provider's two alerts", func() bool { return alive.count() == 2 })
	alive.mu.Lock()
	defer alive.mu.Unlock()
	if alive.bodies[0]["message"] != "both" || alive.bodies[1]["message"] != "alive" {
		t.Errorf("the live provider received %v", alive.bodies)
	}
}

// A provider whose queue is full drops its own alerts only, and the drops are counted with
// its type.
func TestDropsAreCountedPerProvider(t *testing.T) {
	dead := newHeldReceiver(t)
	alive := newReceiver(t, 0, 0)
	reader := fakeReader(t,
		provider("test", "dead", "rocket", address(dead.URL)),
		provider("test", "alive", "msteams", address(alive.URL)),
	)
	droppedDead := counter(t, alertsDropped.WithLabelValues("rocket"))
	droppedAlive := counter(t, alertsDropped.WithLabelValues("msteams"))
	droppedEarly := counter(t, alertsDropped.WithLabelValues(ProviderUnresolved))
	d := NewDispatcher(&Sender{Reader: reader, Timeout: time.Hour}, logr.Discard(), Options{Workers: 1, QueueSize: 2, DrainTimeout: 100 * time.Millisecond})
	run(t, d)
	c := canaryWithAlerts("podinfo", ref("dead", ""), ref("alive", ""))
	queued := func() int {
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.outlets["rocket test/dead"].queue)
	}

	d.Enqueue(c, message(c, "1"))
	waitFor(t, "the dead provider to hold the first alert", func() bool { _, waiting, _ := dead.state(); return waiting == 1 })
	for i := 2; i <= 5; i++ {
		d.Enqueue(c, message(c, fmt.Sprint(i)))
		// One at a time: each is either queued for the dead provider or dropped there.
		waitFor(t, fmt.Sprintf("alert %d to be queued or dropped", i), func() bool {
			return float64(queued())+counter(t, alertsDropped.WithLabelValues("rocket"))-droppedDead == float64(i-1)
		})
	}
	waitFor(t, "the live provider's five alerts", func() bool { return alive.count() == 5 })
	if n := counter(t, alertsDropped.WithLabelValues("rocket")) - droppedDead; n != 2 {
		t.Errorf("%v drops counted for the dead rocket provider, want 2 (queue of 2 behind the one in flight)", n)
	}
	if n := counter(t, alertsDropped.WithLabelValues("msteams")) - droppedAlive; n != 0 {
		t.Errorf("%v drops counted for the live provider", n)
	}
	if n := counter(t, alertsDropped.WithLabelValues(ProviderUnresolved)) - droppedEarly; n != 0 {
		t.Errorf("%v alerts dropped before their providers were known", n)
	}
}

// A provider's worker ends when idle, and the next alert for that provider starts a new one.
func TestIdleProviderWorkerEnds(t *testing.T) {
	r := newReceiver(t, 0, 0)
	reader := fakeReader(t, provider("test", "chat", "webhook", address(r.URL)))
	d := NewDispatcher(&Sender{Reader: reader}, logr.Discard(), Options{IdleTimeout: 10 * time.Millisecond})
	run(t, d)
	c := canaryWithAlerts("podinfo", ref("chat", ""))
	outlets := func() int {
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.outlets)
	}
	d.Enqueue(c, message(c, "first"))
	waitFor(t, "the first alert", func() bool { return r.count() == 1 })
	waitFor(t, "the idle worker to end", func() bool { return outlets() == 0 })
	d.Enqueue(c, message(c, "second"))
	waitFor(t, "the second alert", func() bool { return r.count() == 2 })
}
