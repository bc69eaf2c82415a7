package contract

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPrimaryName(t *testing.T) {
	if got := PrimaryName("podinfo"); got != "podinfo-primary" {
		t.Fatalf("PrimaryName = %q", got)
	}
}

func TestSelectorLabel(t *testing.T) {
	cases := []struct {
		name      string
		selector  *metav1.LabelSelector
		tmpl      map[string]string
		wantLabel string
		wantValue string
		wantErr   string
	}{
		{
			name:      "app",
			selector:  &metav1.LabelSelector{MatchLabels: map[string]string{"app": "podinfo"}},
			tmpl:      map[string]string{"app": "podinfo", "tier": "web"},
			wantLabel: "app", wantValue: "podinfo",
		},
		{
			name:      "kubernetes name label",
			selector:  &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "podinfo", "other": "x"}},
			tmpl:      map[string]string{"app.kubernetes.io/name": "podinfo", "other": "x"},
			wantLabel: "app.kubernetes.io/name", wantValue: "podinfo",
		},
		{
			name:      "two supported: first in supported order wins",
			selector:  &metav1.LabelSelector{MatchLabels: map[string]string{"name": "n", "app": "a"}},
			tmpl:      map[string]string{"name": "n", "app": "a"},
			wantLabel: "app", wantValue: "a",
		},
		{
			name:     "nil selector",
			selector: nil,
			tmpl:     map[string]string{"app": "podinfo"},
			wantErr:  "must contain one of the labels",
		},
		{
			name:     "missing",
			selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "web"}},
			tmpl:     map[string]string{"tier": "web", "app": "podinfo"},
			wantErr:  `must contain one of the labels ["app", "name", "app.kubernetes.io/name"]`,
		},
		{
			name: "only in matchExpressions",
			selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"podinfo"}},
			}},
			tmpl:    map[string]string{"app": "podinfo"},
			wantErr: "must contain one of the labels",
		},
		{
			name:     "not on template",
			selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "podinfo"}},
			tmpl:     map[string]string{"name": "podinfo"},
			wantErr:  `pod template does not carry the selector label "app"`,
		},
		{
			name:     "value mismatch",
			selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "podinfo"}},
			tmpl:     map[string]string{"app": "other"},
			wantErr:  `selector label "app" is "podinfo" in spec.selector but "other" in the pod template`,
		},
		{
			name:     "empty value",
			selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": ""}},
			tmpl:     map[string]string{"app": ""},
			wantErr:  "empty value",
		},
		{
			name:     "value too long for the suffix",
			selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": strings.Repeat("a", 60)}},
			tmpl:     map[string]string{"app": strings.Repeat("a", 60)},
			wantErr:  "cannot be suffixed",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, v, err := SelectorLabel(tc.selector, tc.tmpl, DefaultSelectorLabels)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if l != tc.wantLabel || v != tc.wantValue {
				t.Fatalf("got %q=%q, want %q=%q", l, v, tc.wantLabel, tc.wantValue)
			}
		})
	}
}
