package canary

import (
	"fmt"
	"strings"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/alerts"
	"github.com/herald-rollouts/herald/controllers/hooks"
)

// alertPhaseChange hands the alert of the phase change from prev (if the change is worth one)
// to the dispatcher; announce calls it once the status is written. Handing over never blocks
// (see alerts.Dispatcher), so alerts cannot slow the analysis. A waiting phase is announced by
// gateAlert's rule, with the gate hook that halted when the pass knows it (p.halting).
func (p *pass) alertPhaseChange(prev flaggerv1.CanaryPhase) {
	if p.r.Alerts == nil {
		return
	}
	var (
		m  alerts.Message
		ok bool
	)
	switch next := p.c.Status.Phase; next {
	case flaggerv1.CanaryPhaseWaiting, flaggerv1.CanaryPhaseWaitingPromotion:
		m, ok = gateAlert(p.c, prev, next, p.halting)
	default:
		message := ""
		if cond := p.condition(flaggerv1.PromotedType); cond != nil {
			message = cond.Message
		}
		m, ok = phaseAlert(p.c, prev, next, message, p.failedChecks)
	}
	if !ok {
		return
	}
	p.sendAlert(m)
}

// sendAlert hands m to the dispatcher, with the Cluster field first when -cluster-name is set,
// as in Flagger.
func (p *pass) sendAlert(m alerts.Message) {
	if p.r.Alerts == nil {
		return
	}
	if name := p.r.Options.ClusterName; name != "" {
		m.Fields = append([]alerts.Field{{Name: "Cluster", Value: name}}, m.Fields...)
	}
	m.Timestamp = p.now
	p.r.Alerts.Enqueue(p.c, m)
}

// trafficIncreaseWaiting is the Promoted condition's message while a confirm-traffic-increase
// gate holds the weight; it also tells that the wait was already announced.
const trafficIncreaseWaiting = "Waiting for traffic increase approval"

// awaitTrafficIncrease notes that the confirm-traffic-increase hook named halting holds the
// canary's weight: the condition says so, and the first pass of the wait sends Flagger's alert
// ("Canary traffic increase is waiting for approval.", warn) unless the hook mutes it. Flagger
// alerts at every interval of the wait; Herald once per wait.
func (p *pass) awaitTrafficIncrease(halting, why string) {
	cond := p.condition(flaggerv1.PromotedType)
	already := cond != nil && strings.HasPrefix(cond.Message, trafficIncreaseWaiting)
	p.setMessage(trafficIncreaseWaiting + ": " + why)
	if already || muted(p.c, flaggerv1.ConfirmTrafficIncreaseHook, halting) {
		return
	}
	p.alerts = append(p.alerts, alerts.Message{
		Canary: p.c.Name, Namespace: p.c.Namespace, Phase: p.c.Status.Phase,
		Text: "Canary traffic increase is waiting for approval.", Severity: flaggerv1.SeverityWarn,
		Fields: []alerts.Field{alerts.Target(p.c)},
	})
}

// awaitApproval holds the Canary in next (Waiting or WaitingPromotion) because the gate hook
// named halting is closed; the alert, muted by that hook's muteAlert as Flagger does, is
// derived from the phase change.
func (p *pass) awaitApproval(next flaggerv1.CanaryPhase, message, halting string) {
	p.halting = halting
	p.setPhase(next, message)
}

// phaseAlert says which phase changes of Canary c are worth an alert, in Flagger's words:
// initialisation done, a run starting, a gate waiting for approval (warn), a promotion done
// and a rollback (error, with its reason). prev is the phase being left; c's status is the one
// after the change (its counters are the run's).
//
// failedChecks is the number of failed checks of a run that was rolled back (the status
// resets it when the run fails).
func phaseAlert(c *flaggerv1.Canary, prev, next flaggerv1.CanaryPhase, message string, failedChecks int) (alerts.Message, bool) {
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
		return gateAlert(c, prev, next, "")
	case flaggerv1.CanaryPhaseSucceeded:
		// A promotion ends in Finalising, passed through within the pass that finishes it;
		// Succeeded is also where a manual return to the promoted revision lands, which
		// promotes nothing.
		if prev != flaggerv1.CanaryPhaseFinalising && prev != flaggerv1.CanaryPhasePromoting {
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
			{Name: "Failed checks", Value: fmt.Sprintf("%d of %d", failedChecks, c.GetAnalysisThreshold())},
		}
	default:
		return alerts.Message{}, false
	}
	return m, true
}

// gateAlert is the warning that Canary c is entering next (Waiting or WaitingPromotion) from
// prev because a gate is closed; none when it was already there. halting names the gate hook that
// answered "closed": as in Flagger, its muteAlert silences the alert. When the hook is not
// known (""), the alert is muted only if every gate of that type asks for it: an extra
// alert is cheaper than a missed one.
func gateAlert(c *flaggerv1.Canary, prev, next flaggerv1.CanaryPhase, halting string) (alerts.Message, bool) {
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
	if prev == next || muted(c, gate, halting) {
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
