package contract

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// PrimarySuffix is appended to the name of every object Herald copies for the primary (the
// workload, its autoscaler, its configs) and to the selector label's value for its pods.
const PrimarySuffix = "-primary"

// PrimaryName is the name of the primary copy of an object.
func PrimaryName(name string) string { return name + PrimarySuffix }

// DefaultSelectorLabels are the labels that name a workload's pods, in order of preference,
// unless -selector-labels says otherwise (Flagger's default list).
var DefaultSelectorLabels = []string{"app", "name", "app.kubernetes.io/name"}

// SelectorLabel is the one rule of which selector label names a workload: the first label of
// supported (in that order) present in selector.matchLabels, as in Flagger. The Services select
// the workload's pods by it, and the primary's pods carry value+PrimarySuffix. The pod template
// must carry the label with the same value, the value must not be empty, and value+PrimarySuffix
// must still be a valid label value.
func SelectorLabel(selector *metav1.LabelSelector, templateLabels map[string]string, supported []string) (label, value string, err error) {
	found := SelectorLabelsIn(selector, supported)
	if len(found) == 0 {
		return "", "", fmt.Errorf("spec.selector.matchLabels must contain one of the labels %s", quoteList(supported))
	}
	label = found[0]
	value = selector.MatchLabels[label]
	if value == "" {
		return "", "", fmt.Errorf("selector label %q has an empty value", label)
	}
	tv, ok := templateLabels[label]
	if !ok {
		return "", "", fmt.Errorf("pod template does not carry the selector label %q", label)
	}
	if tv != value {
		return "", "", fmt.Errorf("selector label %q is %q in spec.selector but %q in the pod template", label, value, tv)
	}
	if errs := validation.IsValidLabelValue(value + PrimarySuffix); len(errs) > 0 {
		return "", "", fmt.Errorf("selector label %q value %q cannot be suffixed with %q: %s", label, value, PrimarySuffix, strings.Join(errs, "; "))
	}
	return label, value, nil
}

// SelectorLabelsIn lists the labels of supported present in selector.matchLabels, in the order
// of supported; SelectorLabel uses the first.
func SelectorLabelsIn(selector *metav1.LabelSelector, supported []string) []string {
	if selector == nil {
		return nil
	}
	var found []string
	for _, l := range supported {
		if _, ok := selector.MatchLabels[l]; ok {
			found = append(found, l)
		}
	}
	return found
}

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
