package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDo(t *testing.T) {
	fail := errors.New("no")
	cases := []struct {
		name     string
		policy   Policy
		answers  []error
		retry    bool
		wantTry  int
		wantErr  error
		maxPause time.Duration
	}{
		{"first try succeeds", Policy{Attempts: 3, First: time.Millisecond}, []error{nil}, true, 1, nil, 0},
		{"succeeds on the third", Policy{Attempts: 3, First: time.Millisecond}, []error{fail, fail, nil}, true, 3, nil, 0},
		{"attempts used up", Policy{Attempts: 3, First: time.Millisecond}, []error{fail, fail, fail, nil}, true, 3, fail, 0},
		{"not worth retrying", Policy{Attempts: 3, First: time.Millisecond}, []error{fail, nil}, false, 1, fail, 0},
		{"zero attempts is one", Policy{First: time.Millisecond}, []error{fail, nil}, true, 1, fail, 0},
		{"pauses capped", Policy{Attempts: 4, First: 20 * time.Millisecond, Max: 25 * time.Millisecond}, []error{fail, fail, fail, nil}, true, 4, nil, 30 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tries := 0
			var last time.Time
			var longest time.Duration
			err := Do(context.Background(), tc.policy, func(_ context.Context, attempt int) (bool, error) {
				if attempt != tries+1 {
					t.Fatalf("attempt %d after %d tries", attempt, tries)
				}
				if !last.IsZero() {
					longest = max(longest, time.Since(last))
				}
				last = time.Now()
				tries++
				return tc.retry, tc.answers[tries-1]
			})
			if tries != tc.wantTry || !errors.Is(err, tc.wantErr) {
				t.Fatalf("%d tries, error %v; want %d, %v", tries, err, tc.wantTry, tc.wantErr)
			}
			if tc.maxPause > 0 && longest > tc.maxPause+50*time.Millisecond {
				t.Errorf("a pause of %s, the cap is %s", longest, tc.policy.Max)
			}
		})
	}
}

func TestDoStopsWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	tries := 0
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	start := time.Now()
	err := Do(ctx, Policy{Attempts: 10, First: time.Hour}, func(context.Context, int) (bool, error) {
		tries++
		return true, errors.New("down")
	})
	if !errors.Is(err, context.Canceled) || tries != 1 || time.Since(start) > 5*time.Second {
		t.Fatalf("error %v after %d tries and %s", err, tries, time.Since(start))
	}
}
