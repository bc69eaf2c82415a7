// Package backoff is the one retry policy of the requests Herald makes for a Canary that
// another service answers: analysis hooks and alerts. Attempts are spaced by an exponential
// backoff (k8s.io/apimachinery's wait.Backoff) whose pauses are capped, never by a cap that
// ends the retries early, and the caller's context ends them at once.
package backoff

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Policy says how often and how far apart a request is tried.
type Policy struct {
	// Attempts is the number of tries, the first included (at least 1).
	Attempts int
	// First is the pause after the first try; each later pause doubles it.
	First time.Duration
	// Max caps one pause (0: no cap).
	Max time.Duration
}

// Do tries until try succeeds, says its failure is not worth another try (retry false), the
// attempts are used up, or ctx ends. It returns try's last error, or ctx's error when ctx
// ended during a pause.
func Do(ctx context.Context, p Policy, try func(ctx context.Context, attempt int) (retry bool, err error)) error {
	b := wait.Backoff{Duration: p.First, Factor: 2, Steps: max(p.Attempts, 1)}
	for attempt := 1; ; attempt++ {
		retry, err := try(ctx, attempt)
		if err == nil || !retry || attempt >= max(p.Attempts, 1) {
			return err
		}
		pause := b.Step()
		if p.Max > 0 {
			pause = min(pause, p.Max)
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
