package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The Stage documents kwok plays, taken at build time from the kwok module
// itself (kustomize/stage): nodes become Ready and keep their lease renewed;
// pods become Running and Ready, Jobs' pods complete, deleted pods go away.
var kwokStageFiles = []string{
	"kustomize/stage/node/fast/node-initialize.yaml",
	"kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
	"kustomize/stage/pod/fast/pod-ready.yaml",
	"kustomize/stage/pod/fast/pod-complete.yaml",
	"kustomize/stage/pod/fast/pod-delete.yaml",
}

func writeKwokStages(ctx context.Context, outDir string) error {
	work, err := os.MkdirTemp("", "herald-kwok-stages-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	dir, err := moduleDir(ctx, work, "sigs.k8s.io/kwok", KwokVersion)
	if err != nil {
		return err
	}
	var docs []string
	for _, f := range kwokStageFiles {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return fmt.Errorf("kwok stages: %w", err)
		}
		docs = append(docs, strings.TrimSpace(string(b)))
	}
	return os.WriteFile(filepath.Join(outDir, KwokStagesFile), []byte(strings.Join(docs, "\n---\n")+"\n"), 0o644)
}

// Fake-node conventions: kwok manages nodes carrying this annotation.
const (
	KwokNodeAnnotation = "kwok.x-k8s.io/node"
	KwokNodeSelector   = KwokNodeAnnotation + "=fake"
)

// CreateNode registers a fake node that kwok keeps Ready. It has no taint, so
// ordinary workloads schedule there, and a large capacity.
func CreateNode(ctx context.Context, cs kubernetes.Interface, name string) error {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("1000"),
		corev1.ResourceMemory: resource.MustParse("1Ti"),
		corev1.ResourcePods:   resource.MustParse("1000"),
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{KwokNodeAnnotation: "fake", "node.alpha.kubernetes.io/ttl": "0"},
			Labels: map[string]string{
				"type":                   "kwok",
				"kubernetes.io/hostname": name,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
			},
		},
		Status: corev1.NodeStatus{
			Capacity:    capacity,
			Allocatable: capacity.DeepCopy(),
			Phase:       corev1.NodeRunning,
		},
	}
	_, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}
