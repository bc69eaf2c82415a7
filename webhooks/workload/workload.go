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

// decodeWorkload decodes raw like the API server does (case-sensitive field names) and refuses
// duplicate fields, on which a patch would be ambiguous. It reads metadata.namespace, .labels
// and .annotations, spec.replicas and spec.template, and gives what strictly decoding raw into
// a struct with just these fields (sigsjson.UnmarshalStrict with DisallowDuplicateFields) gives;
// but only the pod template goes through reflection: the rest of the object is validated and
// skipped in one pass without being built (managedFields, status, the rest of the spec, which
// the API server has validated already).
func decodeWorkload(kind string, raw []byte) (*workloadObject, bool) {
	if len(raw) == 0 || (kind != "Deployment" && kind != "DaemonSet") {
		return nil, false
	}
	d := workloadDecoder{scanner: scanner{data: raw}}
	d.skipSpace()
	switch d.peek() {
	case '{':
		if !d.object(d.topField) {
			return nil, false
		}
	case 'n':
		if !d.literal("null") { // a null document decodes into the zero value
			return nil, false
		}
	default:
		return nil, false // not an object: a type error, or invalid
	}
	if d.skipSpace(); d.pos != len(d.data) {
		return nil, false
	}
	obj := &workloadObject{labels: d.labels, annotations: d.annotations, namespace: d.namespace,
		template: &corev1.PodTemplateSpec{}}
	// The scanner validated the whole document (nesting depth included), so the template's
	// bytes decode alone as they would in place.
	if d.template != nil && !mutate.DecodeStrict(d.template, obj.template) {
		return nil, false
	}
	if kind == "Deployment" {
		obj.replicas = d.replicas
	}
	return obj, true
}

// workloadDecoder is decodeWorkload's state.
type workloadDecoder struct {
	scanner
	seen        uint8 // the fields read so far, for refusing duplicates
	namespace   string
	labels      map[string]string
	annotations map[string]string
	replicas    *int32
	template    []byte // the raw spec.template
}

const (
	seenMetadata uint8 = 1 << iota
	seenSpec
	seenNamespace
	seenLabels
	seenAnnotations
	seenReplicas
	seenTemplate
)

// once reports whether a field is read for the first time, and marks it read.
func (d *workloadDecoder) once(field uint8) bool {
	if d.seen&field != 0 {
		return false
	}
	d.seen |= field
	return true
}

func (d *workloadDecoder) topField(key []byte, escaped bool) bool {
	switch {
	case keyIs(key, escaped, "metadata"):
		return d.once(seenMetadata) && d.structValue(d.metadataField)
	case keyIs(key, escaped, "spec"):
		return d.once(seenSpec) && d.structValue(d.specField)
	}
	return d.skipValue()
}

func (d *workloadDecoder) metadataField(key []byte, escaped bool) bool {
	switch {
	case keyIs(key, escaped, "namespace"):
		if !d.once(seenNamespace) {
			return false
		}
		if d.peek() == 'n' { // null leaves a string as it is
			return d.literal("null")
		}
		v, ok := d.stringValue()
		d.namespace = v
		return ok
	case keyIs(key, escaped, "labels"):
		return d.once(seenLabels) && d.stringMap(&d.labels)
	case keyIs(key, escaped, "annotations"):
		return d.once(seenAnnotations) && d.stringMap(&d.annotations)
	}
	return d.skipValue()
}

func (d *workloadDecoder) specField(key []byte, escaped bool) bool {
	switch {
	case keyIs(key, escaped, "replicas"):
		if !d.once(seenReplicas) {
			return false
		}
		if d.peek() == 'n' { // a null pointer
			return d.literal("null")
		}
		n, ok := d.int32Value()
		d.replicas = &n
		return ok
	case keyIs(key, escaped, "template"):
		if !d.once(seenTemplate) {
			return false
		}
		start := d.pos
		if !d.skipValue() {
			return false
		}
		d.template = d.data[start:d.pos]
		return true
	}
	return d.skipValue()
}

// stringMap decodes a map[string]string: null is a nil map, an object a map of its members,
// whose values are strings or null (""); a repeated key is refused.
func (d *workloadDecoder) stringMap(m *map[string]string) bool {
	switch d.peek() {
	case 'n':
		return d.literal("null")
	case '{':
		*m = map[string]string{}
		return d.object(func(key []byte, escaped bool) bool {
			k, ok := decodeString(key, escaped)
			if !ok {
				return false
			}
			if _, dup := (*m)[k]; dup {
				return false
			}
			v := ""
			if d.peek() == 'n' {
				ok = d.literal("null")
			} else {
				v, ok = d.stringValue()
			}
			(*m)[k] = v
			return ok
		})
	}
	return false
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
	v, ok := d.stringValue()
	d.idle, d.idleValue = true, v
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
	n, ok := d.int32Value()
	d.hasReplicas, d.replicas = true, n
	return ok
}

// structValue decodes an object into a struct field with members, does nothing for null, and
// fails for any other value.
func (s *scanner) structValue(members func(key []byte, escaped bool) bool) bool {
	switch s.peek() {
	case '{':
		return s.object(members)
	case 'n':
		return s.literal("null")
	}
	return false
}

// stringValue decodes a string (and nothing else) as encoding/json does.
func (s *scanner) stringValue() (string, bool) {
	v, escaped, ok := s.str()
	if !ok {
		return "", false
	}
	return decodeString(v, escaped)
}

// int32Value decodes a number into an int32 as encoding/json does: an integer in range, with
// no fraction or exponent.
func (s *scanner) int32Value() (int32, bool) {
	num, ok := s.number()
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(string(num), 10, 32)
	return int32(n), err == nil
}

// decodeString decodes the raw content of a JSON string.
func decodeString(content []byte, escaped bool) (string, bool) {
	if escaped || !utf8.Valid(content) { // decoding replaces invalid UTF-8 with U+FFFD
		return unquoteString(content)
	}
	return string(content), true
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
		for i < len(s.data) && plainStringByte[s.data[i]] {
			i++
		}
		if i == len(s.data) {
			break
		}
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

// plainStringByte: the bytes that stand for themselves inside a JSON string.
var plainStringByte = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

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
