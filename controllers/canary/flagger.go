package canary

import (
	"context"
	"fmt"
	"maps"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/workloads"
	"github.com/herald-rollouts/herald/internal/contract"
)

// Taking over from Flagger. A Canary that Flagger ran has a status Flagger wrote: its
// lastAppliedSpec and lastPromotedSpec are Flagger's spec hashes, which Herald cannot compute
// (a hash of a debug dump of Go structs), and its primary, primary Services, config copies,
// autoscaler copy and routes are owned by the Canary. Left alone, the first pass would see a
// "new revision" in every Canary and start an analysis (hooks, load tests, alerts, a primary
// rollout). adoptFlagger, called once the target, its revision and the primary are read, tells
// instead what the primary runs: when it runs the target's current template and configs, that
// revision is recorded as promoted and applied, and nothing runs; otherwise the revision in the
// target is a new one and is analysed as usual. Either way what Flagger made is taken over in
// place (owner references and Herald's labels only, so no pod is replaced), never recreated.

// flaggerPodAnnotation is the annotation Flagger puts on a primary's pod template at every
// promotion (a random id, to force a rollout); it says nothing about what the pods run.
const flaggerPodAnnotation = "flagger-id"

// writtenByFlagger reports whether the Canary's status is Flagger's: a lastAppliedSpec that is
// not a Herald revision.
func writtenByFlagger(s *flaggerv1.CanaryStatus) bool {
	return s.LastAppliedSpec != "" && !contract.IsRevision(s.LastAppliedSpec)
}

// adoptFlagger records Herald's revisions in a status Flagger wrote and takes over what Flagger
// made for the Canary (see above). It does nothing for a Canary Herald has run.
func (p *pass) adoptFlagger(ctx context.Context) error {
	c := p.c
	s := &c.Status
	if !writtenByFlagger(s) {
		return nil
	}
	flaggerApplied := s.LastAppliedSpec
	switch s.Phase {
	case "", flaggerv1.CanaryPhaseInitializing:
		// Flagger had not finished initialising: Herald initialises (its primary is not
		// serving yet) and records its own revision then.
		s.LastAppliedSpec, s.LastPromotedSpec = "", ""
		p.log.Info("Taking over a Canary Flagger was initialising")
		return nil
	}
	if p.primary == nil {
		// Nothing serves: start over as a new Canary would.
		s.Phase, s.LastAppliedSpec, s.LastPromotedSpec = "", "", ""
		return nil
	}
	current, err := p.primaryRunsTarget(ctx)
	if err != nil {
		return err
	}
	if err := p.adoptFlaggerObjects(ctx); err != nil {
		return err
	}
	switch {
	case current && (s.Phase == flaggerv1.CanaryPhasePromoting || s.Phase == flaggerv1.CanaryPhaseFinalising):
		// Flagger had copied the revision to the primary: Herald finishes the promotion
		// (traffic back to the primary, the target scaled down) without an analysis.
		s.LastAppliedSpec, s.LastPromotedSpec = p.rev, p.rev
		s.Phase = flaggerv1.CanaryPhaseFinalising
	case current:
		// The primary runs the target's revision: it is the promoted one; nothing to analyse.
		s.LastAppliedSpec, s.LastPromotedSpec = p.rev, p.rev
		s.TrackedConfigs = p.configs
	default:
		// The primary runs another revision. Flagger's hash of it stays as lastPromotedSpec: it
		// equals no Herald revision, so any revision in the target is analysed before it is
		// promoted, except a release Flagger already failed, which stays failed (as in Flagger,
		// only a new template retries it).
		switch s.Phase {
		case flaggerv1.CanaryPhaseFailed:
			s.LastAppliedSpec = p.rev
		case flaggerv1.CanaryPhasePromoting, flaggerv1.CanaryPhaseFinalising:
			// The run restarts (see run: a lastAppliedSpec that is not the target's).
			s.Phase = flaggerv1.CanaryPhaseProgressing
		}
	}
	p.log.Info("Taking over a Canary from Flagger", "phase", s.Phase, "flaggerRevision", flaggerApplied,
		"primaryRunsTarget", current)
	return nil
}

// primaryRunsTarget reports whether the primary runs the target's current revision: the pod
// template Herald would give the primary equals the primary's (ignoring Flagger's flagger-id
// and the metadata keys neither copies), and every tracked config equals its -primary copy.
func (p *pass) primaryRunsTarget(ctx context.Context) (bool, error) {
	want := p.target.Primary(p.primary, p.label, p.value, workloads.ConfigRenames(p.refs), p.primary.Replicas(), p.r.Options.IncludeLabelPrefix)
	wantRev, err := contract.Revision(comparableTemplate(want.Template()), nil)
	if err != nil {
		return false, err
	}
	haveRev, err := contract.Revision(comparableTemplate(p.primary.Template()), nil)
	if err != nil {
		return false, err
	}
	if wantRev != haveRev {
		return false, nil
	}
	for _, ref := range p.refs {
		sum, found, err := p.primaryCopyChecksum(ctx, ref)
		if err != nil {
			return false, err
		}
		if !found || sum != p.configs[ref.Key()] {
			return false, nil
		}
	}
	return true, nil
}

// comparableTemplate is a copy of tmpl without Flagger's flagger-id annotation and without the
// keys of Flux, which Flagger leaves out of a primary's template.
func comparableTemplate(tmpl *corev1.PodTemplateSpec) *corev1.PodTemplateSpec {
	out := tmpl.DeepCopy()
	keep := func(m map[string]string) map[string]string {
		m = maps.Clone(m)
		for k := range m {
			if k == flaggerPodAnnotation || strings.Contains(k, "toolkit.fluxcd.io") {
				delete(m, k)
			}
		}
		return m
	}
	out.Labels, out.Annotations = keep(out.Labels), keep(out.Annotations)
	return out
}

// primaryCopyChecksum reads the -primary copy of a tracked config and returns its checksum as
// contract computes the original's.
func (p *pass) primaryCopyChecksum(ctx context.Context, ref contract.Ref) (string, bool, error) {
	key := types.NamespacedName{Namespace: p.c.Namespace, Name: contract.PrimaryName(ref.Name)}
	var obj client.Object = &corev1.ConfigMap{}
	if ref.Kind == contract.Secret {
		obj = &corev1.Secret{}
	}
	if err := p.r.APIReader.Get(ctx, key, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return "", false, nil
		}
		return "", false, fmt.Errorf("reading %s %s: %w", ref.Kind, key.Name, err)
	}
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		return contract.ConfigChecksum(o.Data, o.BinaryData), true, nil
	case *corev1.Secret:
		return contract.SecretChecksum(o.Data), true, nil
	}
	return "", false, nil
}

// adoptFlaggerObjects takes over the primary and its config and autoscaler copies, which
// Flagger made owned by the Canary: Herald's primaries are not (deleting a Canary must never
// take serving pods away), so the primary gets Herald's primary-of label instead of the
// Canary as owner, and the copies the primary as owner. Only metadata changes: no pod rolls.
// The primary and canary Services and the routes are taken over by the usual pass.
func (p *pass) adoptFlaggerObjects(ctx context.Context) error {
	primary := p.primary.Object()
	if primary.GetLabels()[contract.LabelPrimaryOf] != p.c.Name || ownedBy(primary, p.c.UID) {
		changed := p.primary.Copy()
		obj := changed.Object()
		obj.SetOwnerReferences(withoutOwner(obj.GetOwnerReferences(), p.c.UID))
		labels := maps.Clone(obj.GetLabels())
		if labels == nil {
			labels = map[string]string{}
		}
		labels[contract.LabelPrimaryOf] = p.c.Name
		obj.SetLabels(labels)
		if err := p.patch(ctx, obj, primary); err != nil {
			return err
		}
		p.primary = changed
	}
	for _, ref := range p.refs {
		var copyObj client.Object = &corev1.ConfigMap{}
		if ref.Kind == contract.Secret {
			copyObj = &corev1.Secret{}
		}
		key := types.NamespacedName{Namespace: p.c.Namespace, Name: contract.PrimaryName(ref.Name)}
		if err := p.r.APIReader.Get(ctx, key, copyObj); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return fmt.Errorf("reading %s %s: %w", ref.Kind, key.Name, err)
		}
		if !ownedBy(copyObj, p.c.UID) {
			continue
		}
		changed := copyObj.DeepCopyObject().(client.Object)
		changed.SetOwnerReferences(withoutOwner(changed.GetOwnerReferences(), p.c.UID))
		if err := controllerutil.SetOwnerReference(p.primary.Object(), changed, p.r.Client.Scheme()); err != nil {
			return err
		}
		if err := p.patch(ctx, changed, copyObj); err != nil {
			return err
		}
	}
	// The -primary autoscaler: re-owned by the primary (its spec is the target's, as Flagger's).
	return p.syncHPA(ctx)
}

// ownedBy reports whether obj has an owner reference with uid.
func ownedBy(obj metav1.Object, uid types.UID) bool {
	for _, ref := range obj.GetOwnerReferences() {
		if ref.UID == uid {
			return true
		}
	}
	return false
}

// withoutOwner returns refs without the references to uid.
func withoutOwner(refs []metav1.OwnerReference, uid types.UID) []metav1.OwnerReference {
	var out []metav1.OwnerReference
	for _, ref := range refs {
		if ref.UID != uid {
			out = append(out, ref)
		}
	}
	return out
}
