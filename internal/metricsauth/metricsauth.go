// Package metricsauth guards Herald's /metrics: a caller presents a bearer token, the API server
// says who it is (a TokenReview) and whether that user may get the URL's path (a
// SubjectAccessReview of a non-resource URL, which the herald-metrics-reader ClusterRole grants).
//
// controller-runtime has such a filter (pkg/metrics/filters), but it is built on
// k8s.io/apiserver's delegating authenticator and authorizer, and linking them brings CEL,
// OpenTelemetry and gRPC into Herald: a fifth of the binary (15 of 83 MB) and the memory their
// package initialisation keeps, for two API calls. This package makes the same two calls with
// client-go and keeps their answers for a short while, in a bounded table.
package metricsauth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sync/singleflight"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/cache"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/wait"
	authnclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authzclient "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

const (
	// allowedFor and deniedFor are how long an answer is reused. A scraper calls every 15–60 s
	// with the same token, so most scrapes cost no API call; a revoked binding takes effect
	// within a minute (two while every review slot is taken, see staleFor).
	allowedFor = time.Minute
	deniedFor  = 10 * time.Second
	// maxEntries bounds each of the two tables (admissions, refusals), least recently used out
	// first: a caller sending a new token on every request costs API calls (as it would with
	// any delegating filter) but never memory, and its refusals never push out an admission.
	maxEntries = 1024
	// reviewTimeout bounds the two API calls of one request, retries included.
	reviewTimeout = 10 * time.Second
	// maxReviews bounds the reviews under way at once. A review outlives a caller that hangs
	// up (up to reviewTimeout), so without a bound a caller sending a new token on every
	// request would keep a goroutine and a queued API call for each; an honest scraper needs
	// one, and reuses its answer.
	maxReviews = 16
	// staleFor is how long past its time an admission is still served when every review slot
	// is taken: callers with bad tokens must not fail the scrapes of a caller already
	// admitted. The price: anyone who can reach /metrics can take the slots, and so keep a
	// revoked token or binding working for up to two minutes after its last review.
	staleFor = allowedFor
)

// errBusy is the answer when maxReviews reviews are under way: the caller is told to retry.
var errBusy = errors.New("too many /metrics callers are being reviewed")

// reviewBackoff retries a review the API server could not answer (restarting, overloaded):
// a scrape then waits a second or so rather than fail.
var reviewBackoff = wait.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Jitter: 0.2, Steps: 3}

// Filter is a metricsserver.Options FilterProvider.
func Filter(cfg *rest.Config, hc *http.Client) (metricsserver.Filter, error) {
	authn, err := authnclient.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, fmt.Errorf("creating the TokenReview client: %w", err)
	}
	authz, err := authzclient.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, fmt.Errorf("creating the SubjectAccessReview client: %w", err)
	}
	g := newGuard(func(ctx context.Context, r request) (answer, error) {
		return review(ctx, authn.TokenReviews(), authz.SubjectAccessReviews(), r)
	})
	return g.wrap, nil
}

// request is what a decision depends on.
type request struct{ token, verb, path string }

// answer is the HTTP status a request gets (200 lets it through) and the text of a refusal.
type answer struct {
	code    int
	message string
}

// transient is an error the API server may not give again a moment later. client-go's REST
// client already retries a 429 or 5xx that carries Retry-After; this also covers a broken or
// refused connection (an API server restarting) and an answer that is not a Kubernetes Status
// (a proxy's error page, whatever its code). A refusal, such as Herald lacking the RBAC for
// reviews, is not retried: every scrape would wait for nothing.
func transient(err error) bool {
	return apierrors.IsTooManyRequests(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsServiceUnavailable(err) || apierrors.IsInternalError(err) || apierrors.IsUnexpectedServerError(err) ||
		utilnet.IsConnectionRefused(err) || utilnet.IsConnectionReset(err) || utilnet.IsProbableEOF(err)
}

// retried calls f until it succeeds or fails for good (not transient), at most
// reviewBackoff.Steps times. Unlike client-go's retry.OnError, it stops waiting between
// attempts when ctx ends, so a review and its slot never outlast reviewTimeout. The error is
// f's last, if it ran.
func retried(ctx context.Context, f func() error) error {
	var last error
	err := wait.ExponentialBackoffWithContext(ctx, reviewBackoff, func(context.Context) (bool, error) {
		last = f()
		switch {
		case last == nil:
			return true, nil
		case transient(last):
			return false, nil
		}
		return false, last
	})
	if err != nil && last != nil {
		return last
	}
	return err
}

// review asks the API server about one request.
func review(ctx context.Context, tokens authnclient.TokenReviewInterface, access authzclient.SubjectAccessReviewInterface, r request) (answer, error) {
	ctx, cancel := context.WithTimeout(ctx, reviewTimeout)
	defer cancel()
	var tr *authnv1.TokenReview
	err := retried(ctx, func() (err error) {
		tr, err = tokens.Create(ctx, &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: r.token}}, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		return answer{}, fmt.Errorf("reviewing the token: %w", err)
	}
	if !tr.Status.Authenticated {
		return answer{http.StatusUnauthorized, "Unauthorized: the API server does not accept this token"}, nil
	}
	u := tr.Status.User
	extra := make(map[string]authzv1.ExtraValue, len(u.Extra))
	for k, v := range u.Extra {
		extra[k] = authzv1.ExtraValue(v)
	}
	var sar *authzv1.SubjectAccessReview
	err = retried(ctx, func() (err error) {
		sar, err = access.Create(ctx, &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
			User: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra,
			NonResourceAttributes: &authzv1.NonResourceAttributes{Path: r.path, Verb: r.verb},
		}}, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		return answer{}, fmt.Errorf("reviewing %s's access to %s: %w", u.Username, r.path, err)
	}
	if !sar.Status.Allowed {
		return answer{http.StatusForbidden, fmt.Sprintf("Forbidden: %s may not %s %s", u.Username, r.verb, r.path)}, nil
	}
	return answer{code: http.StatusOK}, nil
}

// guard keeps recent answers, keyed by a hash of the request (never the token itself).
type guard struct {
	review func(context.Context, request) (answer, error)
	clock  clock.PassiveClock
	log    logr.Logger // the metrics server's, set by wrap
	// asking merges concurrent reviews of the same request into one.
	asking singleflight.Group
	// reviewing holds a slot for each review under way.
	reviewing chan struct{}
	// admitted holds, for allowedFor+staleFor, the time until which an admission is fresh;
	// refused holds refusals for deniedFor. A key is in one of them at most.
	admitted, refused *cache.LRUExpireCache
}

func newGuard(review func(context.Context, request) (answer, error)) *guard {
	return newGuardWithClock(review, clock.RealClock{})
}

// newGuardWithClock is newGuard on a clock tests control.
func newGuardWithClock(review func(context.Context, request) (answer, error), c clock.PassiveClock) *guard {
	return &guard{
		review: review, clock: c, log: logr.Discard(), reviewing: make(chan struct{}, maxReviews),
		admitted: cache.NewLRUExpireCacheWithClock(maxEntries, c),
		refused:  cache.NewLRUExpireCacheWithClock(maxEntries, c),
	}
}

// wrap is the metricsserver.Filter; the server calls it once, before it serves.
func (g *guard) wrap(log logr.Logger, next http.Handler) (http.Handler, error) {
	g.log = log
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		token, ok := bearer(req)
		if !ok {
			http.Error(w, "Unauthorized: a bearer token is required", http.StatusUnauthorized)
			return
		}
		a, err := g.decide(req.Context(), request{token: token, verb: strings.ToLower(req.Method), path: req.URL.Path})
		if errors.Is(err, errBusy) {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "Service Unavailable: "+errBusy.Error()+"; retry", http.StatusServiceUnavailable)
			return
		}
		if err != nil { // a failed review is logged by decide, once; a caller that hung up is not
			http.Error(w, "the caller's token could not be reviewed", http.StatusInternalServerError)
			return
		}
		if a.code != http.StatusOK {
			http.Error(w, a.message, a.code)
			return
		}
		next.ServeHTTP(w, req)
	}), nil
}

// decide answers from the kept answers (admitted or refused) when it can, and otherwise waits
// for the review of r, which it shares with every caller asking the same at the same time.
// Errors are not kept: the next scrape asks again.
func (g *guard) decide(ctx context.Context, r request) (answer, error) {
	// Lengths first, so that no two requests share a key.
	key := sha256.Sum256(fmt.Appendf(nil, "%d:%s%d:%s%s", len(r.verb), r.verb, len(r.path), r.path, r.token))
	if refusal, ok := g.refused.Get(key); ok {
		return refusal.(answer), nil
	}
	if until, ok := g.admitted.Get(key); ok && g.clock.Now().Before(until.(time.Time)) {
		return answer{code: http.StatusOK}, nil
	}
	// Detached from the first caller's context (review bounds itself by reviewTimeout): a
	// caller that hangs up fails neither the others nor the answer kept for the next scrape.
	done := g.asking.DoChan(string(key[:]), func() (any, error) {
		select {
		case g.reviewing <- struct{}{}:
			defer func() { <-g.reviewing }()
		default: // not logged: a flood would flood the log too
			return answer{}, errBusy
		}
		a, err := g.review(context.WithoutCancel(ctx), r)
		if err == nil && a.code == 0 {
			err = errors.New("the review gave no answer")
		}
		if err != nil {
			g.log.Error(err, "Cannot authorize a /metrics caller")
			return answer{}, err
		}
		g.keep(key, a)
		return a, nil
	})
	select {
	case res := <-done:
		if errors.Is(res.Err, errBusy) {
			return g.stale(key)
		}
		if res.Err != nil {
			return answer{}, res.Err
		}
		return res.Val.(answer), nil
	case <-ctx.Done():
		return answer{}, ctx.Err()
	}
}

// stale is the caller's admission that passed its time less than staleFor ago, read afresh:
// a refusal kept since the caller last looked has removed it.
func (g *guard) stale(key [sha256.Size]byte) (answer, error) {
	if _, ok := g.admitted.Get(key); ok {
		return answer{code: http.StatusOK}, nil
	}
	return answer{}, errBusy
}

// keep records an answer: an admission for allowedFor (and staleFor more, see stale), a
// refusal for deniedFor.
func (g *guard) keep(key [sha256.Size]byte, a answer) {
	if a.code == http.StatusOK {
		g.refused.Remove(key)
		g.admitted.Add(key, g.clock.Now().Add(allowedFor), allowedFor+staleFor)
		return
	}
	g.admitted.Remove(key)
	g.refused.Add(key, a, deniedFor)
}

// bearer reads the token of an "Authorization: Bearer <token>" header.
func bearer(req *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(req.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "bearer") || token == "" {
		return "", false
	}
	return token, true
}
