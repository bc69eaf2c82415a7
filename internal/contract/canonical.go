package contract

import (
	"encoding/json"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// canonicalTemplate returns the canonical JSON form of a pod template, the input of Revision:
// encoding/json's encoding of the template decoded into generic values, without Herald's own
// labels and annotations (metadata) and node-selector keys (spec.nodeSelector, where Flagger's
// flagger.app/scale-to-zero key is left out too), without nulls,
// empty objects and empty lists, marshalled again (encoding/json sorts object keys). An element
// of a list that pruning empties stays in place, as {} if it was an object and null otherwise,
// so that positions in a list keep their meaning.
//
// A nil template is {}. The golden tests pin the bytes this produces; do not change it.
func canonicalTemplate(tmpl *corev1.PodTemplateSpec) ([]byte, error) {
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
	if m, ok := generic["metadata"].(map[string]any); ok {
		dropHeraldKeys(m["labels"])
		dropHeraldKeys(m["annotations"])
	}
	if spec, ok := generic["spec"].(map[string]any); ok {
		dropHeraldKeys(spec["nodeSelector"])
		// Flagger's node selector of an idle DaemonSet is an idle mark like Herald's, not
		// part of what the DaemonSet runs (Flagger leaves it out of its hash too).
		if ns, ok := spec["nodeSelector"].(map[string]any); ok {
			delete(ns, FlaggerNodeSelectorScaleToZero)
		}
	}
	pruned, keep := prune(generic)
	if !keep {
		pruned = map[string]any{}
	}
	return json.Marshal(pruned)
}

// dropHeraldKeys deletes the keys with Prefix from a decoded string map.
func dropHeraldKeys(v any) {
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	for k := range m {
		if strings.HasPrefix(k, Prefix) {
			delete(m, k)
		}
	}
}

// prune removes nulls, empty objects and empty lists from a decoded JSON value, in place;
// keep is false when v itself is one of those (or became one).
func prune(v any) (out any, keep bool) {
	switch t := v.(type) {
	case nil:
		return nil, false
	case map[string]any:
		for k, child := range t {
			if p, ok := prune(child); ok {
				t[k] = p
			} else {
				delete(t, k)
			}
		}
		return t, len(t) > 0
	case []any:
		for i, child := range t {
			p, ok := prune(child)
			switch _, wasObject := child.(map[string]any); {
			case ok:
				t[i] = p
			case wasObject:
				t[i] = map[string]any{}
			default:
				t[i] = nil
			}
		}
		return t, len(t) > 0
	default:
		return t, true
	}
}
