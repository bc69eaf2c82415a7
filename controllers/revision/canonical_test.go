package revision

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// referenceCanonical is the definition of the canonical form, kept as the original
// implementation: canonicalTemplate must return exactly its bytes for every template.
func referenceCanonical(tmpl *corev1.PodTemplateSpec) ([]byte, error) {
	if tmpl == nil {
		return []byte("{}"), nil
	}
	raw, err := json.Marshal(tmpl)
	if err != nil {
		return nil, err
	}
	var generic map[string]any
	if err := json.Unmarshal(raw, &generic); err != nil {
		return nil, err
	}
	if meta, ok := generic["metadata"].(map[string]any); ok {
		for _, field := range []string{"labels", "annotations"} {
			if m, ok := meta[field].(map[string]any); ok {
				for k := range m {
					if strings.HasPrefix(k, Prefix) {
						delete(m, k)
					}
				}
			}
		}
	}
	if spec, ok := generic["spec"].(map[string]any); ok {
		if m, ok := spec["nodeSelector"].(map[string]any); ok {
			for k := range m {
				if strings.HasPrefix(k, Prefix) {
					delete(m, k)
				}
			}
		}
	}
	pruned, _ := referencePrune(generic)
	if pruned == nil {
		pruned = map[string]any{}
	}
	return json.Marshal(pruned)
}

func referencePrune(v any) (any, bool) {
	switch t := v.(type) {
	case nil:
		return nil, false
	case map[string]any:
		for k, child := range t {
			if p, keep := referencePrune(child); keep {
				t[k] = p
			} else {
				delete(t, k)
			}
		}
		return t, len(t) > 0
	case []any:
		for i, child := range t {
			if p, keep := referencePrune(child); keep {
				t[i] = p
			} else if _, isMap := child.(map[string]any); isMap {
				t[i] = map[string]any{}
			} else {
				t[i] = nil
			}
		}
		return t, len(t) > 0
	default:
		return t, true
	}
}

// checkSameAsReference fails unless canonicalTemplate and referenceCanonical agree on tmpl:
// same bytes, or both an error.
func checkSameAsReference(t *testing.T, tmpl *corev1.PodTemplateSpec) {
	t.Helper()
	want, wantErr := referenceCanonical(tmpl)
	got, gotErr := canonicalTemplate(tmpl)
	if (wantErr != nil) != (gotErr != nil) {
		t.Fatalf("error %v, reference error %v; template %s", gotErr, wantErr, mustMarshal(t, tmpl))
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("canonical form differs from the reference\n got %s\nwant %s\ntemplate %s", got, want, mustMarshal(t, tmpl))
	}
	if wantErr == nil {
		// Of hashes the same bytes through its pooled path.
		if _, err := Of(tmpl, nil); err != nil {
			t.Fatalf("Of: %v", err)
		}
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	raw, err := json.Marshal(v)
	if err != nil {
		return []byte(fmt.Sprintf("<%v>", err))
	}
	return raw
}

func TestCanonicalMatchesReferenceOnRandomTemplates(t *testing.T) {
	checkSameAsReference(t, nil)
	checkSameAsReference(t, &corev1.PodTemplateSpec{})
	checkSameAsReference(t, podinfo())
	n := 3000
	if testing.Short() {
		n = 300
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < n; i++ {
		g := &gen{r: r}
		checkSameAsReference(t, g.template())
	}
}

// Templates whose fieldsV1 (raw JSON copied into the output by a json.Marshaler) holds what
// encoding/json itself never writes: other escapes, duplicate keys, floats, huge numbers.
func TestCanonicalMatchesReferenceOnRawJSON(t *testing.T) {
	docs := []string{
		`{}`, `[]`, `null`, `{"a":null}`, `[null,[],{},{"a":[]},[[]],[null]]`,
		`{"b":1,"a":2,"b":null}`, `{"b":1,"a":2,"b":3}`, `{"a":{"x":1},"a":{}}`, `{"a":{},"a":{"x":1}}`,
		`{"\u0062":1,"a":2,"b":3}`, `{"a\/b":"\/\u0041\u00e9\ud83d\ude00\ud800\udc00x\ud800\u0041\udc00"}`,
		`{"k":"\ufffd\u2028\u2029 \u003c\u003e\u0026 \b\f\n\r\t\u0000\u001f\u007f \\ \""}`,
		`{"é":1,"e":2,"z":3,"\u00e9":4,"ÿ":5,"\ufffd":6,"~":7}`,
		`[1.0,1.5,-0,-0.0,0.0,1e2,1E2,1e+2,1e-2,1e-7,1e-6,1e20,1e21,1e22,123456789012345678901234567890,1e308,5e-324,1e-400]`,
		`[9007199254740993,9007199254740992,18446744073709551615,-9223372036854775808,100000000000000000000,999999999999999,1000000000000000]`,
		`[0.1,0.2,0.30000000000000004,1.7976931348623157e308,2.2250738585072014e-308,123.456e-10]`,
		`{"a":true,"b":false,"c":"","d":[""],"e":{"f":{"g":{"h":null}}}}`,
		` { "a" : [ 1 , 2 ] , "b" : { } } `,
		"{\"a\":\"\xff\xfe\",\"b\":\"x\xc3\"}",
		`[1e400]`, `{"a":-1e400}`,
	}
	for _, d := range docs {
		tmpl := podinfo()
		tmpl.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "m", FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(d)}}}
		checkSameAsReference(t, tmpl)
	}
	// Deep nesting, up to and past encoding/json's decoding limit.
	for _, depth := range []int{100, 9995, 9996, 9997, 10000} {
		d := strings.Repeat("[", depth) + strings.Repeat("]", depth)
		tmpl := &corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{
			ManagedFields: []metav1.ManagedFieldsEntry{{FieldsV1: &metav1.FieldsV1{Raw: []byte(d)}}}}}
		checkSameAsReference(t, tmpl)
	}
}

// Map keys that differ only in invalid UTF-8 encode to the same JSON key.
func TestCanonicalMatchesReferenceOnCollidingKeys(t *testing.T) {
	tmpl := podinfo()
	tmpl.Labels["a\xff"] = "1"
	tmpl.Labels["a\xfe"] = "2"
	tmpl.Labels["a\ufffd"] = "3"
	tmpl.Annotations["herald.dev/\xff"] = "x"
	tmpl.Spec.NodeSelector = map[string]string{"k\xff": "", "k\xfe": "v", "k\xc0": ""}
	checkSameAsReference(t, tmpl)
}

// gen builds random pod templates.
type gen struct{ r *rand.Rand }

var nasty = []string{
	"", " ", "a", "podinfo", "<", ">", "&", "<script>&amp;</script>", `"`, `\`, `\"`, `\\u0041`, "\\/", "/",
	"\x00", "\x01", "\b", "\f", "\n", "\r", "\t", "\x1f", "\x7f", "é", "日本語", "😀", "\u2028", "\u2029",
	"\ufffd", "\xff", "\xc3", "\xed\xa0\x80", "a\xffb", "herald.dev/", "herald.dev/revision", "herald.dev/x",
	"Herald.dev/x", "herald.devx", "app.kubernetes.io/name", "~", "zzz", "null", "true", "0", "{}", "[]",
}

func (g *gen) str() string {
	switch g.r.IntN(4) {
	case 0:
		return nasty[g.r.IntN(len(nasty))]
	case 1:
		return nasty[g.r.IntN(len(nasty))] + nasty[g.r.IntN(len(nasty))] + nasty[g.r.IntN(len(nasty))]
	case 2:
		b := make([]byte, g.r.IntN(12))
		for i := range b {
			b[i] = byte(g.r.IntN(256))
		}
		return string(b)
	default:
		rs := make([]rune, g.r.IntN(8))
		for i := range rs {
			rs[i] = rune(g.r.IntN(0x11000))
		}
		return string(rs)
	}
}

func (g *gen) coin() bool { return g.r.IntN(2) == 0 }

func (g *gen) strs() []string {
	switch g.r.IntN(4) {
	case 0:
		return nil
	case 1:
		return []string{}
	}
	s := make([]string, g.r.IntN(4)+1)
	for i := range s {
		s[i] = g.str()
	}
	return s
}

func (g *gen) strMap() map[string]string {
	switch g.r.IntN(4) {
	case 0:
		return nil
	case 1:
		return map[string]string{}
	}
	m := map[string]string{}
	for range g.r.IntN(6) + 1 {
		m[g.str()] = g.str()
	}
	return m
}

func (g *gen) int64() int64 {
	switch g.r.IntN(8) {
	case 0:
		return 0
	case 1:
		return 1 << 60
	case 2:
		return math.MaxInt64
	case 3:
		return math.MinInt64
	case 4:
		return 1<<53 + int64(g.r.IntN(3)) - 1
	case 5:
		return -g.r.Int64()
	case 6:
		return int64(g.r.IntN(1000))
	default:
		return g.r.Int64()
	}
}

func (g *gen) int64p() *int64 {
	if g.coin() {
		return nil
	}
	return ptr.To(g.int64())
}

func (g *gen) int32() int32 {
	if g.coin() {
		return int32(g.r.IntN(100000))
	}
	return int32(g.r.Uint32())
}

func (g *gen) quantity() resource.Quantity {
	switch g.r.IntN(6) {
	case 0:
		return resource.MustParse([]string{"0", "100m", "1", "1.5", "64Mi", "1Gi", "2e3", "1E", "0.000001", "123456789012345678901234"}[g.r.IntN(10)])
	case 1:
		return *resource.NewQuantity(g.int64(), resource.DecimalSI)
	case 2:
		return *resource.NewMilliQuantity(g.int64(), resource.DecimalSI)
	case 3:
		return *resource.NewQuantity(g.int64(), resource.BinarySI)
	case 4:
		return *resource.NewScaledQuantity(g.int64(), resource.Scale(g.r.IntN(40)-20))
	default:
		return resource.Quantity{}
	}
}

func (g *gen) resources() corev1.ResourceRequirements {
	var rr corev1.ResourceRequirements
	for _, l := range []*corev1.ResourceList{&rr.Requests, &rr.Limits} {
		switch g.r.IntN(3) {
		case 0:
		case 1:
			*l = corev1.ResourceList{}
		default:
			*l = corev1.ResourceList{}
			for range g.r.IntN(3) + 1 {
				(*l)[corev1.ResourceName(g.str())] = g.quantity()
			}
		}
	}
	return rr
}

func (g *gen) container() corev1.Container {
	c := corev1.Container{
		Name: g.str(), Image: g.str(), Command: g.strs(), Args: g.strs(), WorkingDir: g.str(),
		Resources: g.resources(), TerminationMessagePath: g.str(),
	}
	if g.coin() {
		c.Env = []corev1.EnvVar{}
		for range g.r.IntN(4) {
			e := corev1.EnvVar{Name: g.str(), Value: g.str()}
			if g.coin() {
				e.ValueFrom = &corev1.EnvVarSource{}
				if g.coin() {
					e.ValueFrom.SecretKeyRef = &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: g.str()}, Key: g.str()}
				}
				if g.coin() {
					e.ValueFrom.ResourceFieldRef = &corev1.ResourceFieldSelector{Resource: g.str(), Divisor: g.quantity()}
				}
			}
			c.Env = append(c.Env, e)
		}
	}
	if g.coin() {
		c.Ports = []corev1.ContainerPort{{Name: g.str(), ContainerPort: g.int32(), HostPort: g.int32(), Protocol: corev1.Protocol(g.str())}, {}}
	}
	if g.coin() {
		c.SecurityContext = &corev1.SecurityContext{RunAsUser: g.int64p(), RunAsGroup: g.int64p(), Privileged: ptr.To(g.coin())}
		if g.coin() {
			c.SecurityContext.Capabilities = &corev1.Capabilities{Add: []corev1.Capability{corev1.Capability(g.str())}, Drop: []corev1.Capability{}}
		}
	}
	if g.coin() {
		c.LivenessProbe = &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: g.str(), Port: []intstr.IntOrString{
				intstr.FromInt32(g.int32()), intstr.FromString(g.str()), {}}[g.r.IntN(3)]}},
			InitialDelaySeconds: g.int32(), TerminationGracePeriodSeconds: g.int64p(),
		}
	}
	return c
}

func (g *gen) template() *corev1.PodTemplateSpec {
	t := &corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{
			Name: g.str(), Namespace: g.str(), GenerateName: g.str(),
			Labels: g.strMap(), Annotations: g.strMap(), Finalizers: g.strs(),
			Generation: g.int64(), DeletionGracePeriodSeconds: g.int64p(),
		},
		Spec: corev1.PodSpec{
			NodeSelector: g.strMap(), ServiceAccountName: g.str(),
			ActiveDeadlineSeconds: g.int64p(), TerminationGracePeriodSeconds: g.int64p(),
			AutomountServiceAccountToken: []*bool{nil, ptr.To(true), ptr.To(false)}[g.r.IntN(3)],
			Priority:                     []*int32{nil, ptr.To(g.int32())}[g.r.IntN(2)],
		},
	}
	if g.coin() {
		t.Labels = map[string]string{Prefix + "canary": "x", "app": g.str()}
		t.Annotations = map[string]string{Annotation: g.str(), Prefix + "idle": "", g.str(): g.str()}
	}
	if g.coin() {
		t.CreationTimestamp = metav1.NewTime(time.Unix(g.r.Int64N(1<<33), 0))
	}
	if g.coin() {
		t.OwnerReferences = []metav1.OwnerReference{{APIVersion: g.str(), Kind: g.str(), Name: g.str(), Controller: ptr.To(g.coin())}}
	}
	if g.coin() {
		t.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: g.str(), FieldsType: "FieldsV1",
			FieldsV1: &metav1.FieldsV1{Raw: []byte(g.rawJSON(3))}}, {}}
	}
	switch g.r.IntN(3) {
	case 0:
	case 1:
		t.Spec.Containers = []corev1.Container{}
	default:
		for range g.r.IntN(3) + 1 {
			t.Spec.Containers = append(t.Spec.Containers, g.container())
		}
	}
	if g.coin() {
		t.Spec.InitContainers = []corev1.Container{g.container()}
	}
	if g.coin() {
		t.Spec.Tolerations = []corev1.Toleration{{Key: g.str(), Operator: corev1.TolerationOpExists, TolerationSeconds: g.int64p()}, {}}
	}
	if g.coin() {
		t.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: g.int64p(), FSGroup: g.int64p(), SupplementalGroups: []int64{g.int64(), 0, g.int64()}}
		if g.coin() {
			t.Spec.SecurityContext.Sysctls = []corev1.Sysctl{{Name: g.str(), Value: g.str()}}
		}
	}
	if g.coin() {
		t.Spec.Volumes = []corev1.Volume{
			{Name: g.str(), VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: []*resource.Quantity{nil, ptr.To(g.quantity())}[g.r.IntN(2)]}}},
			{Name: g.str(), VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: g.str()}, DefaultMode: ptr.To(g.int32()),
				Items: []corev1.KeyToPath{{Key: g.str(), Path: g.str()}, {}}}}},
			{},
		}
	}
	if g.coin() {
		t.Spec.Overhead = g.resources().Limits
	}
	return t
}

// rawJSON returns a random JSON document in forms encoding/json does not write itself.
func (g *gen) rawJSON(depth int) string {
	if depth == 0 || g.r.IntN(3) == 0 {
		switch g.r.IntN(6) {
		case 0:
			return []string{"null", "true", "false", "0", "-0", "1.5", "1e21", "1e-7", "9007199254740993", "123456789012345678901234567890", "-1E+2", "0.1e1"}[g.r.IntN(12)]
		case 1:
			return []string{`"\/"`, `"\u0041"`, `"\ud83d\ude00"`, `"\ud800"`, `"\ufffd"`, `"\u2028"`, `"\u003C"`, `"x\"y"`, "\"\xff\"", `"é"`}[g.r.IntN(10)]
		default:
			return string(mustMarshalAny(g.str()))
		}
	}
	var b strings.Builder
	if g.coin() {
		b.WriteString("[")
		for i := range g.r.IntN(4) {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(g.rawJSON(depth - 1))
		}
		b.WriteString("]")
		return b.String()
	}
	b.WriteString("{")
	keys := []string{`"a"`, `"b"`, `"\u0061"`, `"f:spec"`, `"é"`, "\"\xff\"", `"\ufffd"`}
	for i := range g.r.IntN(5) {
		if i > 0 {
			b.WriteString(",")
		}
		if g.coin() {
			b.WriteString(keys[g.r.IntN(len(keys))])
		} else {
			b.Write(mustMarshalAny(g.str()))
		}
		b.WriteString(":")
		b.WriteString(g.rawJSON(depth - 1))
	}
	b.WriteString("}")
	return b.String()
}

func mustMarshalAny(v any) []byte {
	raw, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return raw
}

func FuzzCanonicalMatchesReference(f *testing.F) {
	f.Add(mustMarshalAny(podinfo()))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"metadata":{"labels":{"herald.dev/x":"1","a":"\u003c\/"},"managedFields":[{"fieldsV1":{"b":1,"a":[1.5,null,{}],"b":{"\u0041":9007199254740993}}}]},"spec":{"activeDeadlineSeconds":1152921504606846976}}`))
	f.Add([]byte(`{"spec":{"containers":[{"name":"\ud800\u2028","args":["",null],"resources":{"limits":{"cpu":"1.5e3"}}}],"nodeSelector":{"\u00e9":"x","e":"y"}}}`))
	r := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		g := &gen{r: r}
		if raw, err := json.Marshal(g.template()); err == nil {
			f.Add(raw)
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var tmpl corev1.PodTemplateSpec
		if err := json.Unmarshal(raw, &tmpl); err != nil {
			t.Skip()
		}
		checkSameAsReference(t, &tmpl)
	})
}
