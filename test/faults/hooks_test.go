package faults

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"time"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/hookwire"
)

// Paths of the hook server; each Canary of the stream calls some of them.
const (
	hookPre     = "pre"     // pre-rollout
	hookRollout = "rollout" // rollout: answers 200
	hookJudge   = "judge"   // rollout: 500 while the version under test is bad
	hookPost    = "post"    // post-rollout
	hookEvent   = "event"   // event hook: every event Herald publishes, with the revision
)

// hookCall is one request the hook server received.
type hookCall struct {
	at        time.Time
	path      string
	namespace string
	canary    string
	checksum  string
	phase     flaggerv1.CanaryPhase
	message   string // event hooks: the event's message
	code      int    // the status answered; 0 when the caller gave up first (a hung call)
}

// hookServer is a real HTTP endpoint on loopback that every hook of the stream calls. It
// records each call with the revision it was made for, so that the suite can count steps
// per revision, and it can hang (answer nothing until the caller's timeout) for a while.
type hookServer struct {
	srv *httptest.Server

	mu        sync.Mutex
	calls     []hookCall
	hangUntil time.Time
	bad       map[string]bool // namespace/canary -> the version under test fails the judge
	closing   chan struct{}
}

func startHookServer() (*hookServer, error) {
	s := &hookServer{bad: map[string]bool{}, closing: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s, nil
}

func (s *hookServer) url(path string) string { return s.srv.URL + "/" + path }

func (s *hookServer) close() {
	close(s.closing)
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// hang makes every hook but the event hooks hang until their caller gives up, for d.
func (s *hookServer) hang(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hangUntil = time.Now().Add(d)
}

// judge sets what the judge answers for a Canary's version under test.
func (s *hookServer) judge(namespace, canary string, bad bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bad[namespace+"/"+canary] = bad
}

func (s *hookServer) serve(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/")
	var p hookwire.Payload
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err := json.Unmarshal(body, &p); err != nil {
		http.Error(w, "bad payload: "+err.Error(), http.StatusBadRequest)
		return
	}
	call := hookCall{at: time.Now(), path: path, namespace: p.Namespace, canary: p.Name, checksum: p.Checksum, phase: p.Phase}
	if path == hookEvent {
		call.message = p.Metadata["eventMessage"]
	}
	s.mu.Lock()
	hanging := path != hookEvent && time.Now().Before(s.hangUntil)
	bad := s.bad[p.Namespace+"/"+p.Name]
	s.mu.Unlock()
	switch {
	case hanging:
		// Past any hook timeout of the stream: the caller gives up first.
		select {
		case <-r.Context().Done():
		case <-s.closing:
		case <-time.After(time.Minute):
		}
		call.code = 0
	case path == hookJudge && bad:
		call.code = http.StatusInternalServerError
	default:
		call.code = http.StatusOK
	}
	s.mu.Lock()
	s.calls = append(s.calls, call)
	s.mu.Unlock()
	if call.code == 0 {
		http.Error(w, "hung", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(call.code)
}

// recorded returns the calls received so far, in arrival order.
func (s *hookServer) recorded() []hookCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]hookCall(nil), s.calls...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out
}
