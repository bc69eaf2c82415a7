package workloads

import (
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/herald-rollouts/herald/internal/contract"
)

func targetStatefulSet() *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: "db", Namespace: "test", CreationTimestamp: metav1.Now(),
			Labels:      map[string]string{"app": "db", contract.LabelCanary: "db"},
			Annotations: map[string]string{contract.AnnotationIdle: "r1", "note": "n"},
		},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptr.To[int32](0),
			Selector:            &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			ServiceName:         "db-headless",
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "db"}},
				Spec:       corev1.PodSpec{Volumes: []corev1.Volume{cmVol("c", "cm")}},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
				},
				Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound},
			}},
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr.To[int32](2), MaxUnavailable: ptr.To(intstr.FromInt32(2))}},
			MinReadySeconds:      3,
			RevisionHistoryLimit: ptr.To[int32](4),
		},
	}
}

func TestPrimaryStatefulSet(t *testing.T) {
	target := targetStatefulSet()
	orig := target.DeepCopy()
	got := PrimaryStatefulSet(target, nil, "app", "db", trackedRenames, ptr.To[int32](3), LabelPrefixes{"*"})
	if !equality.Semantic.DeepEqual(target, orig) {
		t.Fatal("target modified")
	}
	want := &appsv1.StatefulSet{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: metav1.ObjectMeta{
			Name: "db-primary", Namespace: "test",
			Labels: map[string]string{"app": "db-primary"}, Annotations: map[string]string{"note": "n"},
		},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptr.To[int32](3),
			Selector:            &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db-primary"}},
			ServiceName:         "db-headless-primary",
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "db-primary"}},
				Spec:       corev1.PodSpec{Volumes: []corev1.Volume{cmVol("c", "cm-primary")}},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec:       target.Spec.VolumeClaimTemplates[0].Spec,
			}},
			// No partition: a promotion must reach every pod.
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{MaxUnavailable: ptr.To(intstr.FromInt32(2))}},
			MinReadySeconds:      3,
			RevisionHistoryLimit: ptr.To[int32](4),
		},
	}
	if !equality.Semantic.DeepEqual(got, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", got, want)
	}

	// An OnDelete target still gives a primary that rolls.
	target.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
	if got := PrimaryStatefulSet(target, nil, "app", "db", nil, nil, nil); got.Spec.UpdateStrategy.Type != appsv1.RollingUpdateStatefulSetStrategyType {
		t.Fatalf("update strategy %q", got.Spec.UpdateStrategy.Type)
	}
}

// The live primary keeps what a StatefulSet cannot change once created.
func TestStatefulSetUpdatePrimaryKeepsImmutableFields(t *testing.T) {
	live := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db-primary", ResourceVersion: "7",
			Annotations: map[string]string{"deployment.kubernetes.io/revision": "2"}},
		Spec: appsv1.StatefulSetSpec{
			Selector:             &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db-primary", "old": "x"}},
			ServiceName:          "older",
			PodManagementPolicy:  appsv1.OrderedReadyPodManagement,
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "old-data"}}},
		},
	}
	desired := Wrap(targetStatefulSet()).Primary(nil, "app", "db", nil, ptr.To[int32](2), LabelPrefixes{"*"})
	w := Wrap(live.DeepCopy())
	w.UpdatePrimary(desired)
	got := w.Object().(*appsv1.StatefulSet)
	if !reflect.DeepEqual(got.Spec.Selector, live.Spec.Selector) || got.Spec.ServiceName != "older" ||
		got.Spec.PodManagementPolicy != appsv1.OrderedReadyPodManagement || got.Spec.VolumeClaimTemplates[0].Name != "old-data" {
		t.Fatalf("immutable fields changed: %+v", got.Spec)
	}
	if *got.Spec.Replicas != 2 || got.Spec.Template.Labels["app"] != "db-primary" {
		t.Fatalf("mutable fields not updated: %+v", got.Spec)
	}
	if got.Annotations["deployment.kubernetes.io/revision"] != "2" || got.Annotations["note"] != "n" {
		t.Fatalf("annotations %v", got.Annotations)
	}
}

// ScaleToZero, Idle, ScaleUp and Release for every kind.
func TestIdleCycle(t *testing.T) {
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent", Labels: map[string]string{contract.LabelCanary: "agent"}},
		Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			NodeSelector: map[string]string{"kubernetes.io/os": "linux"}}}},
	}
	dep := targetDeployment()
	sts := targetStatefulSet()
	for _, w := range []Workload{Wrap(dep), Wrap(ds), Wrap(sts)} {
		t.Run(w.Kind(), func(t *testing.T) {
			w = w.Copy()
			w.ScaleUp(4)
			if w.Idle("r2") || w.Object().GetAnnotations()[contract.AnnotationIdle] != "" || w.Object().GetAnnotations()[contract.AnnotationDesiredReplicas] != "" {
				t.Fatalf("idle after ScaleUp: %v", w.Object().GetAnnotations())
			}
			if r := w.Replicas(); r != nil && *r != 4 {
				t.Fatalf("replicas %d after ScaleUp(4)", *r)
			}
			w.ScaleToZero("r2")
			if !w.Idle("r2") || w.Idle("r3") {
				t.Fatal("ScaleToZero(r2) is not idle at r2 only")
			}
			if r := w.Replicas(); r != nil && *r != 0 {
				t.Fatalf("replicas %d after ScaleToZero", *r)
			}
			if w.Kind() == "DaemonSet" && w.Template().Spec.NodeSelector["kubernetes.io/os"] != "linux" {
				t.Fatal("the user's node selector was lost")
			}
			kept := w.Copy()
			kept.Release(false, 5)
			if kept.Object().GetLabels()[contract.LabelCanary] != "" || kept.Object().GetAnnotations()[contract.AnnotationIdle] != "" {
				t.Fatalf("Herald's marks left after Release: %v %v", kept.Object().GetLabels(), kept.Object().GetAnnotations())
			}
			if r := kept.Replicas(); r != nil && *r != 0 {
				t.Fatal("Release without restore changed the replicas")
			}
			w.Release(true, 5)
			if r := w.Replicas(); r != nil && *r != 5 {
				t.Fatalf("replicas %d after Release(restore, 5)", *r)
			}
			if _, blocked := w.Template().Spec.NodeSelector[contract.NodeSelectorScaleToZero]; blocked {
				t.Fatal("the scale-to-zero node selector is left after a restoring Release")
			}
		})
	}
}

// A DaemonSet that Flagger left idle (its own node selector) runs again when scaled up.
func TestDaemonSetScaleUpRemovesFlaggerSelector(t *testing.T) {
	ds := &appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		NodeSelector: map[string]string{contract.FlaggerNodeSelectorScaleToZero: "true", "disk": "ssd"}}}}}
	w := Wrap(ds)
	w.ScaleUp(1)
	if got := ds.Spec.Template.Spec.NodeSelector; !reflect.DeepEqual(got, map[string]string{"disk": "ssd"}) {
		t.Fatalf("node selector %v", got)
	}
}

// A DaemonSet that Flagger left idle is idle for Herald too once marked at its revision: taking
// it over changes its metadata only, never its pod template, and its revision ignores Flagger's
// node selector as it ignores Herald's.
func TestDaemonSetIdleWithFlaggerSelector(t *testing.T) {
	ds := &appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		NodeSelector: map[string]string{contract.FlaggerNodeSelectorScaleToZero: "true", "disk": "ssd"},
		Containers:   []corev1.Container{{Name: "agent", Image: "agent:1"}}}}}}
	running := ds.DeepCopy()
	delete(running.Spec.Template.Spec.NodeSelector, contract.FlaggerNodeSelectorScaleToZero)
	idleRev, _ := contract.Revision(&ds.Spec.Template, nil)
	runningRev, _ := contract.Revision(&running.Spec.Template, nil)
	if idleRev != runningRev {
		t.Fatalf("revision with Flagger's node selector %s, without %s: want equal", idleRev, runningRev)
	}
	w := Wrap(ds)
	if w.Idle(idleRev) {
		t.Fatal("idle before Herald marked it")
	}
	w.ScaleToZero(idleRev)
	if !w.Idle(idleRev) {
		t.Fatal("not idle after ScaleToZero")
	}
	if got := ds.Spec.Template.Spec.NodeSelector; !reflect.DeepEqual(got, map[string]string{contract.FlaggerNodeSelectorScaleToZero: "true", "disk": "ssd"}) {
		t.Fatalf("node selector %v: the pod template changed", got)
	}
}

func TestNewAndWrap(t *testing.T) {
	for _, kind := range Kinds {
		w, err := New(kind)
		if err != nil || w.Kind() != kind || Wrap(w.Object()).Kind() != kind {
			t.Fatalf("New(%q) = %v, %v", kind, w, err)
		}
	}
	if _, err := New("ReplicaSet"); err == nil || err.Error() != `kind "ReplicaSet" is not supported: use one of Deployment, DaemonSet, StatefulSet` {
		t.Fatalf("New(ReplicaSet) error %v", err)
	}
	if Wrap(&appsv1.ReplicaSet{}) != nil {
		t.Fatal("Wrap of a ReplicaSet is not nil")
	}
}
