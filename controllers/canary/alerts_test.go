package canary

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

func TestPhaseAlert(t *testing.T) {
	gate := func(typ flaggerv1.HookType, mute bool) flaggerv1.CanaryWebhook {
		return flaggerv1.CanaryWebhook{Name: string(typ), Type: typ, URL: "http://gate", MuteAlert: mute}
	}
	canary := func(phase flaggerv1.CanaryPhase, hooks ...flaggerv1.CanaryWebhook) *flaggerv1.Canary {
		return &flaggerv1.Canary{
			ObjectMeta: metav1.ObjectMeta{Namespace: "test", Name: "podinfo"},
			Spec: flaggerv1.CanarySpec{
				TargetRef: flaggerv1.LocalObjectReference{Kind: "Deployment", Name: "podinfo"},
				Analysis:  &flaggerv1.CanaryAnalysis{Iterations: 2, Threshold: 3, Webhooks: hooks},
			},
			Status: flaggerv1.CanaryStatus{Phase: phase, FailedChecks: 3},
		}
	}
	skipped := canary(flaggerv1.CanaryPhaseFinalising)
	skipped.Spec.SkipAnalysis = true
	const failed = "Canary analysis failed, Deployment scaled to zero: Rolling back podinfo.test failed checks threshold reached 3"

	cases := []struct {
		name     string
		c        *flaggerv1.Canary
		next     flaggerv1.CanaryPhase
		message  string
		text     string // "" = no alert
		severity flaggerv1.AlertSeverity
	}{
		{"initialized", canary(flaggerv1.CanaryPhaseInitializing), flaggerv1.CanaryPhaseInitialized, "", "New Deployment detected, initialization completed.", "info"},
		{"run starts", canary(flaggerv1.CanaryPhaseSucceeded), flaggerv1.CanaryPhaseProgressing, "", "New revision detected, progressing canary analysis.", "info"},
		{"run starts after approval", canary(flaggerv1.CanaryPhaseWaiting), flaggerv1.CanaryPhaseProgressing, "", "New revision detected, progressing canary analysis.", "info"},
		{"blue/green switch within a run", canary(flaggerv1.CanaryPhaseWaitingPromotion), flaggerv1.CanaryPhaseProgressing, "", "", ""},
		{"waiting", canary(flaggerv1.CanaryPhaseSucceeded, gate(flaggerv1.ConfirmRolloutHook, false)), flaggerv1.CanaryPhaseWaiting, "", "Canary is waiting for approval.", "warn"},
		{"waiting, muted", canary(flaggerv1.CanaryPhaseSucceeded, gate(flaggerv1.ConfirmRolloutHook, true)), flaggerv1.CanaryPhaseWaiting, "", "", ""},
		{"waiting, one of two muted", canary(flaggerv1.CanaryPhaseSucceeded, gate(flaggerv1.ConfirmRolloutHook, true), gate(flaggerv1.ConfirmRolloutHook, false)),
			flaggerv1.CanaryPhaseWaiting, "", "Canary is waiting for approval.", "warn"},
		{"waiting promotion, other type muted", canary(flaggerv1.CanaryPhaseProgressing, gate(flaggerv1.ConfirmRolloutHook, true), gate(flaggerv1.ConfirmPromotionHook, false)),
			flaggerv1.CanaryPhaseWaitingPromotion, "", "Canary promotion is waiting for approval.", "warn"},
		{"waiting promotion, muted", canary(flaggerv1.CanaryPhaseProgressing, gate(flaggerv1.ConfirmPromotionHook, true)), flaggerv1.CanaryPhaseWaitingPromotion, "", "", ""},
		{"promoted", canary(flaggerv1.CanaryPhaseFinalising), flaggerv1.CanaryPhaseSucceeded, "", "Canary analysis completed successfully, promotion finished.", "info"},
		{"promoted without analysis", skipped, flaggerv1.CanaryPhaseSucceeded, "", "Canary analysis was skipped, promotion finished.", "info"},
		{"back to the promoted revision", canary(flaggerv1.CanaryPhaseWaiting), flaggerv1.CanaryPhaseSucceeded, "Back to the promoted revision.", "", ""},
		{"rolled back", canary(flaggerv1.CanaryPhaseProgressing), flaggerv1.CanaryPhaseFailed, failed, failed, "error"},
		{"promoting", canary(flaggerv1.CanaryPhaseProgressing), flaggerv1.CanaryPhasePromoting, "", "", ""},
		{"no change", canary(flaggerv1.CanaryPhaseFailed), flaggerv1.CanaryPhaseFailed, failed, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, ok := phaseAlert(tc.c, tc.next, tc.message)
			if tc.text == "" {
				if ok {
					t.Fatalf("unexpected alert %+v", m)
				}
				return
			}
			if !ok {
				t.Fatal("no alert")
			}
			if m.Text != tc.text || m.Severity != tc.severity || m.Phase != tc.next || m.Canary != "podinfo" || m.Namespace != "test" {
				t.Errorf("got %+v", m)
			}
			if len(m.Fields) == 0 || m.Fields[0].Value != "Deployment/podinfo.test" {
				t.Errorf("the first field names the target: %v", m.Fields)
			}
		})
	}
	if m, _ := phaseAlert(canary(flaggerv1.CanaryPhaseProgressing), flaggerv1.CanaryPhaseFailed, failed); m.Fields[1].Value != "3 of 3" {
		t.Errorf("a rollback says how many checks failed: %v", m.Fields)
	}
}
