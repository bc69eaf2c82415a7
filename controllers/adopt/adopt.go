// Package adopt records what an object a user made looked like before Herald took it over for
// a Canary (an apex Service, a VirtualService, a DestinationRule, a route), so that it can be
// put back as it was when the Canary goes. Herald does not own such objects: garbage
// collection must never delete a user's object with the Canary.
//
// The record is the annotation contract.AnnotationOriginal (JSON) and the label
// contract.LabelAdoptedBy (the Canary's name), which lets Herald find the objects to put back
// after the Canary itself is gone.
package adopt

import (
	"encoding/json"
	"fmt"
	"maps"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-rollouts/herald/internal/contract"
)

// Original is what an adopted object looked like: its labels and annotations, and the part of
// its spec Herald changes (as the object's kind encodes it in JSON).
type Original struct {
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Spec        json.RawMessage   `json:"spec,omitempty"`
}

// Adopted reports whether obj carries Herald's adoption record, and for which Canary.
func Adopted(obj client.Object) (canary string, ok bool) {
	canary, ok = obj.GetLabels()[contract.LabelAdoptedBy]
	return canary, ok
}

// Record marks obj adopted by canary and records its current labels, annotations and spec
// (any value that encodes as JSON), unless obj already carries a record: the first record is
// the user's object, later ones would be Herald's own changes. It changes obj only.
func Record(obj client.Object, canary string, spec any) error {
	if _, ok := Adopted(obj); ok {
		return nil
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("recording %s as it was: %w", obj.GetName(), err)
	}
	rec, err := json.Marshal(Original{Labels: maps.Clone(obj.GetLabels()), Annotations: maps.Clone(obj.GetAnnotations()), Spec: raw})
	if err != nil {
		return fmt.Errorf("recording %s as it was: %w", obj.GetName(), err)
	}
	labels, annotations := obj.GetLabels(), obj.GetAnnotations()
	if labels == nil {
		labels = map[string]string{}
	}
	if annotations == nil {
		annotations = map[string]string{}
	}
	labels[contract.LabelAdoptedBy] = canary
	annotations[contract.AnnotationOriginal] = string(rec)
	obj.SetLabels(labels)
	obj.SetAnnotations(annotations)
	return nil
}

// Restore puts obj's labels and annotations back as they were and decodes its original spec
// into spec, for the caller to set. It reports false when obj carries no record (it changes
// nothing then).
func Restore(obj client.Object, spec any) (bool, error) {
	raw, ok := obj.GetAnnotations()[contract.AnnotationOriginal]
	if !ok {
		return false, nil
	}
	var rec Original
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		return false, fmt.Errorf("reading what %s was before Herald took it over: %w", obj.GetName(), err)
	}
	if len(rec.Spec) > 0 {
		if err := json.Unmarshal(rec.Spec, spec); err != nil {
			return false, fmt.Errorf("reading the spec %s had before Herald took it over: %w", obj.GetName(), err)
		}
	}
	obj.SetLabels(rec.Labels)
	obj.SetAnnotations(rec.Annotations)
	return true, nil
}
