// Package workload is Herald's mutating admission webhook for target Deployments and DaemonSets
// (apps/v1, CREATE and UPDATE), and the validating webhook for the deployments/scale
// subresource.
//
// For a workload labelled meta.LabelCanary the mutating handler
//
//   - writes the revision (revision.Of over the pod template and the checksums of the configs it
//     references, read from a metadata-only cache) to metadata.annotations["herald.dev/revision"];
//   - keeps an idle Deployment at zero replicas ("transparent replicas"): when the old object is
//     idle (meta.AnnotationIdle, spec.replicas 0), the pod template is unchanged (the new
//     revision equals the idle one) and somebody other than the controller asks for n > 0
//     replicas, it sets spec.replicas back to 0 and records n in meta.AnnotationDesiredReplicas;
//     the controller applies n to the primary.
//
// The handler has no side effects and its output depends only on the request and the cache:
// the same request gives the same patch. Dry-run requests (dryRun: true) therefore get exactly
// the patch a real request would get, so a server-side dry-run (Flux drift detection,
// kubectl diff) of a re-applied manifest equals the live object and shows no drift. The webhook
// configuration can declare sideEffects: None.
//
// The handlers never deny a workload write and never error: anything they do not understand is
// allowed unchanged (the controller computes the same revision itself, the webhook is only the
// fast path). Use failurePolicy: Ignore and a short timeout.
package workload

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"unicode/utf8"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"

	"github.com/herald-rollouts/herald/controllers/revision"
	"github.com/herald-rollouts/herald/webhooks/internal/mutate"
	"github.com/herald-rollouts/herald/webhooks/meta"
)

// Options configures the workload handlers.
type Options struct {
	// ControllerUsername is the user name of Herald's controller, e.g.
	// "system:serviceaccount:herald-system:herald". Its writes to an idle target are applied
	// as sent. Empty matches nobody.
	ControllerUsername string
	// ControllerGroups: a user in any of these groups counts as the controller too.
	ControllerGroups []string
	// DisableConfigTracking leaves referenced ConfigMaps and Secrets out of the revision
	// (the controller's --enable-config-tracking=false); both sides must agree.
	DisableConfigTracking bool
}

// isController reports whether the requesting user is Herald's controller.
func (o *Options) isController(u authenticationv1.UserInfo) bool {
	if o.ControllerUsername != "" && u.Username == o.ControllerUsername {
		return true
	}
	for _, g := range o.ControllerGroups {
		if g != "" && slices.Contains(u.Groups, g) {
			return true
		}
	}
	return false
}

// Handler is the mutating admission handler for target Deployments and DaemonSets.
type Handler struct {
	configs client.Reader
	opts    Options
}

var _ admission.Handler = (*Handler)(nil)

// NewHandler returns the workload handler. configs must serve metav1.PartialObjectMetadata
// ConfigMaps and Secrets from an informer cache (see meta.ConfigChecksums); it may be nil when
// opts.DisableConfigTracking is set.
func NewHandler(configs client.Reader, opts Options) *Handler {
	return &Handler{configs: configs, opts: opts}
}

// workloadObject is the part of a Deployment or DaemonSet the handler reads.
type workloadObject struct {
	labels      map[string]string
	annotations map[string]string
	namespace   string
	replicas    *int32 // Deployments only
	template    *corev1.PodTemplateSpec
}

// workloadDoc is the part of an apps/v1 Deployment or DaemonSet the handler reads: decoding
// only these fields skips managedFields, status and the rest of the spec, which the API server
// has validated already.
type workloadDoc struct {
	Metadata struct {
		Namespace   string            `json:"namespace"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		Replicas *int32                 `json:"replicas"` // Deployments only
		Template corev1.PodTemplateSpec `json:"template"`
	} `json:"spec"`
}

// decodeWorkload decodes raw like the API server does (case-sensitive field names) and refuses
// duplicate fields, on which a patch would be ambiguous.
func decodeWorkload(kind string, raw []byte) (*workloadObject, bool) {
	if len(raw) == 0 || (kind != "Deployment" && kind != "DaemonSet") {
		return nil, false
	}
	var d workloadDoc
	if !decodeStrict(raw, &d) {
		return nil, false
	}
	obj := &workloadObject{labels: d.Metadata.Labels, annotations: d.Metadata.Annotations,
		namespace: d.Metadata.Namespace, template: &d.Spec.Template}
	if kind == "Deployment" {
		obj.replicas = d.Spec.Replicas
	}
	return obj, true
}

// idleState is the part of the old Deployment that tells whether it is idle. Of the old
// annotations it holds only meta.AnnotationIdle, the one the handler reads.
type idleState struct {
	Metadata struct {
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		Replicas *int32 `json:"replicas"`
	} `json:"spec"`
}

// decodeIdleState reads the old object's idle annotation and spec.replicas. It gives what
// decoding raw case-sensitively into an idleState gives (sigsjson.UnmarshalCaseSensitivePreserveInts,
// with its validation of the whole document and its type errors, a repeated field merging into or
// replacing the earlier one), but in one pass that skips everything else without building it: the
// old object is the stored one, managedFields and status included. Duplicate fields are not
// refused here: the API server wrote the old object.
func decodeIdleState(raw []byte) (*idleState, bool) {
	if len(raw) == 0 {
		return nil, false
	}
	d := idleDecoder{scanner: scanner{data: raw}}
	d.skipSpace()
	switch {
	case d.peek() == '{':
		if !d.object(d.topField) {
			return nil, false
		}
	case d.peek() == 'n':
		if !d.literal("null") { // a null document decodes into the zero value
			return nil, false
		}
	default:
		return nil, false // not an object: a type error, or invalid
	}
	if d.skipSpace(); d.pos != len(d.data) {
		return nil, false
	}
	s := &idleState{}
	if d.idle {
		s.Metadata.Annotations = map[string]string{meta.AnnotationIdle: d.idleValue}
	}
	if d.hasReplicas {
		s.Spec.Replicas = &d.replicas
	}
	return s, true
}

// idleDecoder is decodeIdleState's state: what decoding into an idleState would have set.
type idleDecoder struct {
	scanner
	idle        bool // annotations hold meta.AnnotationIdle
	idleValue   string
	hasReplicas bool
	replicas    int32
}

// topField, metadataField and specField decode the value of one member of the document, of
// metadata and of spec, or skip it; like the fields of idleState, a null metadata or spec
// leaves what an earlier one set, and any other non-object is a type error.
func (d *idleDecoder) topField(key []byte, escaped bool) bool {
	switch {
	case keyIs(key, escaped, "metadata"):
		return d.structValue(d.metadataField)
	case keyIs(key, escaped, "spec"):
		return d.structValue(d.specField)
	}
	return d.skipValue()
}

func (d *idleDecoder) metadataField(key []byte, escaped bool) bool {
	if !keyIs(key, escaped, "annotations") {
		return d.skipValue()
	}
	switch d.peek() {
	case 'n': // a null map: an earlier annotations member is gone
		d.idle = false
		return d.literal("null")
	case '{': // merged into the map an earlier member made, if any
		return d.object(d.annotation)
	}
	return false
}

func (d *idleDecoder) annotation(key []byte, escaped bool) bool {
	if !keyIs(key, escaped, meta.AnnotationIdle) {
		// A map[string]string takes strings and nulls (as "").
		if d.peek() == 'n' {
			return d.literal("null")
		}
		_, _, ok := d.str()
		return ok
	}
	if d.peek() == 'n' {
		d.idle, d.idleValue = true, ""
		return d.literal("null")
	}
	v, escapedValue, ok := d.str()
	if !ok {
		return false
	}
	d.idle, d.idleValue = true, string(v)
	if escapedValue || !utf8.Valid(v) { // decoding replaces invalid UTF-8 with U+FFFD
		d.idleValue, ok = unquoteString(v)
	}
	return ok
}

func (d *idleDecoder) specField(key []byte, escaped bool) bool {
	if !keyIs(key, escaped, "replicas") {
		return d.skipValue()
	}
	if d.peek() == 'n' { // a null pointer
		d.hasReplicas = false
		return d.literal("null")
	}
	num, ok := d.number()
	if !ok {
		return false // not a number: a type error, or invalid
	}
	// As encoding/json stores a number in an int32: an integer in range, no fraction or exponent.
	n, err := strconv.ParseInt(string(num), 10, 32)
	if err != nil {
		return false
	}
	d.hasReplicas, d.replicas = true, int32(n)
	return true
}

// structValue decodes an object into a struct field with members, does nothing for null, and
// fails for any other value.
func (d *idleDecoder) structValue(members func(key []byte, escaped bool) bool) bool {
	switch d.peek() {
	case '{':
		return d.object(members)
	case 'n':
		return d.literal("null")
	}
	return false
}

// keyIs reports whether a member name (the raw content between its quotes) is name, exactly
// (case-sensitive, as the API server decodes).
func keyIs(key []byte, escaped bool, name string) bool {
	if !escaped {
		return string(key) == name
	}
	s, ok := unquoteString(key)
	return ok && s == name
}

// unquoteString decodes the raw content of a JSON string containing escapes.
func unquoteString(content []byte) (string, bool) {
	quoted := make([]byte, 0, len(content)+2)
	quoted = append(append(append(quoted, '"'), content...), '"')
	var s string
	err := json.Unmarshal(quoted, &s)
	return s, err == nil
}

// scanner walks a JSON document, validating it as encoding/json does (RFC 8259 grammar,
// at most maxNestingDepth nested arrays and objects).
type scanner struct {
	data  []byte
	pos   int
	depth int
}

const maxNestingDepth = 10000 // encoding/json's

func (s *scanner) peek() byte {
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *scanner) literal(lit string) bool {
	end := s.pos + len(lit)
	if end > len(s.data) || string(s.data[s.pos:end]) != lit {
		return false
	}
	s.pos = end
	return true
}

// object reads an object at s.pos, calling member with each member name (the raw content
// between its quotes, and whether it has escapes) once s.pos is at the member's value; member
// must read the value.
func (s *scanner) object(member func(key []byte, escaped bool) bool) bool {
	if s.depth++; s.depth > maxNestingDepth {
		return false
	}
	s.pos++ // '{'
	s.skipSpace()
	if s.peek() == '}' {
		s.pos++
		s.depth--
		return true
	}
	for {
		if s.peek() != '"' {
			return false
		}
		key, escaped, ok := s.str()
		if !ok {
			return false
		}
		s.skipSpace()
		if s.peek() != ':' {
			return false
		}
		s.pos++
		s.skipSpace()
		if !member(key, escaped) {
			return false
		}
		s.skipSpace()
		switch s.peek() {
		case ',':
			s.pos++
			s.skipSpace()
		case '}':
			s.pos++
			s.depth--
			return true
		default:
			return false
		}
	}
}

func (s *scanner) array() bool {
	if s.depth++; s.depth > maxNestingDepth {
		return false
	}
	s.pos++ // '['
	s.skipSpace()
	if s.peek() == ']' {
		s.pos++
		s.depth--
		return true
	}
	for {
		if !s.skipValue() {
			return false
		}
		s.skipSpace()
		switch s.peek() {
		case ',':
			s.pos++
			s.skipSpace()
		case ']':
			s.pos++
			s.depth--
			return true
		default:
			return false
		}
	}
}

// skipValue reads any value at s.pos.
func (s *scanner) skipValue() bool {
	switch c := s.peek(); {
	case c == '{':
		return s.object(func([]byte, bool) bool { return s.skipValue() })
	case c == '[':
		return s.array()
	case c == '"':
		_, _, ok := s.str()
		return ok
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	default:
		_, ok := s.number()
		return ok
	}
}

// str reads a string at s.pos and returns its raw content and whether it has escapes.
func (s *scanner) str() (content []byte, escaped, ok bool) {
	if s.peek() != '"' {
		return nil, false, false
	}
	start := s.pos + 1
	for i := start; i < len(s.data); i++ {
		switch c := s.data[i]; {
		case c == '"':
			s.pos = i + 1
			return s.data[start:i], escaped, true
		case c == '\\':
			escaped = true
			i++
			if i >= len(s.data) {
				return nil, false, false
			}
			switch s.data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(s.data) {
					return nil, false, false
				}
				for _, h := range s.data[i+1 : i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return nil, false, false
					}
				}
				i += 4
			default:
				return nil, false, false
			}
		case c < 0x20:
			return nil, false, false
		}
	}
	return nil, false, false
}

// number reads a number at s.pos.
func (s *scanner) number() ([]byte, bool) {
	start, i, data := s.pos, s.pos, s.data
	digits := func() int {
		n := 0
		for i < len(data) && '0' <= data[i] && data[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(data) && data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case digits() == 0:
		return nil, false
	}
	if i < len(data) && data[i] == '.' {
		i++
		if digits() == 0 {
			return nil, false
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if digits() == 0 {
			return nil, false
		}
	}
	s.pos = i
	return data[start:i], true
}

func decodeStrict(raw []byte, into any) bool {
	strict, err := sigsjson.UnmarshalStrict(raw, into, sigsjson.DisallowDuplicateFields)
	return err == nil && len(strict) == 0
}

// Handle implements admission.Handler.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed("operation not handled")
	}
	kind := req.Kind.Kind
	if req.Kind.Group != "apps" || req.Kind.Version != "v1" || (kind != "Deployment" && kind != "DaemonSet") {
		return admission.Allowed("kind not handled")
	}
	obj, ok := decodeWorkload(kind, req.Object.Raw)
	if !ok {
		return admission.Allowed("object not decodable, left unchanged")
	}
	canary := obj.labels[meta.LabelCanary]
	if canary == "" {
		return admission.Allowed("not managed by Herald")
	}
	// The canary label guarantees a metadata object for the patch to edit.
	patch := mutate.New(obj.annotations)

	namespace := req.Namespace
	if namespace == "" {
		namespace = obj.namespace
	}
	var (
		configs map[string]string
		err     error
	)
	if !h.opts.DisableConfigTracking {
		configs, err = meta.ConfigChecksums(ctx, h.configs, namespace, &obj.template.Spec)
		if err != nil {
			return admission.Allowed("config cache unavailable, revision left to the controller")
		}
	}
	rev, err := revision.Of(obj.template, configs)
	if err != nil {
		return admission.Allowed("revision not computable, left to the controller")
	}
	patch.SetAnnotation(meta.AnnotationRevision, rev)

	msg := "revision " + rev
	if kind == "Deployment" && req.Operation == admissionv1.Update {
		if held := h.holdReplicas(req, obj, rev, patch); held != "" {
			msg += "; " + held
		}
	}
	return patch.Response(msg)
}

// holdReplicas applies the transparent-replicas rule to a Deployment UPDATE and returns a
// description of what it did ("" when nothing).
func (h *Handler) holdReplicas(req admission.Request, obj *workloadObject, rev string, patch *mutate.Patch) string {
	// Cheapest checks first: most updates of a managed target are not a replicas wish on an
	// idle one.
	if obj.replicas == nil || *obj.replicas == 0 || h.opts.isController(req.UserInfo) {
		return ""
	}
	old, ok := decodeIdleState(req.OldObject.Raw)
	if !ok {
		return ""
	}
	idleRev, idle := old.Metadata.Annotations[meta.AnnotationIdle]
	if !idle || old.Spec.Replicas == nil || *old.Spec.Replicas != 0 {
		return "" // not idle
	}
	if rev != idleRev {
		return "" // a new pod template: the user's replicas start the canary
	}
	// obj.replicas is non-nil: spec is an object with a replicas member.
	current := int64(*obj.replicas)
	want := strconv.FormatInt(current, 10)
	patch.SetSpecInt("replicas", 0, &current)
	patch.SetAnnotation(meta.AnnotationDesiredReplicas, want)
	// Keep the idle mark even when the request dropped it (kubectl replace, or a server-side
	// apply whose manager had come to own it).
	patch.SetAnnotation(meta.AnnotationIdle, idleRev)
	return "idle at revision " + idleRev + ": replicas " + want + " recorded in " +
		meta.AnnotationDesiredReplicas + ", target kept at 0"
}
