package canary

import (
	"fmt"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/alerts"
	"github.com/herald-rollouts/herald/controllers/hooks"
)

// queueAlert is called by setPhase before the phase changes. The alert is handed to the
// dispatcher only once the pass's status is written (afterStatus): a pass whose status write
// fails runs again, and must not alert twice. Handing over never blocks (see
// alerts.Dispatcher), so alerts cannot slow the analysis.
func (p *pass) queueAlert(next flaggerv1.CanaryPhase, message string) {
	if p.r.Alerts == nil {
		return
	}
	m, ok := phaseAlert(p.c, next, message)
	if !ok {
		return
	}
	m.Timestamp = p.now
	c, dispatcher := p.c, p.r.Alerts
	p.afterStatus = append(p.afterStatus, func() { dispatcher.Enqueue(c, m) })
}

// phaseAlert says which phase changes of Canary c are worth an alert, in Flagger's words:
// initialisation done, a run starting, a gate waiting for approval (warn), a promotion done
// and a rollback (error, with its reason). c.Status.Phase is the phase being left.
//
// A waiting gate is not announced when every gate of its type has muteAlert: Flagger mutes
// the alert of the gate that halted, but Herald's gates report only that the gate is closed,
// so with several gates of one type the alert is muted only if all of them ask for it (an
// extra alert is cheaper than a missed one).
func phaseAlert(c *flaggerv1.Canary, next flaggerv1.CanaryPhase, message string) (alerts.Message, bool) {
	prev := c.Status.Phase
	if prev == next {
		return alerts.Message{}, false
	}
	m := alerts.Message{Canary: c.Name, Namespace: c.Namespace, Phase: next, Severity: flaggerv1.SeverityInfo}
	switch next {
	case flaggerv1.CanaryPhaseInitialized:
		m.Text = fmt.Sprintf("New %s detected, initialization completed.", c.Spec.TargetRef.Kind)
		m.Fields = alerts.Metadata(c)
	case flaggerv1.CanaryPhaseProgressing:
		// Only the start of a run; Progressing is also re-entered within a run (a blue/green
		// switch to the canary after approval).
		switch prev {
		case flaggerv1.CanaryPhaseInitialized, flaggerv1.CanaryPhaseSucceeded, flaggerv1.CanaryPhaseFailed, flaggerv1.CanaryPhaseWaiting:
		default:
			return alerts.Message{}, false
		}
		m.Text = "New revision detected, progressing canary analysis."
		m.Fields = alerts.Metadata(c)
	case flaggerv1.CanaryPhaseWaiting:
		if muted(c, flaggerv1.ConfirmRolloutHook) {
			return alerts.Message{}, false
		}
		m.Text, m.Severity = "Canary is waiting for approval.", flaggerv1.SeverityWarn
		m.Fields = []alerts.Field{alerts.Target(c)}
	case flaggerv1.CanaryPhaseWaitingPromotion:
		if muted(c, flaggerv1.ConfirmPromotionHook) {
			return alerts.Message{}, false
		}
		m.Text, m.Severity = "Canary promotion is waiting for approval.", flaggerv1.SeverityWarn
		m.Fields = []alerts.Field{alerts.Target(c)}
	case flaggerv1.CanaryPhaseSucceeded:
		// A promotion ends in Finalising; Succeeded is also where a manual return to the
		// promoted revision lands, which promotes nothing.
		if prev != flaggerv1.CanaryPhaseFinalising {
			return alerts.Message{}, false
		}
		m.Text = "Canary analysis completed successfully, promotion finished."
		if c.SkipAnalysis() {
			m.Text = "Canary analysis was skipped, promotion finished."
		}
		m.Fields = []alerts.Field{alerts.Target(c)}
	case flaggerv1.CanaryPhaseFailed:
		m.Text, m.Severity = message, flaggerv1.SeverityError
		m.Fields = []alerts.Field{
			alerts.Target(c),
			{Name: "Failed checks", Value: fmt.Sprintf("%d of %d", c.Status.FailedChecks, c.GetAnalysisThreshold())},
		}
	default:
		return alerts.Message{}, false
	}
	return m, true
}

// muted reports whether every gate of type t asks for its alert to be muted.
func muted(c *flaggerv1.Canary, t flaggerv1.HookType) bool {
	a := c.GetAnalysis()
	if a == nil {
		return false
	}
	gates := hooks.Of(a.Webhooks, t)
	if len(gates) == 0 {
		return false
	}
	for _, h := range gates {
		if !h.MuteAlert {
			return false
		}
	}
	return true
}
