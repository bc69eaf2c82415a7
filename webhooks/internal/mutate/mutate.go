// Package mutate edits an admission request's object as generic JSON and turns the edit into
// a deterministic JSON patch.
//
// The object is decoded into map[string]any rather than a typed struct, so that re-encoding it
// changes nothing but the fields the webhook sets (a typed round trip would drop unknown fields
// and add defaults, see kubebuilder#510). Documents with duplicate keys are refused (the caller
// then allows the request unchanged): the patch would be ambiguous on them.
package mutate

import (
	"encoding/json"
	"errors"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"
)

var (
	errDuplicate = errors.New("object has duplicate fields")
	errNotObject = errors.New("object is not a JSON object")
	errMetadata  = errors.New("metadata is not a JSON object")
	errSpec      = errors.New("spec is not a JSON object")
)

// Doc is an object being mutated.
type Doc struct {
	raw     []byte
	obj     map[string]any
	changed bool
}

// Parse decodes raw, case-sensitively and keeping integers as integers, like the API server.
func Parse(raw []byte) (*Doc, error) {
	var obj map[string]any
	strict, err := sigsjson.UnmarshalStrict(raw, &obj, sigsjson.DisallowDuplicateFields)
	if err != nil {
		return nil, err
	}
	if len(strict) > 0 {
		return nil, errDuplicate
	}
	if obj == nil {
		return nil, errNotObject
	}
	return &Doc{raw: raw, obj: obj}, nil
}

// Changed reports whether an edit changed the document.
func (d *Doc) Changed() bool { return d.changed }

// annotations returns the metadata.annotations map, creating it when create is set.
func (d *Doc) annotations(create bool) (map[string]any, error) {
	md, ok := d.obj["metadata"].(map[string]any)
	if !ok {
		if !create {
			return nil, nil
		}
		return nil, errMetadata
	}
	switch a := md["annotations"].(type) {
	case map[string]any:
		return a, nil
	case nil:
		if !create {
			return nil, nil
		}
		created := map[string]any{}
		md["annotations"] = created
		return created, nil
	default:
		return nil, errMetadata
	}
}

// SetAnnotation sets metadata.annotations[key] to value.
func (d *Doc) SetAnnotation(key, value string) error {
	a, err := d.annotations(false)
	if err != nil {
		return err
	}
	if cur, ok := a[key].(string); ok && cur == value {
		return nil
	}
	if a == nil {
		if a, err = d.annotations(true); err != nil {
			return err
		}
	}
	a[key] = value
	d.changed = true
	return nil
}

// RemoveAnnotation deletes metadata.annotations[key].
func (d *Doc) RemoveAnnotation(key string) error {
	a, err := d.annotations(false)
	if err != nil {
		return err
	}
	if _, ok := a[key]; !ok {
		return nil
	}
	delete(a, key)
	d.changed = true
	return nil
}

// SetSpecInt sets spec.<field> to v.
func (d *Doc) SetSpecInt(field string, v int64) error {
	spec, ok := d.obj["spec"].(map[string]any)
	if !ok {
		return errSpec
	}
	if cur, ok := spec[field].(int64); ok && cur == v {
		return nil
	}
	spec[field] = v
	d.changed = true
	return nil
}

// Response is the admission response for the edits made so far: allowed without a patch when
// nothing changed, else allowed with the JSON patch from the original raw object to the edited
// one (admission.PatchResponseFromRaw), its operations sorted by path so that the same request
// always gives the same bytes. It never denies: if the patch cannot be built the request is
// allowed unchanged.
func (d *Doc) Response(message string) admission.Response {
	if !d.changed {
		return admission.Allowed(message)
	}
	mutated, err := json.Marshal(d.obj)
	if err != nil {
		return admission.Allowed(message + " (not mutated: cannot encode the object)")
	}
	resp := admission.PatchResponseFromRaw(d.raw, mutated)
	if !resp.Allowed {
		return admission.Allowed(message + " (not mutated: cannot build the patch)")
	}
	// CreatePatch walks maps in random order. The edits above only touch object members at
	// distinct paths (never array elements), so the operations are independent and may be
	// sorted.
	sort.SliceStable(resp.Patches, func(i, j int) bool {
		if resp.Patches[i].Path != resp.Patches[j].Path {
			return resp.Patches[i].Path < resp.Patches[j].Path
		}
		return resp.Patches[i].Operation < resp.Patches[j].Operation
	})
	resp.Result = &metav1.Status{Message: message}
	return resp
}
