/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/herald-rollouts/herald/cmd/loadtester/internal/commands"
	"github.com/herald-rollouts/herald/cmd/loadtester/internal/gates"
	"github.com/herald-rollouts/herald/cmd/loadtester/internal/jobs"
	"github.com/herald-rollouts/herald/cmd/loadtester/internal/metrics"
	"github.com/herald-rollouts/herald/cmd/loadtester/internal/tasks"
)

// tester is a load tester on loopback, wired as main wires it.
type tester struct {
	*httptest.Server
	jobs *jobs.Registry
}

type setup struct {
	stateDir   string
	allow      []string
	shell      []string
	namespaces string
	limits     jobs.Limits
	log        *logBuffer
	gateToken  string
}

// logBuffer keeps the load tester's log lines for a test to read.
type logBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (b *logBuffer) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.lines = append(b.lines, args)
	}, funcr.Options{})
}

// find returns the lines that contain every one of parts.
func (b *logBuffer) find(parts ...string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, l := range b.lines {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			out = append(out, l)
		}
	}
	return out
}

func start(t *testing.T, s setup) *tester {
	t.Helper()
	store, err := gates.Open(s.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	allow, err := commands.NewAllowList(s.allow)
	if err != nil {
		t.Fatal(err)
	}
	shell, err := commands.NewAllowList(s.shell)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	bg := jobs.New(time.Minute, s.limits)
	log := logr.Discard()
	if s.log != nil {
		log = s.log.logger()
	}
	o := Options{
		Gates:     store,
		Tasks:     &tasks.Runner{Rules: commands.Rules{Commands: allow, ShellCommands: shell}, Jobs: bg, Timeout: time.Minute, Metrics: m, Log: log},
		Metrics:   m,
		Gatherer:  reg,
		Log:       log,
		GateToken: s.gateToken,
	}
	if s.namespaces != "" {
		o.Namespaces = regexp.MustCompile(`^(?:` + s.namespaces + `)$`)
	}
	srv := httptest.NewServer(New(o))
	t.Cleanup(func() {
		srv.Close()
		_ = bg.Stop(t.Context())
	})
	return &tester{Server: srv, jobs: bg}
}

// call POSTs body (a string, or anything else as JSON) to path and returns the status and
// the response body.
func (lt *tester) call(t *testing.T, method, path string, body any) (int, string) {
	t.Helper()
	var b []byte
	switch v := body.(type) {
	case nil:
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, lt.URL+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

func payload(name, namespace string, metadata map[string]string) map[string]any {
	return map[string]any{"name": name, "namespace": namespace, "phase": "Progressing", "checksum": "abc", "metadata": metadata}
}

func (lt *tester) waitIdle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for lt.jobs.Len() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("background work did not end")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// counter is a loopback HTTP target counting the requests it receives.
func counter(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { n.Add(1) }))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestHeyLoadRunsAtItsRateOncePerCanary(t *testing.T) {
	lt := start(t, setup{})
	target, received := counter(t)
	other, otherReceived := counter(t)
	// 25 req/s per worker × 2 workers for 3 s: 150 requests.
	hey := map[string]string{"cmd": "hey -z 3s -q 25 -c 2 " + target.URL + "/"}

	code, body := lt.call(t, http.MethodPost, "/", payload("podinfo", "test", hey))
	if code != http.StatusAccepted || !strings.Contains(body, "load started for test/podinfo") {
		t.Fatalf("first call: %d %q", code, body)
	}
	// The next analysis step calls again while the load runs: no second load.
	code, body = lt.call(t, http.MethodPost, "/", payload("podinfo", "test", hey))
	if code != http.StatusAccepted || !strings.Contains(body, "already running") {
		t.Fatalf("second call: %d %q", code, body)
	}
	// The same flags in another order are the same load.
	reordered := map[string]string{"type": "cmd", "cmd": "hey -c 2 -q 25 -z 3s " + target.URL + "/"}
	if code, body = lt.call(t, http.MethodPost, "/", payload("podinfo", "test", reordered)); !strings.Contains(body, "already running") {
		t.Fatalf("reordered call: %d %q", code, body)
	}
	// Another Canary gets its own load.
	if code, body = lt.call(t, http.MethodPost, "/", payload("other", "test",
		map[string]string{"cmd": "hey -z 1s -q 10 -c 1 " + other.URL + "/"})); code != http.StatusAccepted || !strings.Contains(body, "load started") {
		t.Fatalf("other canary: %d %q", code, body)
	}
	lt.waitIdle(t)

	if got := received.Load(); got < 135 || got > 165 {
		t.Errorf("the target received %d requests, want 150 ±10%% (one load, not two)", got)
	}
	if got := otherReceived.Load(); got < 8 || got > 12 {
		t.Errorf("the other target received %d requests, want 10 ±2", got)
	}
	// Once the load is over, the next call starts a new one.
	if code, body = lt.call(t, http.MethodPost, "/", payload("podinfo", "test", hey)); !strings.Contains(body, "load started") {
		t.Errorf("after the load ended: %d %q", code, body)
	}

	_, m := lt.call(t, http.MethodGet, "/metrics", nil)
	for _, want := range []string{
		"herald_loadtester_loads_started_total 3",
		"herald_loadtester_loads_deduplicated_total 2",
		`herald_loadtester_http_requests_total{code="202",path="/"} 5`,
		`herald_loadtester_load_requests_total{code="200"}`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// Background work is bounded: distinct Canaries cannot start loads without end.
func TestLoadsBeyondTheLimitsGet429(t *testing.T) {
	lt := start(t, setup{limits: jobs.Limits{Jobs: 2, Workers: 8}})
	target, _ := counter(t)
	hey := func(c int) map[string]string {
		return map[string]string{"cmd": fmt.Sprintf("hey -z 1m -q 1 -c %d %s/", c, target.URL)}
	}
	for _, name := range []string{"a", "b"} {
		if code, body := lt.call(t, http.MethodPost, "/", payload(name, "test", hey(4))); code != http.StatusAccepted {
			t.Fatalf("%s: %d %q", name, code, body)
		}
	}
	code, body := lt.call(t, http.MethodPost, "/", payload("c", "test", hey(1)))
	if code != http.StatusTooManyRequests || !strings.Contains(body, "-max-loads 2") {
		t.Errorf("a third load: %d %q, want 429 naming -max-loads", code, body)
	}
	// A running load is still answered as running.
	if code, body := lt.call(t, http.MethodPost, "/", payload("a", "test", hey(4))); code != http.StatusAccepted || !strings.Contains(body, "already running") {
		t.Errorf("the running load: %d %q", code, body)
	}
	code, body = lt.call(t, http.MethodPost, "/", payload("d", "test", hey(9)))
	if code != http.StatusBadRequest || !strings.Contains(body, "at most 8 workers") {
		t.Errorf("a load larger than -max-workers: %d %q", code, body)
	}
	if lt.jobs.Len() != 2 {
		t.Errorf("%d jobs running, want 2", lt.jobs.Len())
	}

	lt = start(t, setup{limits: jobs.Limits{Jobs: 10, Workers: 8}})
	if code, body := lt.call(t, http.MethodPost, "/", payload("a", "test", hey(6))); code != http.StatusAccepted {
		t.Fatalf("a: %d %q", code, body)
	}
	code, body = lt.call(t, http.MethodPost, "/", payload("b", "test", hey(3)))
	if code != http.StatusTooManyRequests || !strings.Contains(body, "-max-workers 8") {
		t.Errorf("workers beyond the limit: %d %q, want 429 naming -max-workers", code, body)
	}
}

func TestExplicitLoadTask(t *testing.T) {
	lt := start(t, setup{})
	target, received := counter(t)
	code, body := lt.call(t, http.MethodPost, "/", payload("podinfo", "test", map[string]string{
		"type": "load", "url": target.URL + "/", "rate": "20", "concurrency": "2", "duration": "1s",
	}))
	if code != http.StatusAccepted || !strings.Contains(body, "at 20 req/s with 2 workers for 1s") {
		t.Fatalf("%d %q", code, body)
	}
	lt.waitIdle(t)
	if got := received.Load(); got < 18 || got > 22 {
		t.Errorf("received %d requests, want 20 ±10%%", got)
	}
	code, body = lt.call(t, http.MethodPost, "/", payload("podinfo", "test", map[string]string{"type": "load", "url": target.URL}))
	if code != http.StatusBadRequest || !strings.Contains(body, "metadata.rate is required") {
		t.Errorf("missing rate: %d %q", code, body)
	}
}

func TestGatesOpenCloseAndSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	lt := start(t, setup{stateDir: dir})
	podinfo := map[string]string{"name": "podinfo", "namespace": "test"}

	expect := func(lt *tester, path string, wantCode int, wantBody string) {
		t.Helper()
		code, body := lt.call(t, http.MethodPost, path, podinfo)
		if code != wantCode || !strings.Contains(body, wantBody) {
			t.Errorf("%s: %d %q, want %d %q", path, code, body, wantCode, wantBody)
		}
	}
	expect(lt, "/gate/check", http.StatusForbidden, "the gate of test/podinfo is closed; open it with POST /gate/open")
	expect(lt, "/rollback/check", http.StatusForbidden, "rollback gate of test/podinfo is closed")
	expect(lt, "/gate/open", http.StatusAccepted, "gate of test/podinfo opened")
	expect(lt, "/gate/check", http.StatusOK, "Approved")
	expect(lt, "/rollback/check", http.StatusForbidden, "closed") // independent of the gate
	if code, _ := lt.call(t, http.MethodPost, "/gate/check", map[string]string{"name": "podinfo", "namespace": "prod"}); code != http.StatusForbidden {
		t.Error("opening test/podinfo opened prod/podinfo")
	}
	expect(lt, "/rollback/open", http.StatusAccepted, "rollback gate of test/podinfo opened")
	expect(lt, "/rollback/check", http.StatusOK, "Approved")

	// A restarted load tester with the same state directory.
	lt.Close()
	restarted := start(t, setup{stateDir: dir})
	expect(restarted, "/gate/check", http.StatusOK, "Approved")
	expect(restarted, "/rollback/check", http.StatusOK, "Approved")
	expect(restarted, "/gate/close", http.StatusAccepted, "gate of test/podinfo closed")
	expect(restarted, "/rollback/close", http.StatusAccepted, "closed")
	again := start(t, setup{stateDir: dir})
	expect(again, "/gate/check", http.StatusForbidden, "closed")
	expect(again, "/rollback/check", http.StatusForbidden, "closed")
}

// With -gate-token, the gates answer only calls that carry it, as a bearer token or as the
// password of a hook URL.
func TestGateToken(t *testing.T) {
	lt := start(t, setup{gateToken: "s3cret"})
	body := `{"name": "podinfo", "namespace": "test"}`
	send := func(path string, auth func(*http.Request)) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, lt.URL+path, strings.NewReader(body))
		auth(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	none := func(*http.Request) {}
	for _, path := range []string{"/gate/check", "/gate/open", "/gate/close", "/rollback/check", "/rollback/open", "/rollback/close"} {
		for name, auth := range map[string]func(*http.Request){
			"none":         none,
			"wrong bearer": func(r *http.Request) { r.Header.Set("Authorization", "Bearer s3cre") },
			"wrong basic":  func(r *http.Request) { r.SetBasicAuth("herald", "nope") },
		} {
			if code, msg := send(path, auth); code != http.StatusUnauthorized || !strings.Contains(msg, "gate token") {
				t.Errorf("%s with %s: %d %q, want 401", path, name, code, msg)
			}
		}
	}
	if code, msg := send("/gate/open", func(r *http.Request) { r.Header.Set("Authorization", "Bearer s3cret") }); code != http.StatusAccepted {
		t.Errorf("bearer: %d %q", code, msg)
	}
	// A hook URL with the token as its password, as a Canary's confirm-rollout hook sends it.
	hookURL := strings.Replace(lt.URL, "http://", "http://herald:s3cret@", 1) + "/gate/check"
	resp, err := http.Post(hookURL, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("hook URL with the token: %d", resp.StatusCode)
	}
	// The fixed gates hold no state: no token needed.
	if code, _ := send("/gate/approve", none); code != http.StatusOK {
		t.Errorf("/gate/approve: %d", code)
	}
	if code, _ := send("/gate/halt", none); code != http.StatusForbidden {
		t.Errorf("/gate/halt: %d", code)
	}
	// Without a token configured, nothing is asked.
	if code, _ := start(t, setup{}).call(t, http.MethodPost, "/gate/open", body); code != http.StatusAccepted {
		t.Errorf("no token configured: %d", code)
	}
}

// failingStore is a gate store whose backend cannot be reached.
type failingStore struct{}

func (failingStore) IsOpen(context.Context, gates.Kind, gates.ID) (bool, error) {
	return false, errors.New("reading the gate state from ConfigMap test/gates: connection refused")
}
func (failingStore) Set(context.Context, gates.Kind, gates.ID, bool) error {
	return errors.New("saving the gate state in ConfigMap test/gates: connection refused")
}
func (failingStore) Where() string { return "nowhere" }

// A store that cannot be read fails the check with the reason, rather than answering
// "closed" (or "open") as if it knew.
func TestGateStoreErrorsAre500(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	srv := httptest.NewServer(New(Options{Gates: failingStore{}, Tasks: &tasks.Runner{Metrics: m, Log: logr.Discard()},
		Metrics: m, Gatherer: reg, Log: logr.Discard()}))
	defer srv.Close()
	lt := &tester{Server: srv}
	for _, path := range []string{"/gate/check", "/rollback/check", "/gate/open", "/rollback/close"} {
		code, body := lt.call(t, http.MethodPost, path, map[string]string{"name": "podinfo", "namespace": "test"})
		if code != http.StatusInternalServerError || !strings.Contains(body, "ConfigMap test/gates: connection refused") {
			t.Errorf("%s: %d %q", path, code, body)
		}
	}
}

func TestFixedGates(t *testing.T) {
	lt := start(t, setup{})
	for _, method := range []string{http.MethodPost, http.MethodGet} {
		if code, body := lt.call(t, method, "/gate/approve", payload("podinfo", "test", nil)); code != http.StatusOK || strings.TrimSpace(body) != "OK" {
			t.Errorf("%s /gate/approve: %d %q", method, code, body)
		}
		if code, _ := lt.call(t, method, "/gate/halt", nil); code != http.StatusForbidden {
			t.Errorf("%s /gate/halt: %d", method, code)
		}
	}
}

func TestCommandsOutsideTheAllowListAreRefused(t *testing.T) {
	lt := start(t, setup{})
	for _, md := range []map[string]string{
		{"type": "bash", "cmd": "curl -sd 'test' http://podinfo-canary:9898/token | grep token"},
		{"cmd": "ghz -z 1m -q 10 -c 2 --insecure podinfo.test:9898"},
		{"type": "cmd", "cmd": "echo hello | cat"},
		{"type": "helm", "cmd": "test podinfo --cleanup"},
		{"type": "kubectl", "cmd": "get pods"},
	} {
		code, body := lt.call(t, http.MethodPost, "/", payload("podinfo", "test", md))
		if code != http.StatusForbidden {
			t.Errorf("%v: %d %q, want 403", md, code, body)
			continue
		}
		if !strings.Contains(body, "refused") || !strings.Contains(body, "-allow-command") {
			t.Errorf("%v: the refusal does not say how to allow it: %q", md, body)
		}
	}
	code, body := lt.call(t, http.MethodPost, "/", payload("podinfo", "test", map[string]string{"type": "helm", "cmd": "test podinfo"}))
	if code != http.StatusForbidden || !strings.Contains(body, `"helm test podinfo"`) {
		t.Errorf("a helm refusal names the full command: %d %q", code, body)
	}
	_, m := lt.call(t, http.MethodGet, "/metrics", nil)
	if !strings.Contains(m, `herald_loadtester_commands_total{result="refused",type="bash"} 1`) {
		t.Error("refusals are not counted")
	}
}

func TestAllowedCommandsRun(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ran")
	lt := start(t, setup{allow: []string{`echo hello`, `touch \S+`}, shell: []string{`echo oops; exit 3`}})

	code, body := lt.call(t, http.MethodPost, "/", payload("podinfo", "test", map[string]string{"type": "bash", "cmd": "echo hello"}))
	if code != http.StatusOK {
		t.Errorf("allowed bash: %d %q", code, body)
	}
	code, body = lt.call(t, http.MethodPost, "/", payload("podinfo", "test",
		map[string]string{"type": "bash", "cmd": "echo hello", "returnCmdOutput": "true"}))
	if code != http.StatusOK || body != "hello\n" {
		t.Errorf("returnCmdOutput: %d %q", code, body)
	}
	code, body = lt.call(t, http.MethodPost, "/", payload("podinfo", "test", map[string]string{"type": "bash", "cmd": "echo oops; exit 3"}))
	if code != http.StatusInternalServerError || !strings.Contains(body, "exit status 3") || !strings.Contains(body, "oops") {
		t.Errorf("failing allowed shell command: %d %q", code, body)
	}
	if code, body = lt.call(t, http.MethodPost, "/", payload("podinfo", "test", map[string]string{"type": "bash", "cmd": "echo hello; id"})); code != http.StatusForbidden {
		t.Errorf("a command extending an allowed one ran: %d %q", code, body)
	}
	// An allowed cmd task runs in the background.
	code, body = lt.call(t, http.MethodPost, "/", payload("podinfo", "test", map[string]string{"cmd": "touch " + marker}))
	if code != http.StatusAccepted || !strings.Contains(body, "command started") {
		t.Fatalf("allowed cmd: %d %q", code, body)
	}
	lt.waitIdle(t)
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("the allowed cmd task did not run: %v", err)
	}
}

// An -allow-command pattern is matched against the words that run, without a shell: shell
// syntax appended to an allowed command cannot run a second command.
func TestShellSyntaxCannotRideOnAnAllowedCommand(t *testing.T) {
	dir := t.TempDir()
	touched, pwned := filepath.Join(dir, "x"), filepath.Join(dir, "pwned")
	lt := start(t, setup{allow: []string{`touch \S+`, `echo \S+`}})
	for _, md := range []map[string]string{
		{"type": "bash", "cmd": "touch " + touched + ";echo${IFS}pwned>" + pwned},
		{"type": "cmd", "cmd": "touch " + touched + ";echo${IFS}pwned>" + pwned},
		{"type": "bash", "cmd": "touch " + touched + "&&echo${IFS}pwned>" + pwned},
		{"type": "bash", "cmd": "touch $(echo " + pwned + ")"},
		{"type": "bash", "cmd": "echo pwned>" + pwned},
	} {
		code, body := lt.call(t, http.MethodPost, "/", payload("podinfo", "test", md))
		if code != http.StatusForbidden || !strings.Contains(body, "needs a shell") || !strings.Contains(body, "-allow-shell-command") {
			t.Errorf("%v: %d %q, want 403 naming -allow-shell-command", md, code, body)
		}
	}
	lt.waitIdle(t)
	for _, f := range []string{touched, pwned} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s was written", f)
		}
	}
	// Quoted metacharacters are plain text to a command run without a shell: echo prints
	// them, nothing else runs.
	quoted := "a;touch${IFS}" + pwned
	code, body := lt.call(t, http.MethodPost, "/", payload("podinfo", "test",
		map[string]string{"type": "bash", "cmd": "echo '" + quoted + "'", "returnCmdOutput": "true"}))
	if code != http.StatusOK || body != quoted+"\n" {
		t.Errorf("quoted: %d %q, want 200 %q", code, body, quoted)
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Error("a quoted payload ran")
	}
}

// -allow-shell-command lets exactly the lines it matches run with a shell.
func TestAllowShellCommand(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	lt := start(t, setup{shell: []string{`echo ok > ` + regexp.QuoteMeta(out)}})
	code, body := lt.call(t, http.MethodPost, "/", payload("podinfo", "test", map[string]string{"type": "bash", "cmd": "echo ok > " + out}))
	if code != http.StatusOK {
		t.Fatalf("%d %q", code, body)
	}
	if b, err := os.ReadFile(out); err != nil || string(b) != "ok\n" {
		t.Errorf("the shell did not run the redirection: %q %v", b, err)
	}
	if code, body = lt.call(t, http.MethodPost, "/", payload("podinfo", "test", map[string]string{"type": "bash", "cmd": "echo ok > " + out + "; id"})); code != http.StatusForbidden {
		t.Errorf("a longer shell line ran: %d %q", code, body)
	}
}

// A command's output is logged as its last few KiB, not up to a mebibyte in one line.
func TestCommandOutputIsLoggedAsACappedTail(t *testing.T) {
	logs := &logBuffer{}
	lt := start(t, setup{shell: []string{`yes \| head -c 100000`, `yes \| head -c 100000; exit 1`}, log: logs})
	for _, md := range []map[string]string{
		{"type": "bash", "cmd": "yes | head -c 100000", "logCmdOutput": "true"},
		{"type": "bash", "cmd": "yes | head -c 100000; exit 1"},
	} {
		lt.call(t, http.MethodPost, "/", payload("podinfo", "test", md))
	}
	for _, msg := range []string{"command succeeded", "command failed"} {
		lines := logs.find(msg, `"output"`)
		if len(lines) != 1 {
			t.Fatalf("%q: %d log lines with output, want 1", msg, len(lines))
		}
		// funcr escapes each newline as two bytes: the line is at most twice the tail.
		if l := lines[0]; len(l) > 2*commands.LogTail+1024 || !strings.Contains(l, "[95904 bytes before]") {
			t.Errorf("%q: a log line of %d bytes: %.200s...", msg, len(l), l)
		}
	}
}

// The fixed gates log which Canary asked, as every other call does.
func TestFixedGatesLogTheCanary(t *testing.T) {
	logs := &logBuffer{}
	lt := start(t, setup{log: logs})
	lt.call(t, http.MethodPost, "/gate/approve", payload("podinfo", "test", nil))
	lt.call(t, http.MethodPost, "/gate/halt", payload("api", "prod", nil))
	lt.call(t, http.MethodPost, "/gate/halt", "not json")
	if l := logs.find(`"path"="/gate/approve"`, `"canary"="podinfo"`, `"namespace"="test"`); len(l) != 1 {
		t.Errorf("approve: %q", logs.find(`"path"="/gate/approve"`))
	}
	if l := logs.find(`"path"="/gate/halt"`, `"canary"="api"`, `"namespace"="prod"`, `"code"=403`); len(l) != 1 {
		t.Errorf("halt: %q", logs.find(`"path"="/gate/halt"`))
	}
	if l := logs.find(`"path"="/gate/halt"`); len(l) != 2 {
		t.Errorf("a halt without a payload is still answered and logged: %q", l)
	}
}

func TestBadCallsGetClearErrors(t *testing.T) {
	lt := start(t, setup{namespaces: "test|staging"})
	for _, tc := range []struct {
		name, method, path string
		body               any
		code               int
		want               string
	}{
		{"unknown type", "POST", "/", payload("podinfo", "test", map[string]string{"type": "grpc", "cmd": "x"}), 400,
			`unknown task type "grpc" in metadata.type; use one of cmd (the default), load, bash`},
		{"unsupported type", "POST", "/", payload("podinfo", "test", map[string]string{"type": "ngrinder", "server": "x"}), 400,
			`task type "ngrinder" is not supported`},
		{"no metadata", "POST", "/", payload("podinfo", "test", nil), 400, "metadata is missing"},
		{"no cmd", "POST", "/", payload("podinfo", "test", map[string]string{"type": "bash"}), 400, "metadata.cmd is required for a bash task"},
		{"bad hey flag", "POST", "/", payload("podinfo", "test", map[string]string{"cmd": "hey -z 1m --rps 5 http://x/"}), 400,
			"flag provided but not defined: -rps"},
		{"tiny hey rate", "POST", "/", payload("podinfo", "test", map[string]string{"cmd": "hey -z 1m -q 0.0000000001 -c 1 http://x/"}), 400,
			"below the lowest rate, 0.001"},
		{"tiny load rate", "POST", "/", payload("podinfo", "test", map[string]string{"type": "load", "url": "http://x/", "rate": "1e-10"}), 400,
			"below the lowest rate, 0.001"},
		{"no name", "POST", "/gate/check", map[string]string{"namespace": "test"}, 400, "the payload field name is required"},
		{"no name nor namespace", "POST", "/", map[string]any{"metadata": map[string]string{"cmd": "x"}}, 400,
			"the payload fields name and namespace are required"},
		{"no namespace", "POST", "/gate/open", map[string]string{"name": "podinfo"}, 400, "the payload field namespace is required"},
		{"name with a slash", "POST", "/gate/open", map[string]string{"name": "a/b", "namespace": "test"}, 400,
			`name "a/b" is not a Kubernetes object name`},
		{"namespace with a slash", "POST", "/gate/open", map[string]string{"name": "b", "namespace": "test/a"}, 400,
			`namespace "test/a" is not a Kubernetes namespace`},
		{"upper case name", "POST", "/", payload("PodInfo", "test", map[string]string{"cmd": "hey -z 1s http://x/"}), 400,
			"is not a Kubernetes object name"},
		{"long namespace", "POST", "/gate/check", map[string]string{"name": "b", "namespace": strings.Repeat("n", 64)}, 400,
			"must be no more than 63 characters"},
		{"not JSON", "POST", "/gate/open", "name=podinfo", 400, "the body is not a hook payload"},
		{"too large", "POST", "/", bytes.Repeat([]byte("x"), MaxBody+1), 413, "larger than 1048576 bytes"},
		{"namespace not served", "POST", "/gate/open", map[string]string{"name": "podinfo", "namespace": "prod"}, 403,
			`namespace "prod" is not served by this load tester`},
		{"namespace regexp is anchored", "POST", "/gate/open", map[string]string{"name": "podinfo", "namespace": "mytest"}, 403,
			"not served"},
		{"GET a gate", "GET", "/gate/check", nil, 405, "takes a POST with a hook payload"},
		{"unknown path", "POST", "/gate/chek", nil, 404, "no endpoint /gate/chek"},
	} {
		code, body := lt.call(t, tc.method, tc.path, tc.body)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %q, want %d %q", tc.name, code, body, tc.code, tc.want)
		}
	}
	if code, _ := lt.call(t, "POST", "/gate/open", map[string]string{"name": "podinfo", "namespace": "staging"}); code != http.StatusAccepted {
		t.Errorf("a served namespace was refused: %d", code)
	}
	if code, body := lt.call(t, "GET", "/healthz", nil); code != http.StatusOK || strings.TrimSpace(body) != "OK" {
		t.Errorf("/healthz: %d %q", code, body)
	}
}

func TestHeyCommandsThatNeedAShell(t *testing.T) {
	lt := start(t, setup{})
	code, body := lt.call(t, http.MethodPost, "/", payload("podinfo", "test", map[string]string{"cmd": "hey -z 1m http://x/?a=1&b=2"}))
	if code != http.StatusForbidden || !strings.Contains(body, "quote the URL") {
		t.Errorf("unquoted &: %d %q", code, body)
	}
	code, body = lt.call(t, http.MethodPost, "/", payload("podinfo", "test", map[string]string{"cmd": "hey -z 1m -D /etc/hostname http://x/"}))
	if code != http.StatusForbidden || !strings.Contains(body, "hey -D sends a file of the load tester") {
		t.Errorf("-D: %d %q", code, body)
	}
}

func BenchmarkGateCheck(b *testing.B) {
	store, _ := gates.Open("")
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	h := New(Options{Gates: store, Tasks: &tasks.Runner{Metrics: m, Log: logr.Discard()}, Metrics: m, Gatherer: reg, Log: logr.Discard()})
	body := []byte(`{"name":"podinfo","namespace":"test","phase":"Progressing","checksum":"abc"}`)
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/gate/check", bytes.NewReader(body))
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
}

// A command whose program is missing is a 500 at once, not a 202 followed by a failure
// in the load tester's log.
func TestMissingProgramIsAnErrorAtOnce(t *testing.T) {
	lt := start(t, setup{allow: []string{`herald-no-such-ghz .*`, `helm test \S+`}})
	for _, md := range []map[string]string{
		{"cmd": "herald-no-such-ghz -z 1m -q 10 -c 2 --insecure podinfo.test:9898"},
		{"type": "bash", "cmd": "herald-no-such-ghz -z 1m podinfo.test:9898"},
	} {
		code, body := lt.call(t, http.MethodPost, "/", payload("podinfo", "test", md))
		if code != http.StatusInternalServerError || !strings.Contains(body, "herald-no-such-ghz is not installed in this load tester") {
			t.Errorf("%v: %d %q", md, code, body)
		}
	}
	if _, err := exec.LookPath("helm"); err != nil {
		code, body := lt.call(t, http.MethodPost, "/", payload("podinfo", "test", map[string]string{"type": "helm", "cmd": "test podinfo"}))
		if code != http.StatusInternalServerError || !strings.Contains(body, "helm is not installed in this load tester") {
			t.Errorf("helm: %d %q", code, body)
		}
	}
	// A refused command is refused before the check: callers learn nothing of what is installed.
	if code, body := lt.call(t, http.MethodPost, "/", payload("podinfo", "test", map[string]string{"cmd": "herald-no-such-tool x"})); code != http.StatusForbidden {
		t.Errorf("refused: %d %q", code, body)
	}
	if lt.jobs.Len() != 0 {
		t.Error("a background job was started for a missing program")
	}
}

// With -gate-token, the task endpoint needs the token too: reaching the load tester is not
// enough to start loads or run commands.
func TestGateTokenCoversTasks(t *testing.T) {
	target, hits := counter(t)
	lt := start(t, setup{gateToken: "s3cret", allow: []string{`echo hello`}})
	load := payload("podinfo", "test", map[string]string{"cmd": "hey -z 1s -q 1 -c 1 " + target.URL + "/"})
	bash := payload("podinfo", "test", map[string]string{"type": "bash", "cmd": "echo hello"})
	for _, p := range []map[string]any{load, bash} {
		if code, body := lt.call(t, http.MethodPost, "/", p); code != http.StatusUnauthorized || !strings.Contains(body, "gate token") {
			t.Errorf("%v without the token: %d %q, want 401", p["metadata"], code, body)
		}
	}
	time.Sleep(1500 * time.Millisecond)
	if n := hits.Load(); n != 0 {
		t.Errorf("a load ran without the token: %d requests", n)
	}
	// A hook URL with the token as its password, as Herald sends it.
	withToken := &tester{Server: &httptest.Server{URL: strings.Replace(lt.URL, "http://", "http://herald:s3cret@", 1)}}
	if code, body := withToken.call(t, http.MethodPost, "/", bash); code != http.StatusOK {
		t.Errorf("with the token: %d %q", code, body)
	}
}

// Blocking commands hold a slot of -max-loads while they run, like background work.
func TestBlockingTasksCountAgainstTheLimits(t *testing.T) {
	lt := start(t, setup{limits: jobs.Limits{Jobs: 2, Workers: 8}, allow: []string{`sleep \d+`, `echo hello`}})
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range 2 {
		wg.Go(func() {
			codes[i], _ = lt.call(t, http.MethodPost, "/", payload(fmt.Sprintf("slow-%d", i), "test", map[string]string{"type": "bash", "cmd": "sleep 2"}))
		})
	}
	deadline := time.Now().Add(5 * time.Second)
	for lt.jobs.Len() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	code, body := lt.call(t, http.MethodPost, "/", payload("third", "test", map[string]string{"type": "bash", "cmd": "echo hello"}))
	if code != http.StatusTooManyRequests || !strings.Contains(body, "-max-loads 2") {
		t.Errorf("a third command while two block: %d %q, want 429", code, body)
	}
	target, _ := counter(t)
	code, body = lt.call(t, http.MethodPost, "/", payload("load", "test", map[string]string{"cmd": "hey -z 1s -q 1 -c 1 " + target.URL + "/"}))
	if code != http.StatusTooManyRequests {
		t.Errorf("a load while two commands block: %d %q, want 429", code, body)
	}
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusOK {
			t.Errorf("blocking command %d: %d", i, c)
		}
	}
	if n := lt.jobs.Len(); n != 0 {
		t.Errorf("%d jobs left after the commands ended", n)
	}
	if code, body := lt.call(t, http.MethodPost, "/", payload("third", "test", map[string]string{"type": "bash", "cmd": "echo hello"})); code != http.StatusOK {
		t.Errorf("once room is free: %d %q", code, body)
	}
}
