package contract

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// The revision is a compatibility promise. It is stored in Canary status (lastAppliedSpec,
// lastPromotedSpec) and compared after Herald upgrades, so the same template must hash to the
// same string in every Herald version; otherwise an upgrade starts analyses of workloads that
// did not change (Flagger's issues #1673 and #1799, caused by hashing a debug dump of Go
// structs). Therefore the hash is taken over a canonical JSON form (see canonical.go) from which
// every null, empty object and empty list has been removed: a field that a newer k8s.io/api adds
// to PodSpec is absent from that form until somebody sets it, and golden tests pin the output.

// hashLen is the number of hex digits kept: 64 bits, plenty to tell revisions of one workload
// apart, and short enough to read in `kubectl get` output.
const hashLen = 16

// ConfigKind is the kind part of a ConfigKey.
type ConfigKind string

// The kinds of config a pod template can reference.
const (
	ConfigMap ConfigKind = "configmap"
	Secret    ConfigKind = "secret"
)

// ConfigKey names a referenced config in the map passed to Revision: "configmap/<name>" or
// "secret/<name>", the keys Flagger uses in status.trackedConfigs.
func ConfigKey(kind ConfigKind, name string) string { return string(kind) + "/" + name }

// Revision returns the revision of a pod template together with the checksums of the configs
// it references (keyed by ConfigKey; nil when config tracking is off or nothing is tracked).
// It does not modify tmpl.
func Revision(tmpl *corev1.PodTemplateSpec, configs map[string]string) (string, error) {
	canonical, err := canonicalTemplate(tmpl)
	if err != nil {
		return "", fmt.Errorf("canonicalising pod template: %w", err)
	}
	// A tag in front of each part keeps "template then configs" unambiguous.
	msg := append([]byte("template\x00"), canonical...)
	keys := make([]string, 0, len(configs))
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
	sum := sha256.Sum256(msg)
	return hex.EncodeToString(sum[:hashLen/2]), nil
}

// ConfigChecksum is the checksum of a ConfigMap's content: data and binaryData (Flagger ignores
// binaryData, so a change there never started an analysis). Keys are sorted and every key and
// value is length-prefixed, so no two different contents are encoded alike.
func ConfigChecksum(data map[string]string, binaryData map[string][]byte) string {
	h := sha256.New()
	for _, k := range sortedKeys(data) {
		fmt.Fprintf(h, "d%d:%s%d:%s", len(k), k, len(data[k]), data[k])
	}
	for _, k := range sortedKeys(binaryData) {
		fmt.Fprintf(h, "b%d:%s%d:", len(k), k, len(binaryData[k]))
		h.Write(binaryData[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:hashLen]
}

// SecretChecksum is ConfigChecksum for a Secret, whose values are all bytes.
func SecretChecksum(data map[string][]byte) string { return ConfigChecksum(nil, data) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// IsRevision reports whether s has the form of a revision Revision returns (hashLen lowercase
// hex digits). Flagger's spec hashes (at most ten letters and digits, from an FNV-32 sum) never
// have it, which tells a Canary status Flagger wrote from one Herald wrote.
func IsRevision(s string) bool {
	if len(s) != hashLen {
		return false
	}
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}
