package workloads

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// A status update wakes a Canary only when it can change the pass's verdict: the test pairs
// each dropped update with one Ready or ReadyPods would read differently.
func TestProgressChangedIgnoresWhatNoPassReads(t *testing.T) {
	rolling := func() *appsv1.Deployment {
		return &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Generation: 2, Labels: map[string]string{"app": "podinfo"}},
			Status: appsv1.DeploymentStatus{
				ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: 3, ReadyReplicas: 1, AvailableReplicas: 1, UnavailableReplicas: 2,
				Conditions: []appsv1.DeploymentCondition{
					{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "ReplicaSetUpdated", Message: "progressing"},
				},
			},
		}
	}
	cases := []struct {
		name   string
		change func(d *appsv1.Deployment)
		wakes  bool
	}{
		{"resourceVersion only", func(d *appsv1.Deployment) { d.ResourceVersion = "9" }, false},
		{"unavailable count", func(d *appsv1.Deployment) { d.Status.UnavailableReplicas = 1 }, false},
		{"a second ready pod, not yet available", func(d *appsv1.Deployment) { d.Status.ReadyReplicas = 2 }, false},
		{"condition message and time", func(d *appsv1.Deployment) {
			d.Status.Conditions[0].Message = "still progressing"
			d.Status.Conditions[0].LastUpdateTime = metav1.Now()
		}, false},
		{"available count (the ready threshold reads it)", func(d *appsv1.Deployment) { d.Status.AvailableReplicas = 2 }, true},
		{"no pod ready any more (routing reads it)", func(d *appsv1.Deployment) { d.Status.ReadyReplicas = 0 }, true},
		{"observed generation", func(d *appsv1.Deployment) { d.Status.ObservedGeneration = 1 }, true},
		{"updated count", func(d *appsv1.Deployment) { d.Status.UpdatedReplicas = 2 }, true},
		{"old replicas left", func(d *appsv1.Deployment) { d.Status.Replicas = 4 }, true},
		{"progress deadline exceeded", func(d *appsv1.Deployment) {
			d.Status.Conditions[0].Status = corev1.ConditionFalse
			d.Status.Conditions[0].Reason = "ProgressDeadlineExceeded"
		}, true},
		{"generation (a new revision)", func(d *appsv1.Deployment) { d.Generation = 3 }, true},
		{"a label", func(d *appsv1.Deployment) { d.Labels["tier"] = "web" }, true},
		{"an annotation (idle marks)", func(d *appsv1.Deployment) { d.Annotations = map[string]string{"a": "b"} }, true},
		{"deletion", func(d *appsv1.Deployment) { now := metav1.Now(); d.DeletionTimestamp = &now }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			old, updated := rolling(), rolling()
			tc.change(updated)
			if got := ProgressChanged(old, updated); got != tc.wakes {
				t.Errorf("ProgressChanged = %v, want %v", got, tc.wakes)
			}
		})
	}
}

func TestProgressChangedForEachKind(t *testing.T) {
	cases := []struct {
		name     string
		old, new client.Object
		wakes    bool
	}{
		{"daemonset: ready count beyond the first pod", &appsv1.DaemonSet{Status: appsv1.DaemonSetStatus{NumberReady: 1}}, &appsv1.DaemonSet{Status: appsv1.DaemonSetStatus{NumberReady: 2}}, false},
		{"daemonset: available count", &appsv1.DaemonSet{Status: appsv1.DaemonSetStatus{NumberAvailable: 1}}, &appsv1.DaemonSet{Status: appsv1.DaemonSetStatus{NumberAvailable: 2}}, true},
		{"daemonset: scheduled count", &appsv1.DaemonSet{}, &appsv1.DaemonSet{Status: appsv1.DaemonSetStatus{DesiredNumberScheduled: 1}}, true},
		{"statefulset: current revision only", &appsv1.StatefulSet{Status: appsv1.StatefulSetStatus{CurrentRevision: "a"}}, &appsv1.StatefulSet{Status: appsv1.StatefulSetStatus{CurrentRevision: "b"}}, false},
		{"statefulset: update revision (it names the current pods)", &appsv1.StatefulSet{Status: appsv1.StatefulSetStatus{UpdateRevision: "a"}}, &appsv1.StatefulSet{Status: appsv1.StatefulSetStatus{UpdateRevision: "b"}}, true},
		{"an object of another kind", &corev1.Service{}, &corev1.Service{}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := ProgressChanged(tc.old, tc.new); got != tc.wakes {
				t.Errorf("ProgressChanged = %v, want %v", got, tc.wakes)
			}
		})
	}
}
