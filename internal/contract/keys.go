// Package contract is what Herald's admission webhooks and its controller must agree on: the
// revision of a workload, every key Herald writes on other people's objects, which ConfigMaps
// and Secrets count towards a revision, and which selector label names a workload's pods.
//
// Both sides import this package and neither imports the other, so they cannot drift apart: a
// revision the workload webhook writes at admission time is the one the controller computes
// after a missed webhook call.
package contract

// Prefix is the prefix of every label, annotation, node-selector key and finalizer Herald
// writes itself. Keys with it are left out of the revision, or Herald writing its own marks
// (the revision annotation, the node selector that empties an idle DaemonSet) would change it.
const Prefix = "herald.dev/"

// Labels Herald puts on objects it does not own.
const (
	// LabelCanary marks a target workload managed by Herald; its value is the Canary's name.
	// The workload webhook's objectSelector matches it.
	LabelCanary = Prefix + "canary"
	// LabelTracked marks a ConfigMap or Secret whose content counts towards a target's
	// revision (value TrackedValue). The config webhook's objectSelector matches it, and the
	// webhooks' metadata cache holds only configs that carry it.
	LabelTracked = Prefix + "tracked"
	// TrackedValue is the value of LabelTracked.
	TrackedValue = "true"
	// LabelPrimaryOf marks a primary workload with the name of its Canary. Primaries are not
	// owned by their Canary, so that deleting a Canary never takes serving pods away before
	// Herald has given the target its pods back; Herald deletes a primary whose Canary is gone
	// once the target serves again.
	LabelPrimaryOf = Prefix + "primary-of"
	// LabelAdoptedBy marks an object a user made that Herald took over for a Canary (an apex
	// Service, a VirtualService, a route), with the Canary's name. Herald puts it back as it
	// was (AnnotationOriginal) when the Canary goes.
	LabelAdoptedBy = Prefix + "adopted-by"
)

// Annotations Herald writes.
const (
	// AnnotationRevision is the revision of a workload, on the workload's own metadata (never
	// on its pod template, which would roll its pods). Written by the workload webhook.
	AnnotationRevision = Prefix + "revision"
	// AnnotationChecksum is the content checksum of a tracked ConfigMap or Secret
	// (ConfigChecksum, SecretChecksum). Written by the config webhook and the controller.
	AnnotationChecksum = Prefix + "checksum"
	// AnnotationIdle marks a target the controller scaled to zero; its value is the revision
	// at which the target went idle.
	AnnotationIdle = Prefix + "idle"
	// AnnotationDesiredReplicas records the replicas a user asked an idle target for; the
	// controller applies them to the primary.
	AnnotationDesiredReplicas = Prefix + "desired-replicas"
	// AnnotationPromotedRevision on a primary's pod template names the revision it runs. A
	// change of only a ConfigMap or Secret leaves the template otherwise equal, so without it
	// the primary would not roll and its pods would keep the old configuration.
	AnnotationPromotedRevision = Prefix + "promoted-revision"
	// AnnotationOriginal holds, as JSON, what an adopted object (LabelAdoptedBy) was before
	// Herald changed it.
	AnnotationOriginal = Prefix + "original"
	// AnnotationRequest on a Canary is a request made with `kubectl herald` (promote, abort,
	// retry, pause, resume), as JSON (internal/requests). The plugin writes it as its own
	// field manager; the controller acts on it once and records it in status.lastRequest.
	AnnotationRequest = Prefix + "request"
)

// NodeSelectorScaleToZero is the node-selector key (value "true") that empties an idle
// DaemonSet, which has no replicas to set to zero: no node carries it.
const NodeSelectorScaleToZero = Prefix + "scale-to-zero"

// Finalizer is the finalizer earlier Herald versions put on every Canary. Herald no longer
// uses one (a Canary's deletion must never wait for Herald) and removes it where it finds it.
const Finalizer = Prefix + "finalizer"

// Flagger's keys that Herald honours.
const (
	// FlaggerConfigTracking is Flagger's per-config opt-out annotation: a config whose value
	// starts with "disable" is not tracked.
	FlaggerConfigTracking = "flagger.app/config-tracking"
	// FlaggerNodeSelectorScaleToZero is the node-selector key Flagger empties an idle
	// DaemonSet with.
	FlaggerNodeSelectorScaleToZero = "flagger.app/scale-to-zero"
	// FlaggerFinalizer is the finalizer Flagger puts on Canaries with revertOnDeletion.
	// Herald removes it: a Canary's deletion never waits for a controller.
	FlaggerFinalizer = "finalizer.flagger.app"
)
