// Package mutate builds the JSON patch of Herald's webhooks: edits of metadata.annotations and
// of scalar spec fields, expressed directly as RFC 6902 operations.
//
// The operations are the ones admission.PatchResponseFromRaw(raw, edited) would compute (add for
// a new member, replace for an existing one, remove), without its cost: that function decodes
// both documents and diffs them, about a third of a workload request, and walks maps in random
// order. Here the operations are sorted by path, so the same request always gives the same
// bytes. Nothing but the edited members is touched, so there is no typed round trip that could
// drop unknown fields or add defaults (kubebuilder#510). The callers decode the object with
// sigs.k8s.io/json (case-sensitive, duplicate fields refused) and pass in what they read; the
// fuzz tests check that the patch applies to the raw object and changes only those members.
package mutate

import (
	"sort"
	"strings"

	sigsjson "sigs.k8s.io/json"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	jsonpatch "gomodules.xyz/jsonpatch/v2"
)

// Patch collects edits of one object.
type Patch struct {
	annotations map[string]string // as sent; nil when absent or null
	edits       map[string]*string
	spec        []specEdit
}

type specEdit struct {
	field   string
	value   int64
	existed bool
}

// New starts a patch of an object whose metadata.annotations are annotations (nil when the
// object has none, or null). The object must have a metadata object.
func New(annotations map[string]string) *Patch {
	return &Patch{annotations: annotations}
}

// SetAnnotation sets metadata.annotations[key] to value.
func (p *Patch) SetAnnotation(key, value string) {
	if p.edits == nil {
		p.edits = map[string]*string{}
	}
	p.edits[key] = &value
}

// RemoveAnnotation deletes metadata.annotations[key].
func (p *Patch) RemoveAnnotation(key string) {
	if p.edits == nil {
		p.edits = map[string]*string{}
	}
	p.edits[key] = nil
}

// Annotation is the value of metadata.annotations[key] after the edits so far.
func (p *Patch) Annotation(key string) (string, bool) {
	if v, edited := p.edits[key]; edited {
		if v == nil {
			return "", false
		}
		return *v, true
	}
	v, ok := p.annotations[key]
	return v, ok
}

// SetSpecInt sets spec.<field> to value; current is the field's value in the object, nil when
// absent or null. The object must have a spec object.
func (p *Patch) SetSpecInt(field string, value int64, current *int64) {
	if current != nil && *current == value {
		return
	}
	p.spec = append(p.spec, specEdit{field: field, value: value, existed: current != nil})
}

var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

// Operations returns the JSON patch operations of the edits, sorted by path; none when the
// edits change nothing.
func (p *Patch) Operations() []jsonpatch.JsonPatchOperation {
	var ops []jsonpatch.JsonPatchOperation
	if p.annotations == nil {
		// One operation creates the map ("add" also replaces a null member).
		added := map[string]string{}
		for k, v := range p.edits {
			if v != nil {
				added[k] = *v
			}
		}
		if len(added) > 0 {
			ops = append(ops, jsonpatch.NewOperation("add", "/metadata/annotations", added))
		}
	} else {
		for k, v := range p.edits {
			cur, exists := p.annotations[k]
			path := "/metadata/annotations/" + pointerEscaper.Replace(k)
			switch {
			case v == nil && exists:
				ops = append(ops, jsonpatch.NewOperation("remove", path, nil))
			case v == nil || (exists && cur == *v):
			case exists:
				ops = append(ops, jsonpatch.NewOperation("replace", path, *v))
			default:
				ops = append(ops, jsonpatch.NewOperation("add", path, *v))
			}
		}
	}
	for _, e := range p.spec {
		op := "add"
		if e.existed {
			op = "replace"
		}
		ops = append(ops, jsonpatch.NewOperation(op, "/spec/"+pointerEscaper.Replace(e.field), e.value))
	}
	// Paths are distinct object members, so the operations are independent and may be sorted.
	sort.Slice(ops, func(i, j int) bool { return ops[i].Path < ops[j].Path })
	return ops
}

// Response is the mutating admission response of the edits: allowed, with the patch when the
// edits change something. It never denies.
func (p *Patch) Response(message string) admission.Response {
	ops := p.Operations()
	if len(ops) == 0 {
		return admission.Allowed(message)
	}
	pt := admissionv1.PatchTypeJSONPatch
	return admission.Response{
		Patches: ops,
		AdmissionResponse: admissionv1.AdmissionResponse{
			Allowed:   true,
			PatchType: &pt,
			Result:    &metav1.Status{Message: message},
		},
	}
}

// DecodeStrict decodes raw like the API server does (case-sensitive field names) and refuses
// duplicate fields, on which a patch would be ambiguous. Its errors are dropped: they can quote
// a fragment of the object, such as Secret keys.
func DecodeStrict(raw []byte, into any) bool {
	strict, err := sigsjson.UnmarshalStrict(raw, into, sigsjson.DisallowDuplicateFields)
	return err == nil && len(strict) == 0
}
