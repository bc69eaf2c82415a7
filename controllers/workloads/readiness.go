package workloads

import (
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// Condition reasons Kubernetes' Deployment controller sets that DeploymentReady reads.
const (
	reasonProgressDeadlineExceeded   = "ProgressDeadlineExceeded"
	reasonMinimumReplicasUnavailable = "MinimumReplicasUnavailable"
)

// required is the number of available pods a rollout of n updated pods needs at thresholdPercent
// (clamped to 0..100): int(n*threshold/100), rounded down as Flagger does.
func required(n int32, thresholdPercent int) int32 {
	t := min(max(thresholdPercent, 0), 100)
	return int32(int64(n) * int64(t) / 100)
}

// Readiness is the judgement of a workload's rollout.
type Readiness struct {
	// Ready: enough pods of the current spec are available.
	Ready bool
	// Failed: the rollout will not become ready without a new revision.
	Failed bool
	// Reason says why it is not ready, or why it failed; empty when ready.
	Reason string
	// FailsAt is when the rollout counts as failed if its status does not change: the
	// progress deadline as judged, which may start later than the caller's since (a
	// Deployment's counts from when it lost its minimum of available pods). No event
	// announces a deadline passing, so a caller that waits looks again then. Zero when the
	// judgement names no such time: a Deployment that has not lost its minimum of available
	// pods fails by its own ProgressDeadlineExceeded condition, which comes as an event.
	FailsAt time.Time
}

// DeploymentReady judges a Deployment's rollout.
//
// It is not ready while the Deployment controller has not observed the latest generation. Then
// it is ready when spec.replicas (1 when nil) is 0, or when all replicas are updated, no old
// replica is left (status.replicas == updatedReplicas) and at least
// int(updatedReplicas*thresholdPercent/100) are available.
//
// A Deployment that is not ready has failed (it cannot become ready without a new revision)
// when its Progressing condition has reason ProgressDeadlineExceeded (its own
// spec.progressDeadlineSeconds passed), or when its Available condition has been False with
// reason MinimumReplicasUnavailable for deadline or longer (deadline <= 0
// disables this check), counted at the earliest from since, when the caller started waiting: a
// Deployment unavailable since before (a primary a failed promotion left broken) gets the
// whole deadline for the new rollout.
//
// FailsAt is when that deadline passes for a Deployment unavailable now; it fails at that
// instant, not after it (a caller that wakes there must not find it still waiting).
func DeploymentReady(d *appsv1.Deployment, thresholdPercent int, since time.Time, deadline time.Duration, now time.Time) Readiness {
	if d.Generation > d.Status.ObservedGeneration {
		return Readiness{Reason: fmt.Sprintf("deployment %s: observed generation %d less than desired generation %d",
			d.Name, d.Status.ObservedGeneration, d.Generation)}
	}
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	if replicas == 0 {
		return Readiness{Ready: true}
	}
	st := &d.Status
	var waiting string
	switch need := required(st.UpdatedReplicas, thresholdPercent); {
	case st.UpdatedReplicas < replicas:
		waiting = fmt.Sprintf("deployment %s: waiting for rollout to finish: %d of %d replicas updated",
			d.Name, st.UpdatedReplicas, replicas)
	case st.Replicas > st.UpdatedReplicas:
		waiting = fmt.Sprintf("deployment %s: waiting for rollout to finish: %d old replicas pending termination",
			d.Name, st.Replicas-st.UpdatedReplicas)
	case st.AvailableReplicas < need:
		waiting = fmt.Sprintf("deployment %s: waiting for rollout to finish: %d of %d updated replicas available, %d needed (ready threshold %d%%)",
			d.Name, st.AvailableReplicas, st.UpdatedReplicas, need, thresholdPercent)
	default:
		return Readiness{Ready: true}
	}
	var failsAt time.Time
	for _, c := range st.Conditions {
		switch {
		case c.Type == appsv1.DeploymentProgressing && c.Reason == reasonProgressDeadlineExceeded:
			msg := c.Message
			if msg == "" {
				msg = "progress deadline exceeded"
			}
			return Readiness{Failed: true, Reason: fmt.Sprintf("deployment %s: %s", d.Name, msg)}
		case deadline > 0 && c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionFalse &&
			c.Reason == reasonMinimumReplicasUnavailable:
			from := c.LastUpdateTime.Time
			if from.IsZero() {
				from = c.LastTransitionTime.Time
			}
			if since.After(from) {
				from = since
			}
			if from.IsZero() {
				continue
			}
			if failsAt = from.Add(deadline); !failsAt.After(now) {
				return Readiness{Failed: true, Reason: fmt.Sprintf("deployment %s: minimum replicas unavailable for %s: %s",
					d.Name, deadline, waiting)}
			}
		}
	}
	return Readiness{Reason: waiting, FailsAt: failsAt}
}

// DaemonSetReady judges a DaemonSet's rollout: it is ready when the DaemonSet controller has
// observed the latest generation, every scheduled pod is updated (updatedNumberScheduled >=
// desiredNumberScheduled) and at least int(desiredNumberScheduled*thresholdPercent/100) are
// available. A DaemonSet scheduled on no node is not ready: the analysis would judge nothing.
//
// A DaemonSet that is not ready has failed when since (when the caller started waiting, e.g.
// the Canary's status.lastTransitionTime) plus deadline is not after now. A zero since or a
// deadline <= 0 disables this check.
func DaemonSetReady(d *appsv1.DaemonSet, thresholdPercent int, since time.Time, deadline time.Duration, now time.Time) Readiness {
	st := &d.Status
	var waiting string
	switch need := required(st.DesiredNumberScheduled, thresholdPercent); {
	case d.Generation > st.ObservedGeneration:
		waiting = fmt.Sprintf("daemonset %s: observed generation %d less than desired generation %d",
			d.Name, st.ObservedGeneration, d.Generation)
	case st.DesiredNumberScheduled == 0:
		waiting = fmt.Sprintf("daemonset %s: scheduled on no node", d.Name)
	case st.UpdatedNumberScheduled < st.DesiredNumberScheduled:
		waiting = fmt.Sprintf("daemonset %s: waiting for rollout to finish: %d of %d pods updated",
			d.Name, st.UpdatedNumberScheduled, st.DesiredNumberScheduled)
	case st.NumberAvailable < need:
		waiting = fmt.Sprintf("daemonset %s: waiting for rollout to finish: %d of %d pods available, %d needed (ready threshold %d%%)",
			d.Name, st.NumberAvailable, st.DesiredNumberScheduled, need, thresholdPercent)
	default:
		return Readiness{Ready: true}
	}
	return sinceDeadline(since, deadline, now, waiting)
}

// StatefulSetReady judges a StatefulSet's rollout: it is ready when the StatefulSet controller
// has observed the latest generation and spec.replicas (1 when nil) is 0, or all replicas run
// the update revision (updatedReplicas, and no pod left of another revision) and at least
// int(replicas*thresholdPercent/100) are available. As a StatefulSet has no progress condition,
// one that is not ready has failed when since plus deadline is not after now (a zero since or a
// deadline <= 0 disables this).
func StatefulSetReady(s *appsv1.StatefulSet, thresholdPercent int, since time.Time, deadline time.Duration, now time.Time) Readiness {
	st := &s.Status
	replicas := int32(1)
	if s.Spec.Replicas != nil {
		replicas = *s.Spec.Replicas
	}
	var waiting string
	switch need := required(replicas, thresholdPercent); {
	case s.Generation > st.ObservedGeneration:
		waiting = fmt.Sprintf("statefulset %s: observed generation %d less than desired generation %d",
			s.Name, st.ObservedGeneration, s.Generation)
	case replicas == 0:
		return Readiness{Ready: true}
	case st.UpdatedReplicas < replicas:
		waiting = fmt.Sprintf("statefulset %s: waiting for rollout to finish: %d of %d replicas updated",
			s.Name, st.UpdatedReplicas, replicas)
	case st.Replicas > st.UpdatedReplicas:
		waiting = fmt.Sprintf("statefulset %s: waiting for rollout to finish: %d old replicas pending",
			s.Name, st.Replicas-st.UpdatedReplicas)
	case st.AvailableReplicas < need:
		waiting = fmt.Sprintf("statefulset %s: waiting for rollout to finish: %d of %d replicas available, %d needed (ready threshold %d%%)",
			s.Name, st.AvailableReplicas, replicas, need, thresholdPercent)
	default:
		return Readiness{Ready: true}
	}
	return sinceDeadline(since, deadline, now, waiting)
}

// sinceDeadline judges a rollout that is not ready against a deadline counted from since (zero
// since or deadline <= 0: none).
func sinceDeadline(since time.Time, deadline time.Duration, now time.Time, waiting string) Readiness {
	if deadline <= 0 || since.IsZero() {
		return Readiness{Reason: waiting}
	}
	failsAt := since.Add(deadline)
	if !failsAt.After(now) {
		return Readiness{Failed: true, Reason: fmt.Sprintf("progress deadline of %s reached: %s", deadline, waiting)}
	}
	return Readiness{Reason: waiting, FailsAt: failsAt}
}

// failingWaitingReasons are the container waiting reasons that mean a pod will not become
// ready on its own.
var failingWaitingReasons = map[string]bool{
	"CrashLoopBackOff":           true,
	"ImagePullBackOff":           true,
	"ErrImagePull":               true,
	"InvalidImageName":           true,
	"CreateContainerConfigError": true,
	"CreateContainerError":       true,
}

// restartLimit is the number of restarts after which a container whose last run failed counts
// as failing even while it is (briefly) running again.
const restartLimit = 3

// PodsFailing reports whether one of pods cannot become ready: a container or init container
// waiting with CrashLoopBackOff, ImagePullBackOff, ErrImagePull, InvalidImageName,
// CreateContainerConfigError or CreateContainerError, or not ready after restarting at least 3
// times with a non-zero exit code last time (a container that came up after a few failed starts
// and is ready is not failing). The reason names the first such pod (by name) and container,
// e.g. `pod podinfo-7d9f-abc container podinfod: ImagePullBackOff: Back-off pulling image "x"`.
//
// Pods being deleted and pods in a terminal phase (Succeeded, or Failed such as evicted pods) are
// ignored. The caller passes the pods of the revision being judged only (the new ReplicaSet's
// pod-template-hash, or the DaemonSet's controller-revision-hash), so that crashing pods of an
// old revision do not fail a fix.
func PodsFailing(pods []corev1.Pod) (reason string, failing bool) {
	idx := make([]int, len(pods))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return pods[idx[a]].Name < pods[idx[b]].Name })
	for _, i := range idx {
		p := &pods[i]
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		for _, statuses := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
			for _, cs := range statuses {
				if why, bad := containerFailing(&cs); bad {
					return fmt.Sprintf("pod %s container %s: %s", p.Name, cs.Name, why), true
				}
			}
		}
	}
	return "", false
}

func containerFailing(cs *corev1.ContainerStatus) (string, bool) {
	if w := cs.State.Waiting; w != nil && failingWaitingReasons[w.Reason] {
		if msg := strings.TrimSpace(w.Message); msg != "" {
			return w.Reason + ": " + msg, true
		}
		return w.Reason, true
	}
	if t := cs.LastTerminationState.Terminated; t != nil && !cs.Ready && cs.RestartCount >= restartLimit && t.ExitCode != 0 {
		why := fmt.Sprintf("restarted %d times, last exit code %d", cs.RestartCount, t.ExitCode)
		if t.Reason != "" {
			why += " (" + t.Reason + ")"
		}
		if msg := strings.TrimSpace(t.Message); msg != "" {
			why += ": " + msg
		}
		return why, true
	}
	return "", false
}
