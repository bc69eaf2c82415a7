/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

// Package server is the load tester's HTTP API, the endpoints Flagger's users already
// call:
//
//	POST /                  run a task (see package tasks)
//	     /gate/approve      always 200: a confirm hook that always passes
//	     /gate/halt         always 403: a confirm hook that never passes
//	POST /gate/check        200 while the Canary's gate is open, else 403 (closed by default)
//	POST /gate/open, /gate/close          open or close it (202)
//	POST /rollback/check    200 while the Canary's rollback gate is open (a rollback hook)
//	POST /rollback/open, /rollback/close  open or close it (202)
//	GET  /healthz, /metrics
//
// POST bodies are hook payloads ({"name", "namespace", ...}) of at most MaxBody bytes;
// name and namespace are required, and the namespace must match -namespace-regexp.
// Every call is logged with the Canary it is about.
//
// With a gate token, the task endpoint (/) and the stateful gate endpoints
// (/gate/check|open|close, /rollback/check|open|close) answer 401 unless the call carries
// it, as a bearer token
// (Authorization: Bearer <token>, for operators' curl) or as the password of basic
// authentication (what a hook URL such as http://herald:<token>@flagger-loadtester.test/gate/check
// sends: hooks cannot set headers).
package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/herald-rollouts/herald/cmd/loadtester/internal/gates"
	"github.com/herald-rollouts/herald/cmd/loadtester/internal/metrics"
	"github.com/herald-rollouts/herald/cmd/loadtester/internal/tasks"
	"github.com/herald-rollouts/herald/internal/hookwire"
)

// MaxBody is the largest request body accepted; a payload is a few hundred bytes.
const MaxBody = 1 << 20

// Options configure the API. Gates, Tasks, Metrics and Gatherer are required.
type Options struct {
	Gates   gates.Store
	Tasks   *tasks.Runner
	Metrics *metrics.Metrics
	// Gatherer serves /metrics.
	Gatherer prometheus.Gatherer
	// Namespaces, when set, must match a payload's namespace (the caller anchors it).
	Namespaces *regexp.Regexp
	// GateToken, when set, is required by the task endpoint and the gate endpoints but
	// /gate/approve and /gate/halt.
	GateToken string
	Log       logr.Logger
}

type server struct {
	Options
}

// paths are the known endpoints, also the values of the metrics' path label.
var paths = []string{"/", "/gate/approve", "/gate/halt", "/gate/check", "/gate/open", "/gate/close",
	"/rollback/check", "/rollback/open", "/rollback/close", "/healthz", "/metrics"}

// New returns the API's handler.
func New(o Options) http.Handler {
	s := &server{o}
	mux := http.NewServeMux()
	// Tasks run commands and loads: with a gate token they need it too.
	mux.HandleFunc("/{$}", s.guarded(s.post(s.task)))
	mux.HandleFunc("/gate/approve", func(w http.ResponseWriter, r *http.Request) {
		peek(w, r)
		reply(w, http.StatusOK, "OK")
	})
	mux.HandleFunc("/gate/halt", func(w http.ResponseWriter, r *http.Request) {
		peek(w, r)
		reply(w, http.StatusForbidden, "Forbidden: /gate/halt never approves")
	})
	mux.HandleFunc("/gate/check", s.guarded(s.post(s.check(gates.Confirm))))
	mux.HandleFunc("/gate/open", s.guarded(s.post(s.set(gates.Confirm, true))))
	mux.HandleFunc("/gate/close", s.guarded(s.post(s.set(gates.Confirm, false))))
	mux.HandleFunc("/rollback/check", s.guarded(s.post(s.check(gates.Rollback))))
	mux.HandleFunc("/rollback/open", s.guarded(s.post(s.set(gates.Rollback, true))))
	mux.HandleFunc("/rollback/close", s.guarded(s.post(s.set(gates.Rollback, false))))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { reply(w, http.StatusOK, "OK") })
	mux.Handle("/metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusNotFound, fmt.Sprintf("no endpoint %s; the load tester serves %s", r.URL.Path, strings.Join(paths, ", ")))
	})
	return s.logged(mux)
}

// call is what a handler learned about a call, for its log line.
type call struct {
	canary, namespace string
}

type callKey struct{}

func callOf(r *http.Request) *call {
	c, _ := r.Context().Value(callKey{}).(*call)
	if c == nil {
		c = &call{} // a handler used without logged(), as in tests
	}
	return c
}

// guarded answers 401 to a call without the gate token, when one is set.
func (s *server) guarded(h http.HandlerFunc) http.HandlerFunc {
	if s.GateToken == "" {
		return h
	}
	want := []byte(s.GateToken)
	return func(w http.ResponseWriter, r *http.Request) {
		var got string
		if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			got = strings.TrimSpace(bearer)
		} else if _, password, ok := r.BasicAuth(); ok {
			got = password
		}
		if subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="herald-loadtester"`)
			reply(w, http.StatusUnauthorized, fmt.Sprintf("%s needs this load tester's gate token: send it as "+
				"Authorization: Bearer <token>, or in a hook URL as http://herald:<token>@<load tester>%s", r.URL.Path, r.URL.Path))
			return
		}
		h(w, r)
	}
}

// payloadHandler handles a call whose payload was read and checked.
type payloadHandler func(w http.ResponseWriter, r *http.Request, p hookwire.Payload)

// post reads and checks the payload of a POST, answering 405, 413, 400 or 403 itself.
func (s *server) post(h payloadHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			reply(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s takes a POST with a hook payload, such as "+
				`curl -d '{"name": "podinfo", "namespace": "test"}' http://<load tester>%s`, r.URL.Path, r.URL.Path))
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			reply(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is larger than %d bytes", MaxBody))
			return
		case err != nil:
			reply(w, http.StatusBadRequest, "reading the request body: "+err.Error())
			return
		}
		var p hookwire.Payload
		if err := json.Unmarshal(body, &p); err != nil {
			reply(w, http.StatusBadRequest, "the body is not a hook payload (JSON with name and namespace): "+err.Error())
			return
		}
		c := callOf(r)
		c.canary, c.namespace = p.Name, p.Namespace
		var missing []string
		if p.Name == "" {
			missing = append(missing, "name")
		}
		if p.Namespace == "" {
			missing = append(missing, "namespace")
		}
		switch len(missing) {
		case 1:
			reply(w, http.StatusBadRequest, fmt.Sprintf("the payload field %s is required", missing[0]))
			return
		case 2:
			reply(w, http.StatusBadRequest, "the payload fields name and namespace are required")
			return
		}
		// Names are keys of gates and jobs: only what Kubernetes allows for a Canary, so
		// that a name cannot impersonate another (a/b) nor fill the state with junk.
		var invalid []string
		if msgs := validation.IsDNS1123Subdomain(p.Name); len(msgs) > 0 {
			invalid = append(invalid, fmt.Sprintf("name %q is not a Kubernetes object name: %s", p.Name, strings.Join(msgs, "; ")))
		}
		if msgs := validation.IsDNS1123Label(p.Namespace); len(msgs) > 0 {
			invalid = append(invalid, fmt.Sprintf("namespace %q is not a Kubernetes namespace: %s", p.Namespace, strings.Join(msgs, "; ")))
		}
		if len(invalid) > 0 {
			reply(w, http.StatusBadRequest, "the payload's "+strings.Join(invalid, "; and "))
			return
		}
		if s.Namespaces != nil && !s.Namespaces.MatchString(p.Namespace) {
			reply(w, http.StatusForbidden, fmt.Sprintf("namespace %q is not served by this load tester (-namespace-regexp %s)",
				p.Namespace, s.Namespaces))
			return
		}
		h(w, r, p)
	}
}

// peek reads the payload of a call whose answer does not depend on it (/gate/approve,
// /gate/halt), only so that its log line names the Canary. Any body is accepted.
func peek(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil || len(body) == 0 {
		return
	}
	var p hookwire.Payload
	if json.Unmarshal(body, &p) == nil {
		c := callOf(r)
		c.canary, c.namespace = p.Name, p.Namespace
	}
}

func (s *server) task(w http.ResponseWriter, r *http.Request, p hookwire.Payload) {
	res := s.Tasks.Run(r.Context(), p)
	reply(w, res.Status, res.Body)
}

func (s *server) check(k gates.Kind) payloadHandler {
	return func(w http.ResponseWriter, r *http.Request, p hookwire.Payload) {
		open, err := s.Gates.IsOpen(r.Context(), k, gates.ID{Namespace: p.Namespace, Name: p.Name})
		switch {
		case err != nil:
			// Not 403: the hook fails either way, but the Canary's events then say why.
			reply(w, http.StatusInternalServerError, err.Error())
			return
		case open:
			reply(w, http.StatusOK, "Approved")
			return
		}
		reply(w, http.StatusForbidden, fmt.Sprintf("Forbidden: the %s of %s/%s is closed; open it with POST /%s/open",
			describe(k), p.Namespace, p.Name, k))
	}
}

func (s *server) set(k gates.Kind, open bool) payloadHandler {
	verb := map[bool]string{true: "opened", false: "closed"}[open]
	return func(w http.ResponseWriter, r *http.Request, p hookwire.Payload) {
		if err := s.Gates.Set(r.Context(), k, gates.ID{Namespace: p.Namespace, Name: p.Name}, open); err != nil {
			reply(w, http.StatusInternalServerError, err.Error())
			return
		}
		// A gate change is an operator's decision: logged on its own line, beyond the
		// call's, so it is easy to find.
		s.Log.Info("gate "+verb, "canary", p.Name, "namespace", p.Namespace, "gate", describe(k), "from", r.RemoteAddr)
		reply(w, http.StatusAccepted, fmt.Sprintf("%s of %s/%s %s", describe(k), p.Namespace, p.Name, verb))
	}
}

func describe(k gates.Kind) string {
	if k == gates.Rollback {
		return "rollback gate"
	}
	return "gate"
}

func reply(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg)
	if msg != "" && !strings.HasSuffix(msg, "\n") {
		_, _ = io.WriteString(w, "\n")
	}
	if rec, ok := w.(*recorder); ok {
		rec.message = msg
	}
}

// recorder remembers the status and message of a response for the log.
type recorder struct {
	http.ResponseWriter
	code    int
	message string
}

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// logged logs every call and counts it by path and status code. Probes and scrapes are
// logged at debug level only, as they come every few seconds.
func (s *server) logged(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		c := &call{}
		rec := &recorder{ResponseWriter: w}
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), callKey{}, c)))
		if rec.code == 0 {
			rec.code = http.StatusOK
		}
		path := "other"
		for _, p := range paths {
			if r.URL.Path == p {
				path = p
			}
		}
		s.Metrics.HTTPRequests.WithLabelValues(path, strconv.Itoa(rec.code)).Inc()

		kv := []any{"method", r.Method, "path", r.URL.Path, "code", rec.code, "duration", time.Since(start).Round(time.Microsecond).String()}
		if c.canary != "" || c.namespace != "" {
			kv = append(kv, "canary", c.canary, "namespace", c.namespace)
		}
		if rec.code >= 300 || r.URL.Path == "/" {
			kv = append(kv, "message", snippet(rec.message))
		}
		log := s.Log
		if path == "/healthz" || path == "/metrics" {
			log = log.V(1)
		}
		log.Info("call", kv...)
	})
}

// snippet keeps log lines short: a command's output can be long.
func snippet(s string) string {
	const limit = 300
	s = strings.TrimSpace(s)
	if len(s) > limit {
		return strings.ToValidUTF8(s[:limit], "") + "..."
	}
	return s
}
