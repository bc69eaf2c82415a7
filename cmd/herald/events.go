package main

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"
)

// newEventRecorder is the core/v1 recorder of the Canary controller (see
// canary.Reconciler.Events for why core/v1). client-go's defaults do not suit a Canary, which
// announces every step of every release: its spam filter lets 25 events of one object through
// and then one per five minutes, and its aggregator folds events of the same reason and
// different messages (all of Flagger's are "Synced") into "(combined from similar events)"
// after ten. Here the events of a Canary are keyed by their message, so only repeats of the
// same message are folded (counted), and the filter lets a release's steps through.
func newEventRecorder(cfg *rest.Config, scheme *runtime.Scheme) (record.EventRecorder, func(), error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("creating the events client: %w", err)
	}
	b := record.NewBroadcasterWithCorrelatorOptions(record.CorrelatorOptions{
		KeyFunc: func(e *corev1.Event) (string, string) {
			key := strings.Join([]string{e.Source.Component, e.InvolvedObject.Kind, e.InvolvedObject.Namespace,
				e.InvolvedObject.Name, string(e.InvolvedObject.UID), e.Type, e.Reason, e.Message}, "\x00")
			return key, e.Message
		},
		// A burst of a long release's steps, then one event a second per object.
		BurstSize: 200,
		QPS:       1,
	})
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cs.CoreV1().Events("")})
	return b.NewRecorder(scheme, corev1.EventSource{Component: "herald"}), b.Shutdown, nil
}
