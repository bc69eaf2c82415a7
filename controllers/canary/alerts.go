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
	p.alertAfterStatus(m)
}

// alertAfterStatus hands m to the dispatcher once the pass's status is written.
func (p *pass) alertAfterStatus(m alerts.Message) {
	m.Timestamp = p.now
	c, dispatcher := p.c, p.r.Alerts
	p.afterStatus = append(p.afterStatus, func() { dispatcher.Enqueue(c, m) })
}

// awaitApproval holds the Canary in next (Waiting or WaitingPromotion) because the gate hook
// named halting is closed, and announces it unless that hook has muteAlert, as Flagger does.
// It leaves the status exactly as setPhase(next, message) does; only the alert differs, since
// setPhase does not know which hook halted.
func (p *pass) awaitApproval(next flaggerv1.CanaryPhase, message, halting string) {
	if p.r.Alerts != nil {
		if m, ok := gateAlert(p.c, next, halting); ok {
			p.alertAfterStatus(m)
		}
	}
	if s := &p.c.Status; s.Phase != next {
		// Entered here, so that setPhase does not announce the change a second time; the
		// transition time is the one setPhase gives a phase change.
		s.LastTransitionTime, s.Phase = p.nowTime(), next
	}
	p.setPhase(next, message)
}

// phaseAlert says which phase changes of Canary c are worth an alert, in Flagger's words:
// initialisation done, a run starting, a gate waiting for approval (warn), a promotion done
// and a rollback (error, with its reason). c.Status.Phase is the phase being left.
//
// A waiting phase entered here (through setPhase) does not say which gate hook halted, so its
// alert follows gateAlert's rule for an unknown hook; awaitApproval knows the hook.
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
	case flaggerv1.CanaryPhaseWaiting, flaggerv1.CanaryPhaseWaitingPromotion:
		return gateAlert(c, next, "")
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

// gateAlert is the warning that Canary c is entering next (Waiting or WaitingPromotion)
// because a gate is closed; none when it is already there. halting names the gate hook that
// answered "closed": as in Flagger, its muteAlert silences the alert. When the hook is not
// known (""), the alert is muted only if every gate of that type asks for it: an extra
// alert is cheaper than a missed one.
func gateAlert(c *flaggerv1.Canary, next flaggerv1.CanaryPhase, halting string) (alerts.Message, bool) {
	var gate flaggerv1.HookType
	var text string
	switch next {
	case flaggerv1.CanaryPhaseWaiting:
		gate, text = flaggerv1.ConfirmRolloutHook, "Canary is waiting for approval."
	case flaggerv1.CanaryPhaseWaitingPromotion:
		gate, text = flaggerv1.ConfirmPromotionHook, "Canary promotion is waiting for approval."
	default:
		return alerts.Message{}, false
	}
	if c.Status.Phase == next || muted(c, gate, halting) {
		return alerts.Message{}, false
	}
	return alerts.Message{
		Canary: c.Name, Namespace: c.Namespace, Phase: next,
		Text: text, Severity: flaggerv1.SeverityWarn,
		Fields: []alerts.Field{alerts.Target(c)},
	}, true
}

// muted reports whether the alert of a closed gate of type t is muted: by the muteAlert of
// the hook named halting, or, with halting unknown (""), by every gate of type t.
func muted(c *flaggerv1.Canary, t flaggerv1.HookType, halting string) bool {
	a := c.GetAnalysis()
	if a == nil {
		return false
	}
	gates := hooks.Of(a.Webhooks, t)
	if halting != "" {
		for _, h := range gates {
			if h.Name == halting {
				return h.MuteAlert
			}
		}
		return false
	}
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
