// Package alerts sends a Canary's alerts to chat services through AlertProviders (Slack, MS
// Teams, Discord, Rocket.Chat, Google Chat, or a generic JSON webhook) and to the global
// provider configured by flags.
//
// Delivery is asynchronous: the controller hands an alert to a Dispatcher, which never blocks
// it; workers resolve the providers, encode the message in each provider's JSON shape and POST
// it with a few short retries. An alert that cannot be queued or delivered is logged and
// counted, never allowed to slow the analysis.
package alerts

import (
	"fmt"
	"strings"
	"time"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// Severity of an alert: info, warn or error.
type Severity = flaggerv1.AlertSeverity

// Field is one labelled value shown under the message (a Slack field, a Teams fact, ...).
type Field struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Message is one alert, the same for every provider. It is also the body the generic
// "webhook" provider receives, so its JSON names are part of Herald's API.
type Message struct {
	// Canary is the Canary's name; Namespace its namespace.
	Canary    string `json:"canary"`
	Namespace string `json:"namespace"`
	// Phase is the phase the Canary entered.
	Phase flaggerv1.CanaryPhase `json:"phase,omitempty"`
	// Text is the human message, e.g. "Canary analysis completed successfully, promotion finished."
	Text     string   `json:"message"`
	Severity Severity `json:"severity"`
	Fields   []Field  `json:"fields,omitempty"`
	// Timestamp is when the event happened (not when it was delivered).
	Timestamp time.Time `json:"timestamp"`
}

// Subject is "<canary>.<namespace>", the way Flagger names a Canary in its alerts.
func (m Message) Subject() string { return m.Canary + "." + m.Namespace }

// rank orders severities; an empty severity is info.
func rank(s Severity) int {
	switch s {
	case flaggerv1.SeverityWarn:
		return 1
	case flaggerv1.SeverityError:
		return 2
	}
	return 0
}

// Wants reports whether an alert subscribed at severity subscribed receives a message of
// severity sev: info receives everything, warn receives warn and error, error only errors.
// An empty subscription means info; Flagger sends nothing to it, contrary to its own
// documentation (a known defect), and Herald follows the documentation.
func Wants(subscribed, sev Severity) bool {
	return rank(sev) >= rank(subscribed)
}

// Metadata describes the Canary's setup, as Flagger attaches it to the alerts that start a
// run: target, failed-checks threshold, progress deadline, traffic routing and strategy.
func Metadata(c *flaggerv1.Canary) []Field {
	fields := []Field{
		Target(c),
		{Name: "Failed checks threshold", Value: fmt.Sprint(c.GetAnalysisThreshold())},
		{Name: "Progress deadline", Value: fmt.Sprintf("%ds", c.GetProgressDeadlineSeconds())},
	}
	if a := c.GetAnalysis(); a != nil {
		routing := ""
		switch {
		case a.StepWeight > 0:
			routing = fmt.Sprintf("Weight step: %d max: %d", a.StepWeight, c.GetMaxWeight())
		case len(a.StepWeights) > 0:
			steps := make([]string, len(a.StepWeights))
			for i, w := range a.StepWeights {
				steps[i] = fmt.Sprint(w)
			}
			routing = fmt.Sprintf("Weight steps: %s max: %d", strings.Join(steps, ","), c.GetMaxWeight())
		case len(a.Match) > 0 && a.Iterations > 0:
			routing = "A/B Testing"
		case a.Iterations > 0:
			routing = "Blue/Green"
		}
		if routing != "" {
			fields = append(fields, Field{Name: "Traffic routing", Value: routing})
		}
	}
	return append(fields, Field{Name: "Strategy", Value: c.DeploymentStrategy()})
}

// Target is the field naming the Canary's workload, e.g. "Deployment/podinfo.test".
func Target(c *flaggerv1.Canary) Field {
	return Field{Name: "Target", Value: fmt.Sprintf("%s/%s.%s", c.Spec.TargetRef.Kind, c.Spec.TargetRef.Name, c.Namespace)}
}
