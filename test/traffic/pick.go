package traffic

import (
	"math"
	"time"
)

// smooth is a smooth weighted round-robin picker (the algorithm nginx uses for upstreams).
// Over any run of sum(weights) picks each choice is taken exactly weight times, and the
// choices are interleaved rather than bunched, so a 90/10 split sends exactly one request in
// ten to the second choice whatever the tick size. Tests rely on that exactness, which a
// random pick would not give.
type smooth struct {
	// sig identifies the choice list the state belongs to; when the list or its weights
	// change the state starts over, so stale credit never leaks into a new split.
	sig string
	cur []float64
}

// pick returns the index of the next choice, or -1 when no weight is positive.
func (p *smooth) pick(sig string, weights []float64) int {
	if p.sig != sig || len(p.cur) != len(weights) {
		p.sig = sig
		p.cur = make([]float64, len(weights))
	}
	total := 0.0
	best := -1
	for i, w := range weights {
		if w <= 0 {
			continue
		}
		p.cur[i] += w
		total += w
		if best < 0 || p.cur[i] > p.cur[best] {
			best = i
		}
	}
	if best >= 0 {
		p.cur[best] -= total
	}
	return best
}

// quota spreads a fraction of events evenly over a stream: hit reports true for the k-th
// event exactly when floor(k*fraction) grows, so any window of n events holds
// floor or ceil of n*fraction hits. It drives error rates and mirror percentages.
type quota struct {
	fraction float64
	seen     int64
	hits     int64
}

// hit counts one event under fraction (0..1) and says whether it is one of the chosen ones.
// A changed fraction restarts the count so the new rate holds from the change on.
func (q *quota) hit(fraction float64) bool {
	if fraction != q.fraction {
		*q = quota{fraction: fraction}
	}
	if fraction <= 0 {
		return false
	}
	q.seen++
	// The small epsilon keeps 0.1*10 (0.9999999…) from losing a hit to rounding.
	if float64(q.hits+1) <= float64(q.seen)*fraction+1e-9 {
		q.hits++
		return true
	}
	return false
}

// goldenStep spreads latencies over a range without randomness: the fractional parts of
// k*phi fill [0,1) evenly for any prefix of k, so a short window already sees the spread.
const goldenStep = 0.6180339887498949

// spread returns the k-th latency of the range lo..hi.
func spread(lo, hi time.Duration, k int64) time.Duration {
	if hi <= lo {
		return lo
	}
	_, frac := math.Modf(float64(k) * goldenStep)
	return lo + time.Duration(frac*float64(hi-lo))
}
