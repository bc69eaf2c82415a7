// Package workloads builds the objects a Canary owns (the primary workload, its autoscaler,
// the primary copies of tracked configs and the apex, primary and canary Services) and judges
// whether a workload is rolled out.
//
// Every function is pure: it reads only its arguments, never the cluster, and never modifies
// them. The objects it returns are deterministic (maps turned into lists are sorted) so that the
// reconciler can compare them with the live objects and update only on a real difference. No
// owner references are set; the reconciler adds them.
package workloads

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-rollouts/herald/internal/contract"
)

// ConfigRenames maps the key of every tracked config reference ("configmap/x", "secret/y", see
// contract.ConfigKey) to the name of its primary copy ("x-primary"). It returns nil when refs
// is empty.
func ConfigRenames(refs []contract.Ref) map[string]string {
	if len(refs) == 0 {
		return nil
	}
	m := make(map[string]string, len(refs))
	for _, r := range refs {
		if r.Name == "" {
			continue
		}
		m[r.Key()] = contract.PrimaryName(r.Name)
	}
	return m
}

// isHerald reports whether key is one of Herald's own labels or annotations.
func isHerald(key string) bool { return strings.HasPrefix(key, contract.Prefix) }

// isFlux reports whether key is one of Flux's ownership labels or annotations.
func isFlux(key string) bool { return strings.Contains(key, "toolkit.fluxcd.io") }

// filter returns a copy of m without the keys for which drop is true, or nil when nothing is
// left.
func filter(m map[string]string, drop func(string) bool) map[string]string {
	var out map[string]string
	for k, v := range m {
		if drop(k) {
			continue
		}
		if out == nil {
			out = make(map[string]string, len(m))
		}
		out[k] = v
	}
	return out
}

// PrimaryPodTemplate returns the primary's copy of the target's pod template:
//
//   - the selector label set to value+"-primary";
//   - Herald's labels and annotations (herald.dev/*) removed;
//   - references to tracked ConfigMaps and Secrets (volumes, projected volume sources,
//     env valueFrom and envFrom of containers and init containers) renamed through renames,
//     keyed by contract.ConfigKey; other references are left alone;
//   - label selectors of topologySpreadConstraints and of pod affinity and anti-affinity terms
//     that select label=value rewritten to select label=value+"-primary", so that the primary's
//     pods spread among themselves as the target's did.
//
// tmpl is not modified.
func PrimaryPodTemplate(tmpl *corev1.PodTemplateSpec, label, value string, renames map[string]string) corev1.PodTemplateSpec {
	var out corev1.PodTemplateSpec
	if tmpl != nil {
		tmpl.DeepCopyInto(&out)
	}
	primaryValue := value + contract.PrimarySuffix

	out.Labels = filter(out.Labels, isHerald)
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	out.Labels[label] = primaryValue
	out.Annotations = filter(out.Annotations, isHerald)

	spec := &out.Spec
	if len(renames) > 0 {
		renameConfigs(spec, renames)
	}
	for i := range spec.TopologySpreadConstraints {
		rewriteSelector(spec.TopologySpreadConstraints[i].LabelSelector, label, value, primaryValue)
	}
	if a := spec.Affinity; a != nil {
		if pa := a.PodAffinity; pa != nil {
			rewriteTerms(pa.RequiredDuringSchedulingIgnoredDuringExecution, pa.PreferredDuringSchedulingIgnoredDuringExecution, label, value, primaryValue)
		}
		if pa := a.PodAntiAffinity; pa != nil {
			rewriteTerms(pa.RequiredDuringSchedulingIgnoredDuringExecution, pa.PreferredDuringSchedulingIgnoredDuringExecution, label, value, primaryValue)
		}
	}
	return out
}

func renameConfigs(spec *corev1.PodSpec, renames map[string]string) {
	rename := func(kind contract.ConfigKind, name *string) {
		if *name == "" {
			return
		}
		if n, ok := renames[contract.ConfigKey(kind, *name)]; ok {
			*name = n
		}
	}
	for i := range spec.Volumes {
		v := &spec.Volumes[i]
		if cm := v.ConfigMap; cm != nil {
			rename(contract.ConfigMap, &cm.Name)
		}
		if s := v.Secret; s != nil {
			rename(contract.Secret, &s.SecretName)
		}
		if p := v.Projected; p != nil {
			for j := range p.Sources {
				src := &p.Sources[j]
				if cm := src.ConfigMap; cm != nil {
					rename(contract.ConfigMap, &cm.Name)
				}
				if s := src.Secret; s != nil {
					rename(contract.Secret, &s.Name)
				}
			}
		}
	}
	containers := func(cs []corev1.Container) {
		for i := range cs {
			c := &cs[i]
			for j := range c.Env {
				vf := c.Env[j].ValueFrom
				if vf == nil {
					continue
				}
				if r := vf.ConfigMapKeyRef; r != nil {
					rename(contract.ConfigMap, &r.Name)
				}
				if r := vf.SecretKeyRef; r != nil {
					rename(contract.Secret, &r.Name)
				}
			}
			for j := range c.EnvFrom {
				ef := &c.EnvFrom[j]
				if r := ef.ConfigMapRef; r != nil {
					rename(contract.ConfigMap, &r.Name)
				}
				if r := ef.SecretRef; r != nil {
					rename(contract.Secret, &r.Name)
				}
			}
		}
	}
	containers(spec.InitContainers)
	containers(spec.Containers)
}

func rewriteTerms(required []corev1.PodAffinityTerm, preferred []corev1.WeightedPodAffinityTerm, label, from, to string) {
	for i := range required {
		rewriteSelector(required[i].LabelSelector, label, from, to)
	}
	for i := range preferred {
		rewriteSelector(preferred[i].PodAffinityTerm.LabelSelector, label, from, to)
	}
}

// rewriteSelector makes a selector that selects label=from select label=to instead: in
// matchLabels, and in the values of matchExpressions on label.
func rewriteSelector(s *metav1.LabelSelector, label, from, to string) {
	if s == nil {
		return
	}
	if v, ok := s.MatchLabels[label]; ok && v == from {
		s.MatchLabels[label] = to
	}
	for i := range s.MatchExpressions {
		e := &s.MatchExpressions[i]
		if e.Key != label {
			continue
		}
		for j, v := range e.Values {
			if v == from {
				e.Values[j] = to
			}
		}
	}
}
