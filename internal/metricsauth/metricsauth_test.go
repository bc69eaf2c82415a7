package metricsauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	testingclock "k8s.io/utils/clock/testing"
)

// filtered is g's filter around a /metrics handler, made once as the metrics server does.
func filtered(t *testing.T, g *guard) http.Handler {
	t.Helper()
	h, err := g.wrap(logr.Discard(), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("flagger_info 1\n"))
	}))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// scrape sends one request through h and returns the status and body.
func scrape(t *testing.T, h http.Handler, method, path, authorization string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// reviewer answers from a table of tokens and counts its calls.
type reviewer struct {
	answers map[string]answer
	err     error
	delay   time.Duration
	// gate, when set, holds every review until it is closed.
	gate chan struct{}

	mu    sync.Mutex
	calls []request
}

func (r *reviewer) review(ctx context.Context, req request) (answer, error) {
	r.mu.Lock()
	r.calls = append(r.calls, req)
	r.mu.Unlock()
	if r.gate != nil {
		select {
		case <-r.gate:
		case <-ctx.Done():
			return answer{}, ctx.Err()
		}
	}
	select { // as an API call would, it gives up with its context
	case <-time.After(r.delay):
	case <-ctx.Done():
		return answer{}, ctx.Err()
	}
	if r.err != nil {
		return answer{}, r.err
	}
	if a, ok := r.answers[req.token]; ok {
		return a, nil
	}
	return answer{http.StatusUnauthorized, "Unauthorized"}, nil
}

func TestACallerWithoutABearerTokenIsRefusedWithoutAnAPICall(t *testing.T) {
	r := &reviewer{}
	g := newGuard(r.review)
	h := filtered(t, g)
	for _, auth := range []string{"", "Basic dXNlcjpwYXNz", "Bearer ", "Bearer"} {
		if code, _ := scrape(t, h, http.MethodGet, "/metrics", auth); code != http.StatusUnauthorized {
			t.Errorf("Authorization %q: status %d, want 401", auth, code)
		}
	}
	if len(r.calls) != 0 {
		t.Errorf("%d reviews for requests without a token", len(r.calls))
	}
}

func TestAnAnswerIsReusedForAWhileAndAskedAgainAfter(t *testing.T) {
	r := &reviewer{answers: map[string]answer{
		"scraper": {code: http.StatusOK},
		"nobody":  {http.StatusForbidden, "Forbidden: nobody may not get /metrics"},
	}}
	clock := testingclock.NewFakePassiveClock(time.Unix(1000, 0))
	g := newGuardWithClock(r.review, clock)
	h := filtered(t, g)

	code, body := scrape(t, h, http.MethodGet, "/metrics", "Bearer scraper")
	if code != http.StatusOK || body != "flagger_info 1\n" {
		t.Fatalf("allowed caller: %d %q", code, body)
	}
	code, body = scrape(t, h, http.MethodGet, "/metrics", "bearer nobody")
	if code != http.StatusForbidden || body != "Forbidden: nobody may not get /metrics\n" {
		t.Fatalf("forbidden caller: %d %q", code, body)
	}
	if got := r.calls[0]; got != (request{token: "scraper", verb: "get", path: "/metrics"}) {
		t.Errorf("reviewed %+v", got)
	}
	clock.SetTime(clock.Now().Add(deniedFor - time.Second))
	scrape(t, h, http.MethodGet, "/metrics", "Bearer scraper")
	scrape(t, h, http.MethodGet, "/metrics", "Bearer nobody")
	if len(r.calls) != 2 {
		t.Fatalf("%d reviews within %s, want 2 (answers kept)", len(r.calls), deniedFor)
	}
	clock.SetTime(clock.Now().Add(2 * time.Second)) // a refusal is asked again sooner than an admission
	scrape(t, h, http.MethodGet, "/metrics", "Bearer scraper")
	scrape(t, h, http.MethodGet, "/metrics", "Bearer nobody")
	if len(r.calls) != 3 || r.calls[2].token != "nobody" {
		t.Fatalf("after %s: reviews %+v, want the refusal asked again", deniedFor, r.calls)
	}
	clock.SetTime(clock.Now().Add(allowedFor))
	scrape(t, h, http.MethodGet, "/metrics", "Bearer scraper")
	if len(r.calls) != 4 || r.calls[3].token != "scraper" {
		t.Fatalf("after %s: reviews %+v, want the admission asked again", allowedFor, r.calls)
	}
	// An answer is for one verb and path.
	scrape(t, h, http.MethodGet, "/debug", "Bearer scraper")
	if len(r.calls) != 5 || r.calls[4].path != "/debug" {
		t.Fatalf("another path reused an answer: %+v", r.calls)
	}
}

func TestConcurrentScrapesWithOneTokenShareOneReview(t *testing.T) {
	r := &reviewer{answers: map[string]answer{"scraper": {code: http.StatusOK}}, delay: 100 * time.Millisecond}
	g := newGuard(r.review)
	h := filtered(t, g)
	var wg sync.WaitGroup
	codes := make([]int, 8)
	for i := range codes {
		wg.Go(func() { codes[i], _ = scrape(t, h, http.MethodGet, "/metrics", "Bearer scraper") })
	}
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusOK {
			t.Errorf("scrape %d: %d", i, c)
		}
	}
	if len(r.calls) != 1 {
		t.Errorf("%d reviews for %d concurrent scrapes with one token, want 1", len(r.calls), len(codes))
	}
}

func TestAFailedReviewAnswers500AndIsNotKept(t *testing.T) {
	r := &reviewer{err: errors.New("connection refused")}
	g := newGuard(r.review)
	h := filtered(t, g)
	code, body := scrape(t, h, http.MethodGet, "/metrics", "Bearer scraper")
	if code != http.StatusInternalServerError || body == "" {
		t.Fatalf("%d %q, want 500", code, body)
	}
	r.err, r.answers = nil, map[string]answer{"scraper": {code: http.StatusOK}}
	if code, _ := scrape(t, h, http.MethodGet, "/metrics", "Bearer scraper"); code != http.StatusOK {
		t.Fatalf("after the API server came back: %d", code)
	}
}

func TestAFloodOfTokensDoesNotGrowTheTable(t *testing.T) {
	r := &reviewer{answers: map[string]answer{"scraper": {code: http.StatusOK}}}
	g := newGuard(r.review)
	h := filtered(t, g)
	scrape(t, h, http.MethodGet, "/metrics", "Bearer scraper")
	for i := range 5 * maxEntries {
		scrape(t, h, http.MethodGet, "/metrics", fmt.Sprintf("Bearer forged-%d", i))
		if n := len(g.refused.Keys()); n > maxEntries {
			t.Fatalf("after %d forged tokens the table holds %d refusals, more than %d", i+1, n, maxEntries)
		}
	}
	if code, _ := scrape(t, h, http.MethodGet, "/metrics", "Bearer scraper"); code != http.StatusOK {
		t.Fatalf("the honest scraper after the flood: %d", code)
	}
	reviewed := 0
	for _, c := range r.calls {
		if c.token == "scraper" {
			reviewed++
		}
	}
	if reviewed != 1 {
		t.Errorf("the honest scraper was reviewed %d times, want once: refusals are dropped before admissions", reviewed)
	}
}

// tokens and access stand for the API server's two review endpoints.
type tokens struct {
	status authnv1.TokenReviewStatus
	got    *authnv1.TokenReview
	// failures is how many calls fail first, with failWith (default: throttled).
	failures, calls int
	failWith        error
}

func (t *tokens) Create(_ context.Context, tr *authnv1.TokenReview, _ metav1.CreateOptions) (*authnv1.TokenReview, error) {
	t.calls++
	if t.calls <= t.failures {
		if t.failWith != nil {
			return nil, t.failWith
		}
		return nil, apierrors.NewTooManyRequests("throttled", 1)
	}
	t.got = tr
	return &authnv1.TokenReview{Spec: tr.Spec, Status: t.status}, nil
}

type access struct {
	allowed bool
	got     *authzv1.SubjectAccessReview
}

func (a *access) Create(_ context.Context, sar *authzv1.SubjectAccessReview, _ metav1.CreateOptions) (*authzv1.SubjectAccessReview, error) {
	a.got = sar
	return &authzv1.SubjectAccessReview{Spec: sar.Spec, Status: authzv1.SubjectAccessReviewStatus{Allowed: a.allowed}}, nil
}

func TestReviewAsksForTheTokensUserWithItsGroups(t *testing.T) {
	user := authnv1.UserInfo{Username: "system:serviceaccount:monitoring:prometheus", UID: "u-1",
		Groups: []string{"system:serviceaccounts"}, Extra: map[string]authnv1.ExtraValue{"authentication.kubernetes.io/pod-name": {"prom-0"}}}
	tr := &tokens{status: authnv1.TokenReviewStatus{Authenticated: true, User: user}}
	sar := &access{allowed: true}
	a, err := review(context.Background(), tr, sar, request{token: "t", verb: "get", path: "/metrics"})
	if err != nil || a.code != http.StatusOK {
		t.Fatalf("review: %+v, %v", a, err)
	}
	if tr.got.Spec.Token != "t" {
		t.Errorf("TokenReview of %q", tr.got.Spec.Token)
	}
	s := sar.got.Spec
	if s.User != user.Username || s.UID != "u-1" || len(s.Groups) != 1 || s.Extra["authentication.kubernetes.io/pod-name"][0] != "prom-0" ||
		s.NonResourceAttributes == nil || *s.NonResourceAttributes != (authzv1.NonResourceAttributes{Path: "/metrics", Verb: "get"}) || s.ResourceAttributes != nil {
		t.Errorf("SubjectAccessReview spec %+v", s)
	}

	sar.allowed = false
	a, err = review(context.Background(), tr, sar, request{token: "t", verb: "get", path: "/metrics"})
	if err != nil || a.code != http.StatusForbidden || a.message != "Forbidden: system:serviceaccount:monitoring:prometheus may not get /metrics" {
		t.Fatalf("denied: %+v, %v", a, err)
	}

	tr.status, sar.got = authnv1.TokenReviewStatus{}, nil
	a, err = review(context.Background(), tr, sar, request{token: "forged", verb: "get", path: "/metrics"})
	if err != nil || a.code != http.StatusUnauthorized {
		t.Fatalf("unauthenticated: %+v, %v", a, err)
	}
	if sar.got != nil {
		t.Error("an unauthenticated token's access was reviewed")
	}
}

func TestReviewRetriesWhatTheAPIServerCouldNotAnswer(t *testing.T) {
	saved := reviewBackoff
	reviewBackoff.Duration = time.Millisecond
	t.Cleanup(func() { reviewBackoff = saved })
	tr := &tokens{status: authnv1.TokenReviewStatus{Authenticated: true, User: authnv1.UserInfo{Username: "prometheus"}}, failures: 2}
	a, err := review(context.Background(), tr, &access{allowed: true}, request{token: "t", verb: "get", path: "/metrics"})
	if err != nil || a.code != http.StatusOK || tr.calls != 3 {
		t.Fatalf("after two throttled calls: %+v, %v, %d calls; want 200 on the third", a, err, tr.calls)
	}
	tr = &tokens{failures: 100}
	_, err = review(context.Background(), tr, &access{}, request{token: "t", verb: "get", path: "/metrics"})
	if err == nil || !apierrors.IsTooManyRequests(err) || tr.calls != reviewBackoff.Steps {
		t.Fatalf("an API server that keeps refusing: %v after %d calls, want its error after %d", err, tr.calls, reviewBackoff.Steps)
	}
	// A refusal is not retried: it would come again, and every scrape would wait for it.
	tr = &tokens{failures: 100, failWith: apierrors.NewForbidden(schema.GroupResource{Group: "authentication.k8s.io", Resource: "tokenreviews"}, "", errors.New("RBAC"))}
	_, err = review(context.Background(), tr, &access{}, request{token: "t", verb: "get", path: "/metrics"})
	if !apierrors.IsForbidden(err) || tr.calls != 1 {
		t.Fatalf("Herald not allowed to review tokens: %v after %d calls, want its error after 1", err, tr.calls)
	}
}

// The waits between attempts end with the review's context: a review, and the slot it holds,
// does not outlast its timeout by the backoff's sleeps.
func TestReviewRetriesStopWithTheContext(t *testing.T) {
	saved := reviewBackoff
	reviewBackoff = wait.Backoff{Duration: 30 * time.Second, Factor: 1, Steps: 2}
	t.Cleanup(func() { reviewBackoff = saved })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	tr := &tokens{failures: 100}
	start := time.Now()
	_, err := review(ctx, tr, &access{}, request{token: "t", verb: "get", path: "/metrics"})
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the review waited %s for its next attempt after its context ended", took)
	}
	if !apierrors.IsTooManyRequests(err) || tr.calls != 1 {
		t.Fatalf("a review whose context ends while it waits to retry: %v after %d calls, want the API server's error after 1", err, tr.calls)
	}
}

func TestACallerThatHangsUpFailsNeitherTheOthersNorTheKeptAnswer(t *testing.T) {
	r := &reviewer{answers: map[string]answer{"scraper": {code: http.StatusOK}}, delay: 200 * time.Millisecond}
	g := newGuard(r.review)
	req := request{token: "scraper", verb: "get", path: "/metrics"}
	impatient, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	first := make(chan error, 1)
	go func() { _, err := g.decide(impatient, req); first <- err }()
	time.Sleep(50 * time.Millisecond) // the first caller's review is under way, and it has hung up
	a, err := g.decide(context.Background(), req)
	if err != nil || a.code != http.StatusOK {
		t.Fatalf("the second caller: %+v, %v; want 200", a, err)
	}
	if err := <-first; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the caller that hung up: %v", err)
	}
	if _, err := g.decide(context.Background(), req); err != nil || len(r.calls) != 1 {
		t.Errorf("a third scrape: %v after %d reviews, want the kept answer after 1", err, len(r.calls))
	}
}

func TestReviewsUnderWayAreBoundedAndTheCallerOverTheBoundIsToldToRetry(t *testing.T) {
	r := &reviewer{answers: map[string]answer{
		"scraper": {code: http.StatusOK},
		"late":    {code: http.StatusOK},
		"nobody":  {http.StatusForbidden, "Forbidden"},
	}}
	clock := testingclock.NewFakePassiveClock(time.Unix(0, 0))
	g := newGuardWithClock(r.review, clock)
	h := filtered(t, g)
	if code, _ := scrape(t, h, http.MethodGet, "/metrics", "Bearer scraper"); code != http.StatusOK {
		t.Fatalf("the scraper: %d", code)
	}
	if code, _ := scrape(t, h, http.MethodGet, "/metrics", "Bearer nobody"); code != http.StatusForbidden {
		t.Fatalf("nobody: %d", code)
	}
	clock.SetTime(clock.Now().Add(allowedFor + time.Second)) // its admission is to be asked again

	// Callers with forged tokens hang up at once; their reviews go on, each holding a slot.
	gate := make(chan struct{})
	r.gate = gate
	release := sync.OnceFunc(func() { close(gate) })
	t.Cleanup(release)
	for i := range maxReviews {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := g.decide(ctx, request{token: fmt.Sprintf("forged-%d", i), verb: "get", path: "/metrics"}); !errors.Is(err, context.Canceled) {
			t.Fatalf("forged caller %d: %v, want it to have hung up", i, err)
		}
	}
	for start := time.Now(); ; time.Sleep(time.Millisecond) {
		r.mu.Lock()
		n := len(r.calls)
		r.mu.Unlock()
		if n == 2+maxReviews {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("%d reviews under way, want %d", n-2, maxReviews)
		}
	}
	// serve scrapes with a token while every slot is taken; a caller that waits fails.
	serve := func(token string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		served := make(chan struct{})
		go func() { h.ServeHTTP(rec, req); close(served) }()
		select {
		case <-served:
		case <-time.After(5 * time.Second):
			release()
			t.Fatalf("%s waited for the reviews under way, want an answer at once", token)
		}
		return rec
	}
	if rec := serve("late"); rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("a caller over the bound: %d, Retry-After %q; want 503 with Retry-After 1", rec.Code, rec.Header().Get("Retry-After"))
	}
	if rec := serve("scraper"); rec.Code != http.StatusOK {
		t.Fatalf("the scraper admitted a minute ago, over the bound: %d, want its admission served", rec.Code)
	}
	if rec := serve("nobody"); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("a caller refused a minute ago, over the bound: %d, want 503 (only admissions are served stale)", rec.Code)
	}
	clock.SetTime(clock.Now().Add(staleFor))
	if rec := serve("scraper"); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("the scraper admitted %s ago, over the bound: %d, want 503", allowedFor+staleFor, rec.Code)
	}
	r.mu.Lock()
	n := len(r.calls)
	r.mu.Unlock()
	if n != 2+maxReviews {
		t.Errorf("%d reviews asked, want %d: a caller over the bound must not reach the API server", n, 2+maxReviews)
	}

	release() // the forged reviews end and give their slots back
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		code, _ := scrape(t, h, http.MethodGet, "/metrics", "Bearer late")
		if code == http.StatusOK {
			break
		}
		if code != http.StatusServiceUnavailable || time.Since(start) > 5*time.Second {
			t.Fatalf("a new caller once the reviews ended: %d, want 200", code)
		}
	}
}
