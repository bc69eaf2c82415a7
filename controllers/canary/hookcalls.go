package canary

import (
	"context"
	"errors"
	"fmt"
	"time"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/hooks"
)

// Hook calls run off the reconcile workers, in the hook runner (controllers/hooks.Runner): a
// pass asks for the call of its step and returns; the runner makes it, with its time capped by
// the analysis interval, and wakes the Canary when it ends; the next pass reads the result. A
// hook that hangs delays only its own Canary. Asking again for the same step's call gives that
// call, never a second one.

// errHooksPending: a step's hook calls are still running in the hook runner.
var errHooksPending = errors.New("hook calls still running")

// callHook makes hook h's call for step: through the hook runner when there is one (done is
// false while the call waits or runs, or when the runner is too busy to take it: the next
// pass asks again), else at once.
func (p *pass) callHook(ctx context.Context, h flaggerv1.CanaryWebhook, step, rev string) (done bool, err error) {
	if p.r.HookRunner == nil {
		return true, p.r.Hooks.Call(ctx, h, p.hookPayload(h, rev))
	}
	key := hooks.Key{Namespace: p.c.Namespace, Canary: p.c.Name, Step: step, Hook: h.Name}
	res, err := p.r.HookRunner.Do(key, h, p.hookPayload(h, rev), p.c.GetAnalysisInterval())
	if err != nil {
		p.log.Info("Hook call not started, asking again on the next pass", "hook", h.Name, "reason", err.Error())
		return false, nil
	}
	return res.Done, res.Err
}

// stepKey names the analysis step of a hook of type t: a step's calls are made once, and the
// next step (a new weight, iteration, failed check or waiting interval: lastTransitionTime
// moves with each) makes new ones.
func (p *pass) stepKey(t flaggerv1.HookType, rev string) string {
	s := p.c.Status
	return fmt.Sprintf("%s/%s/%s/w%d/i%d/f%d/t%d", rev, t, s.Phase, s.CanaryWeight, s.Iterations, s.FailedChecks, s.LastTransitionTime.Unix())
}

// gateStep names the asking of a gate: a closed gate is asked again each analysis interval.
func (p *pass) gateStep(t flaggerv1.HookType, rev string) string {
	return p.gateStepAt(t, rev, p.now)
}

func (p *pass) gateStepAt(t flaggerv1.HookType, rev string, at time.Time) string {
	interval := p.c.GetAnalysisInterval()
	return fmt.Sprintf("%s/%s/%s/w%d/i%d/at%d", rev, t, p.c.Status.Phase, p.c.Status.CanaryWeight, p.c.Status.Iterations, at.Truncate(interval).Unix())
}

// callGate asks hook h of a gate. A call may run up to a whole interval, so it often ends in
// the next interval's window: its answer, not yet read, is that window's answer (else a gate
// whose endpoint takes the whole interval would never be read, and each window would start a
// new call). A call of the previous window still running is waited for.
func (p *pass) callGate(ctx context.Context, h flaggerv1.CanaryWebhook, t flaggerv1.HookType, rev string) (done bool, err error) {
	step := p.gateStep(t, rev)
	if p.r.HookRunner != nil {
		key := hooks.Key{Namespace: p.c.Namespace, Canary: p.c.Name, Step: step, Hook: h.Name}
		if _, known := p.r.HookRunner.Lookup(key); !known {
			interval := p.c.GetAnalysisInterval()
			windowStart := p.now.Truncate(interval)
			prev := key
			prev.Step = p.gateStepAt(t, rev, windowStart.Add(-interval))
			if res, ok := p.r.HookRunner.Lookup(prev); ok && (!res.Done || !res.Finished.Before(windowStart)) {
				return res.Done, res.Err
			}
		}
	}
	return p.callHook(ctx, h, step, rev)
}
