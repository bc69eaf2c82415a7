package workloads

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

var now = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func deployment(replicas *int32, gen, observed int64, status appsv1.DeploymentStatus) *appsv1.Deployment {
	status.ObservedGeneration = observed
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Generation: gen},
		Spec:       appsv1.DeploymentSpec{Replicas: replicas},
		Status:     status,
	}
}

func unavailableSince(ago time.Duration) appsv1.DeploymentCondition {
	return appsv1.DeploymentCondition{
		Type: appsv1.DeploymentAvailable, Status: corev1.ConditionFalse, Reason: "MinimumReplicasUnavailable",
		LastUpdateTime: metav1.NewTime(now.Add(-ago)), LastTransitionTime: metav1.NewTime(now.Add(-ago)),
	}
}

func TestDeploymentReady(t *testing.T) {
	three := ptr.To[int32](3)
	deadlineExceeded := appsv1.DeploymentCondition{
		Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded",
		Message: `ReplicaSet "podinfo-7d9f" has timed out progressing.`,
	}
	cases := []struct {
		name       string
		d          *appsv1.Deployment
		threshold  int
		since      time.Time
		deadline   time.Duration
		wantReady  bool
		wantFailed bool
		wantReason string
		// wantFailsAt: when the rollout fails if nothing changes (zero: no deadline runs).
		wantFailsAt time.Time
	}{
		{
			name: "ready", threshold: 100, deadline: time.Minute,
			d:         deployment(three, 2, 2, appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 3, ReadyReplicas: 3}),
			wantReady: true,
		},
		{
			name: "nil replicas means 1", threshold: 100,
			d:          deployment(nil, 1, 1, appsv1.DeploymentStatus{}),
			wantReason: "0 of 1 replicas updated",
		},
		{
			name: "nil replicas, one available", threshold: 100,
			d:         deployment(nil, 1, 1, appsv1.DeploymentStatus{Replicas: 1, UpdatedReplicas: 1, AvailableReplicas: 1}),
			wantReady: true,
		},
		{
			name: "generation lag", threshold: 100,
			d:          deployment(three, 3, 2, appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 3}),
			wantReason: "observed generation 2 less than desired generation 3",
		},
		{
			name: "generation lag wins over a stale deadline condition", threshold: 100,
			d: deployment(three, 3, 2, appsv1.DeploymentStatus{UpdatedReplicas: 1,
				Conditions: []appsv1.DeploymentCondition{deadlineExceeded}}),
			wantReason: "observed generation",
		},
		{
			name: "rolling: not all updated", threshold: 100,
			d:          deployment(three, 2, 2, appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 2, AvailableReplicas: 3}),
			wantReason: "2 of 3 replicas updated",
		},
		{
			name: "rolling: old replicas pending termination", threshold: 100,
			d:          deployment(three, 2, 2, appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 3, AvailableReplicas: 3}),
			wantReason: "1 old replicas pending termination",
		},
		{
			name: "threshold 100: 3 of 4 available", threshold: 100,
			d:          deployment(ptr.To[int32](4), 2, 2, appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 4, AvailableReplicas: 3}),
			wantReason: "3 of 4 updated replicas available, 4 needed (ready threshold 100%)",
		},
		{
			name: "threshold 50: 2 of 4 available", threshold: 50,
			d:         deployment(ptr.To[int32](4), 2, 2, appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 4, AvailableReplicas: 2}),
			wantReady: true,
		},
		{
			name: "threshold 50: 1 of 4 available", threshold: 50,
			d:          deployment(ptr.To[int32](4), 2, 2, appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 4, AvailableReplicas: 1}),
			wantReason: "1 of 4 updated replicas available, 2 needed (ready threshold 50%)",
		},
		{
			name: "threshold 50 of 3 rounds down", threshold: 50,
			d:         deployment(three, 2, 2, appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 1}),
			wantReady: true,
		},
		{
			name: "replicas 0 is ready", threshold: 100,
			d:         deployment(ptr.To[int32](0), 5, 5, appsv1.DeploymentStatus{Replicas: 1, Conditions: []appsv1.DeploymentCondition{deadlineExceeded}}),
			wantReady: true,
		},
		{
			name: "progress deadline exceeded", threshold: 100, deadline: time.Hour,
			d: deployment(three, 2, 2, appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 1,
				Conditions: []appsv1.DeploymentCondition{deadlineExceeded}}),
			wantFailed: true, wantReason: `ReplicaSet "podinfo-7d9f" has timed out progressing.`,
		},
		{
			name: "minimum replicas unavailable past the deadline", threshold: 100, deadline: 10 * time.Minute,
			d: deployment(three, 2, 2, appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 1,
				Conditions: []appsv1.DeploymentCondition{unavailableSince(11 * time.Minute)}}),
			wantFailed: true, wantReason: "minimum replicas unavailable for 10m0s",
		},
		{
			name: "minimum replicas unavailable within the deadline", threshold: 100, deadline: 10 * time.Minute,
			d: deployment(three, 2, 2, appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 1,
				Conditions: []appsv1.DeploymentCondition{unavailableSince(9 * time.Minute)}}),
			wantReason: "1 of 3 updated replicas available", wantFailsAt: now.Add(time.Minute),
		},
		{
			// The wait started before the Deployment lost its pods: the deadline counts from
			// the loss, and the caller must learn when it passes (no event tells; found by the
			// fault suite, whose Canary failed 30 s late).
			name: "unavailable since after the wait started", threshold: 100, deadline: 2 * time.Minute, since: now.Add(-5 * time.Minute),
			d: deployment(three, 2, 2, appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 1,
				Conditions: []appsv1.DeploymentCondition{unavailableSince(time.Minute)}}),
			wantReason: "1 of 3 updated replicas available", wantFailsAt: now.Add(time.Minute),
		},
		{
			// A primary a failed promotion left unavailable for long gets the whole deadline
			// for the promotion that started a minute ago (found by the fault suite).
			name: "unavailable since before the wait started", threshold: 100, deadline: 10 * time.Minute, since: now.Add(-time.Minute),
			d: deployment(three, 2, 2, appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 1,
				Conditions: []appsv1.DeploymentCondition{unavailableSince(time.Hour)}}),
			wantReason: "1 of 3 updated replicas available", wantFailsAt: now.Add(9 * time.Minute),
		},
		{
			name: "unavailable exactly the deadline: failed at that instant", threshold: 100, deadline: 10 * time.Minute,
			d: deployment(three, 2, 2, appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 1,
				Conditions: []appsv1.DeploymentCondition{unavailableSince(10 * time.Minute)}}),
			wantFailed: true, wantReason: "minimum replicas unavailable for 10m0s",
		},
		{
			// Rolling and available: its own ProgressDeadlineExceeded comes as an event, so
			// no time is named, however long the caller has waited.
			name: "not ready, still available: no time to fail", threshold: 100, deadline: time.Minute, since: now.Add(-time.Hour),
			d:          deployment(three, 2, 2, appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 2, AvailableReplicas: 3}),
			wantReason: "2 of 3 replicas updated",
		},
		{
			name: "an unavailable condition without times, no since: not failed", threshold: 100, deadline: time.Minute,
			d: deployment(three, 2, 2, appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 1,
				Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionFalse, Reason: "MinimumReplicasUnavailable"}}}),
			wantReason: "1 of 3 updated replicas available",
		},
		{
			name: "deadline 0 disables the unavailable check", threshold: 100, deadline: 0,
			d: deployment(three, 2, 2, appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 1,
				Conditions: []appsv1.DeploymentCondition{unavailableSince(time.Hour)}}),
			wantReason: "1 of 3 updated replicas available",
		},
		{
			name: "ready despite an old unavailable condition (threshold met)", threshold: 50, deadline: time.Minute,
			d: deployment(ptr.To[int32](4), 2, 2, appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 4, AvailableReplicas: 2,
				Conditions: []appsv1.DeploymentCondition{unavailableSince(time.Hour)}}),
			wantReady: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := DeploymentReady(tc.d, tc.threshold, tc.since, tc.deadline, now)
			ready, reason, failed := r.Ready, r.Reason, r.Failed
			if !r.FailsAt.Equal(tc.wantFailsAt) {
				t.Fatalf("fails at %s, want %s", r.FailsAt, tc.wantFailsAt)
			}
			if ready != tc.wantReady || failed != tc.wantFailed {
				t.Fatalf("ready=%v failed=%v (%s), want ready=%v failed=%v", ready, failed, reason, tc.wantReady, tc.wantFailed)
			}
			if tc.wantReady && reason != "" {
				t.Fatalf("ready with reason %q", reason)
			}
			if !strings.Contains(reason, tc.wantReason) || (!tc.wantReady && reason == "") {
				t.Fatalf("reason %q, want containing %q", reason, tc.wantReason)
			}
		})
	}
}

func TestDaemonSetReady(t *testing.T) {
	ds := func(gen, observed int64, desired, updated, available int32) *appsv1.DaemonSet {
		return &appsv1.DaemonSet{
			ObjectMeta: metav1.ObjectMeta{Name: "agent", Generation: gen},
			Status: appsv1.DaemonSetStatus{
				ObservedGeneration: observed, DesiredNumberScheduled: desired, CurrentNumberScheduled: desired,
				UpdatedNumberScheduled: updated, NumberAvailable: available, NumberReady: available,
			},
		}
	}
	recent, old := now.Add(-time.Minute), now.Add(-time.Hour)
	cases := []struct {
		name       string
		d          *appsv1.DaemonSet
		threshold  int
		since      time.Time
		wantReady  bool
		wantFailed bool
		wantReason string
		// wantFailsAt: 10 minutes after since while waiting; zero otherwise.
		wantFailsAt time.Time
	}{
		{name: "ready", d: ds(1, 1, 3, 3, 3), threshold: 100, since: old, wantReady: true},
		// Scheduled nowhere: no pod to judge, so not ready (Flagger counts it ready).
		{name: "no nodes", d: ds(1, 1, 0, 0, 0), threshold: 100, since: recent, wantReason: "scheduled on no node", wantFailsAt: now.Add(9 * time.Minute)},
		{name: "no nodes past the deadline", d: ds(1, 1, 0, 0, 0), threshold: 100, since: old, wantFailed: true, wantReason: "scheduled on no node"},
		{name: "generation lag", d: ds(2, 1, 3, 3, 3), threshold: 100, since: recent, wantReason: "observed generation 1 less than desired generation 2", wantFailsAt: now.Add(9 * time.Minute)},
		{name: "rolling", d: ds(1, 1, 3, 1, 3), threshold: 100, since: recent, wantReason: "1 of 3 pods updated", wantFailsAt: now.Add(9 * time.Minute)},
		{name: "threshold 100", d: ds(1, 1, 4, 4, 3), threshold: 100, since: recent, wantReason: "3 of 4 pods available, 4 needed", wantFailsAt: now.Add(9 * time.Minute)},
		{name: "threshold 50", d: ds(1, 1, 4, 4, 2), threshold: 50, since: recent, wantReady: true},
		{name: "deadline exceeded", d: ds(1, 1, 3, 1, 1), threshold: 100, since: old, wantFailed: true, wantReason: "progress deadline of 10m0s reached"},
		{name: "no since", d: ds(1, 1, 3, 1, 1), threshold: 100, wantReason: "1 of 3 pods updated"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := DaemonSetReady(tc.d, tc.threshold, tc.since, 10*time.Minute, now)
			ready, reason, failed := r.Ready, r.Reason, r.Failed
			if !r.FailsAt.Equal(tc.wantFailsAt) {
				t.Fatalf("fails at %s, want %s", r.FailsAt, tc.wantFailsAt)
			}
			if ready != tc.wantReady || failed != tc.wantFailed {
				t.Fatalf("ready=%v failed=%v (%s), want ready=%v failed=%v", ready, failed, reason, tc.wantReady, tc.wantFailed)
			}
			if tc.wantReady != (reason == "") || !strings.Contains(reason, tc.wantReason) {
				t.Fatalf("reason %q, want containing %q", reason, tc.wantReason)
			}
		})
	}
}

func TestStatefulSetReady(t *testing.T) {
	sts := func(gen, observed int64, replicas, current, updated, available int32) *appsv1.StatefulSet {
		return &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Name: "db", Generation: gen},
			Spec:       appsv1.StatefulSetSpec{Replicas: &replicas},
			Status: appsv1.StatefulSetStatus{
				ObservedGeneration: observed, Replicas: current, UpdatedReplicas: updated,
				ReadyReplicas: available, AvailableReplicas: available,
			},
		}
	}
	recent, old := now.Add(-time.Minute), now.Add(-time.Hour)
	cases := []struct {
		name       string
		s          *appsv1.StatefulSet
		threshold  int
		since      time.Time
		wantReady  bool
		wantFailed bool
		wantReason string
		// wantFailsAt: 10 minutes after since while waiting; zero otherwise.
		wantFailsAt time.Time
	}{
		{name: "ready", s: sts(2, 2, 3, 3, 3, 3), threshold: 100, since: old, wantReady: true},
		{name: "scaled to zero", s: sts(2, 2, 0, 0, 0, 0), threshold: 100, since: old, wantReady: true},
		{name: "generation lag", s: sts(3, 2, 3, 3, 3, 3), threshold: 100, since: recent, wantReason: "observed generation 2 less than desired generation 3", wantFailsAt: now.Add(9 * time.Minute)},
		{name: "rolling", s: sts(2, 2, 3, 3, 1, 3), threshold: 100, since: recent, wantReason: "1 of 3 replicas updated", wantFailsAt: now.Add(9 * time.Minute)},
		{name: "old pod left", s: sts(2, 2, 3, 4, 3, 3), threshold: 100, since: recent, wantReason: "1 old replicas pending", wantFailsAt: now.Add(9 * time.Minute)},
		{name: "threshold 100", s: sts(2, 2, 4, 4, 4, 3), threshold: 100, since: recent, wantReason: "3 of 4 replicas available, 4 needed", wantFailsAt: now.Add(9 * time.Minute)},
		{name: "threshold 50", s: sts(2, 2, 4, 4, 4, 2), threshold: 50, since: recent, wantReady: true},
		{name: "deadline exceeded", s: sts(2, 2, 3, 3, 1, 1), threshold: 100, since: old, wantFailed: true, wantReason: "progress deadline of 10m0s reached"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := StatefulSetReady(tc.s, tc.threshold, tc.since, 10*time.Minute, now)
			ready, reason, failed := r.Ready, r.Reason, r.Failed
			if !r.FailsAt.Equal(tc.wantFailsAt) {
				t.Fatalf("fails at %s, want %s", r.FailsAt, tc.wantFailsAt)
			}
			if ready != tc.wantReady || failed != tc.wantFailed {
				t.Fatalf("ready=%v failed=%v (%s), want ready=%v failed=%v", ready, failed, reason, tc.wantReady, tc.wantFailed)
			}
			if tc.wantReady != (reason == "") || !strings.Contains(reason, tc.wantReason) {
				t.Fatalf("reason %q, want containing %q", reason, tc.wantReason)
			}
		})
	}
}

func waiting(name, reason, msg string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}}
}

func running(name string, ready bool, restarts int32, lastExit int32) corev1.ContainerStatus {
	cs := corev1.ContainerStatus{Name: name, Ready: ready, RestartCount: restarts,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
	if restarts > 0 {
		cs.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: lastExit, Reason: "Error"}
	}
	return cs
}

func pod(name string, init, containers []corev1.ContainerStatus) corev1.Pod {
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Status:     corev1.PodStatus{Phase: corev1.PodPending, InitContainerStatuses: init, ContainerStatuses: containers},
	}
}

func TestPodsFailing(t *testing.T) {
	healthy := pod("podinfo-7d9f-aaa", nil, []corev1.ContainerStatus{running("podinfod", true, 0, 0)})
	cases := []struct {
		name string
		pods []corev1.Pod
		want string // "" = not failing
	}{
		{name: "no pods"},
		{name: "healthy", pods: []corev1.Pod{healthy}},
		{name: "starting", pods: []corev1.Pod{pod("p", nil, []corev1.ContainerStatus{waiting("c", "ContainerCreating", "")})}},
		{name: "PodInitializing", pods: []corev1.Pod{pod("p", nil, []corev1.ContainerStatus{waiting("c", "PodInitializing", "")})}},
		{
			name: "ImagePullBackOff",
			pods: []corev1.Pod{healthy, pod("podinfo-7d9f-abc", nil, []corev1.ContainerStatus{waiting("podinfod", "ImagePullBackOff", `Back-off pulling image "x"`)})},
			want: `pod podinfo-7d9f-abc container podinfod: ImagePullBackOff: Back-off pulling image "x"`,
		},
		{
			name: "ErrImagePull",
			pods: []corev1.Pod{pod("p", nil, []corev1.ContainerStatus{waiting("c", "ErrImagePull", "not found")})},
			want: "pod p container c: ErrImagePull: not found",
		},
		{
			name: "CrashLoopBackOff without message",
			pods: []corev1.Pod{pod("p", nil, []corev1.ContainerStatus{running("ok", true, 0, 0), waiting("c", "CrashLoopBackOff", "")})},
			want: "pod p container c: CrashLoopBackOff",
		},
		{
			name: "InvalidImageName",
			pods: []corev1.Pod{pod("p", nil, []corev1.ContainerStatus{waiting("c", "InvalidImageName", `couldn't parse image name "X:"`)})},
			want: `pod p container c: InvalidImageName: couldn't parse image name "X:"`,
		},
		{
			name: "CreateContainerConfigError",
			pods: []corev1.Pod{pod("p", nil, []corev1.ContainerStatus{waiting("c", "CreateContainerConfigError", `configmap "cfg" not found`)})},
			want: `pod p container c: CreateContainerConfigError: configmap "cfg" not found`,
		},
		{
			name: "CreateContainerError",
			pods: []corev1.Pod{pod("p", nil, []corev1.ContainerStatus{waiting("c", "CreateContainerError", "boom")})},
			want: "pod p container c: CreateContainerError: boom",
		},
		{
			name: "init container CrashLoopBackOff",
			pods: []corev1.Pod{pod("p", []corev1.ContainerStatus{waiting("migrate", "CrashLoopBackOff", "back-off 40s")},
				[]corev1.ContainerStatus{waiting("c", "PodInitializing", "")})},
			want: "pod p container migrate: CrashLoopBackOff: back-off 40s",
		},
		{
			name: "restarted 3 times, failing, not ready",
			pods: []corev1.Pod{pod("p", nil, []corev1.ContainerStatus{running("c", false, 3, 1)})},
			want: "pod p container c: restarted 3 times, last exit code 1 (Error)",
		},
		{name: "restarted twice", pods: []corev1.Pod{pod("p", nil, []corev1.ContainerStatus{running("c", false, 2, 1)})}},
		{name: "restarted 3 times, exit 0", pods: []corev1.Pod{pod("p", nil, []corev1.ContainerStatus{running("c", false, 3, 0)})}},
		{name: "restarted 3 times, ready now", pods: []corev1.Pod{pod("p", nil, []corev1.ContainerStatus{running("c", true, 5, 137)})}},
		{
			name: "first pod by name",
			pods: []corev1.Pod{
				pod("p-b", nil, []corev1.ContainerStatus{waiting("c", "ErrImagePull", "b")}),
				pod("p-a", nil, []corev1.ContainerStatus{waiting("c", "ErrImagePull", "a")}),
			},
			want: "pod p-a container c: ErrImagePull: a",
		},
	}
	terminating := pod("gone", nil, []corev1.ContainerStatus{waiting("c", "CrashLoopBackOff", "")})
	terminating.DeletionTimestamp = ptr.To(metav1.NewTime(now))
	evicted := pod("evicted", nil, []corev1.ContainerStatus{waiting("c", "ErrImagePull", "")})
	evicted.Status.Phase = corev1.PodFailed
	cases = append(cases, struct {
		name string
		pods []corev1.Pod
		want string
	}{name: "terminating and evicted pods ignored", pods: []corev1.Pod{terminating, evicted, healthy}})

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reason, failing := PodsFailing(tc.pods)
			if failing != (tc.want != "") || reason != tc.want {
				t.Fatalf("got %v %q, want %q", failing, reason, tc.want)
			}
		})
	}
}
