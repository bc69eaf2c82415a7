// Package revision names a workload's revision: a stable hash of its pod template and of the
// ConfigMaps and Secrets that template references.
//
// The workload webhook and the Canary controller both call Of, so a revision computed at
// admission time and one computed by the controller after a missed webhook call always agree.
//
// The value is a compatibility promise. It is stored in Canary status (lastAppliedSpec,
// lastPromotedSpec) and compared after Herald upgrades, so the same template must hash to the
// same string in every Herald version; otherwise an upgrade starts analyses of workloads that did
// not change (Flagger's issues #1673 and #1799, caused by hashing a debug dump of Go structs).
// Therefore the hash is taken over a canonical JSON form from which every null, empty object and
// empty list has been removed: a field that a newer k8s.io/api adds to PodSpec is absent from
// that form until somebody sets it, and the golden tests pin the exact output.
package revision

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"

	corev1 "k8s.io/api/core/v1"
)

// Prefix is the prefix of every label, annotation and node-selector key Herald writes itself.
// Keys with it are left out of the hash, or Herald writing its own revision annotation (or the
// node selector that empties an idle DaemonSet) would change the revision.
const Prefix = "herald.dev/"

// Annotation is the pod-template annotation key under which the workload webhook records the
// revision. It is Herald's own (see Prefix), so it does not feed back into the hash.
const Annotation = Prefix + "revision"

// ConfigKey names a referenced config in the map passed to Of: "configmap/<name>" or
// "secret/<name>", the same keys Flagger uses in status.trackedConfigs.
func ConfigKey(kind ConfigKind, name string) string { return string(kind) + "/" + name }

// ConfigKind is the kind part of a ConfigKey.
type ConfigKind string

const (
	ConfigMap ConfigKind = "configmap"
	Secret    ConfigKind = "secret"
)

// hashLen is the number of hex digits kept: 64 bits, plenty to tell revisions of one workload
// apart, and short enough to read in `kubectl get` output.
const hashLen = 16

// Of returns the revision of a pod template together with the checksums of the configs it
// references (keyed by ConfigKey; nil when config tracking is off or nothing is referenced).
// It does not modify tmpl.
func Of(tmpl *corev1.PodTemplateSpec, configs map[string]string) (string, error) {
	c := getCanonicaliser()
	defer c.release()
	canonical, err := c.canonical(tmpl)
	if err != nil {
		return "", fmt.Errorf("canonicalising pod template: %w", err)
	}
	// The hashed message, built in the canonicaliser's scratch buffer (free after canonical):
	// a tag in front of each part keeps "template then configs" unambiguous.
	msg := append(c.scratch[:0], "template\x00"...)
	msg = append(msg, canonical...)
	if len(configs) > 0 {
		var buf [8]string
		keys := buf[:0]
		for k := range configs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			msg = append(msg, "\x00config\x00"...)
			msg = append(msg, k...)
			msg = append(msg, 0)
			msg = append(msg, configs[k]...)
		}
	}
	c.scratch = msg
	sum := sha256.Sum256(msg)
	return hex.EncodeToString(sum[:hashLen/2]), nil
}

// ConfigChecksum is the checksum of a ConfigMap's or Secret's content: data and binaryData
// (Flagger ignores binaryData, so a change there never started an analysis). Keys are sorted
// and every key and value is length-prefixed, so no two different contents can be encoded alike.
func ConfigChecksum(data map[string]string, binaryData map[string][]byte) string {
	h := sha256.New()
	writeSorted := func(tag string, keys []string, value func(string) []byte) {
		sort.Strings(keys)
		for _, k := range keys {
			v := value(k)
			fmt.Fprintf(h, "%s%d:%s%d:", tag, len(k), k, len(v))
			h.Write(v)
		}
	}
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	writeSorted("d", keys, func(k string) []byte { return []byte(data[k]) })
	keys = keys[:0]
	for k := range binaryData {
		keys = append(keys, k)
	}
	writeSorted("b", keys, func(k string) []byte { return binaryData[k] })
	return hex.EncodeToString(h.Sum(nil))[:hashLen]
}

// SecretChecksum is ConfigChecksum for a Secret, whose values are all bytes.
func SecretChecksum(data map[string][]byte) string { return ConfigChecksum(nil, data) }
