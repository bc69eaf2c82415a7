package contract

import (
	"sort"

	corev1 "k8s.io/api/core/v1"
)

// Ref is a ConfigMap or Secret that a pod template references.
type Ref struct {
	Kind ConfigKind
	Name string
	// Optional is true when every reference to the config is marked optional, so its absence
	// is not an error.
	Optional bool
}

// Key is the ConfigKey of the reference.
func (r Ref) Key() string { return ConfigKey(r.Kind, r.Name) }

// Refs lists the ConfigMaps and Secrets a pod spec references through volumes (including
// projected volumes) and the env and envFrom of its containers and init containers, sorted by
// key and without duplicates. As in Flagger, a CSI volume's nodePublishSecretRef is not listed:
// it is the storage driver's credential, not the application's configuration, and rotating it
// must not start a release.
func Refs(spec *corev1.PodSpec) []Ref {
	if spec == nil {
		return nil
	}
	// optional[key] stays true only while every reference to key is optional.
	optional := map[string]bool{}
	refs := map[string]Ref{}
	add := func(kind ConfigKind, name string, opt *bool) {
		if name == "" {
			return
		}
		isOpt := opt != nil && *opt
		key := ConfigKey(kind, name)
		if prev, seen := optional[key]; seen {
			optional[key] = prev && isOpt
		} else {
			optional[key] = isOpt
		}
		refs[key] = Ref{Kind: kind, Name: name}
	}
	for _, v := range spec.Volumes {
		if cm := v.ConfigMap; cm != nil {
			add(ConfigMap, cm.Name, cm.Optional)
		}
		if s := v.Secret; s != nil {
			add(Secret, s.SecretName, s.Optional)
		}
		if p := v.Projected; p != nil {
			for _, src := range p.Sources {
				if cm := src.ConfigMap; cm != nil {
					add(ConfigMap, cm.Name, cm.Optional)
				}
				if s := src.Secret; s != nil {
					add(Secret, s.Name, s.Optional)
				}
			}
		}
	}
	containers := make([]corev1.Container, 0, len(spec.InitContainers)+len(spec.Containers))
	containers = append(containers, spec.InitContainers...)
	containers = append(containers, spec.Containers...)
	for _, c := range containers {
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
				add(ConfigMap, r.Name, r.Optional)
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil {
				add(Secret, r.Name, r.Optional)
			}
		}
		for _, e := range c.EnvFrom {
			if r := e.ConfigMapRef; r != nil {
				add(ConfigMap, r.Name, r.Optional)
			}
			if r := e.SecretRef; r != nil {
				add(Secret, r.Name, r.Optional)
			}
		}
	}
	out := make([]Ref, 0, len(refs))
	for key, r := range refs {
		r.Optional = optional[key]
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out
}
