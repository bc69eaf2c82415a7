package cluster

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

// The Stage documents kwok plays, taken at build time from the kwok module
// itself (kustomize/stage): nodes become Ready and keep their lease renewed;
// pods become Running and Ready, Jobs' pods complete, deleted pods go away.
// The build keeps them unchanged in KwokStagesFile; Start composes the file
// kwok actually reads from them and Herald's simulation stages (kwokStages).
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

// Simulated pod failures: a pod whose template carries SimulateAnnotation gets
// the status a real kubelet reports for a broken pod, and never becomes ready.
const (
	SimulateAnnotation = "herald.dev/simulate"
	// SimulateImagePullError: phase Pending, every container waiting with
	// reason ImagePullBackOff and message `Back-off pulling image "<image>"`.
	SimulateImagePullError = "image-pull-error"
	// SimulateCrashLoop: phase Running, every container not ready, waiting
	// with reason CrashLoopBackOff, restartCount 3, last state terminated with
	// exit code 1 (reason Error).
	SimulateCrashLoop = "crash-loop"

	// SimulatePrimaryAnnotation (value SimulateCrashLoop) makes only the pods of a Canary's
	// primary crash-loop: those whose template also carries PromotedRevisionAnnotation, which
	// Herald writes on the primary's template and nowhere else. The canary's pods of the same
	// version become ready, so it is a version that passes its analysis and fails once
	// promoted. It is not under herald.dev/, which Herald leaves out of the primary's copy.
	SimulatePrimaryAnnotation = "simulate.herald.test/primary"
	// PromotedRevisionAnnotation is Herald's mark of a primary's pod template
	// (contract.AnnotationPromotedRevision).
	PromotedRevisionAnnotation = "herald.dev/promoted-revision"
)

// simulateStages are the Stage documents behind SimulateAnnotation.
//
//go:embed kwok-simulate-stages.yaml
var simulateStages []byte

// simulatedValues are the values of SimulateAnnotation the simulation stages
// handle; kwok's own pod stages are kept off pods carrying one of them.
var simulatedValues = []string{SimulateImagePullError, SimulateCrashLoop}

var yamlDocSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// kwokStages composes the stage file kwok runs with: kwok's own stages
// (upstream, the build's KwokStagesFile) with every Pod stage that does not
// delete given one more selector requirement, "SimulateAnnotation is not one of
// the simulated values", followed by the simulation stages. So a pod is either
// played by kwok's stages or by Herald's, never both, and which one does not
// depend on kwok's weighted random choice. Pod deletion still applies to all.
func kwokStages(upstream []byte) ([]byte, error) {
	exclude := map[string]any{
		"key":      fmt.Sprintf(".metadata.annotations[%q]", SimulateAnnotation),
		"operator": "NotIn",
		"values":   simulatedValues,
	}
	var docs [][]byte
	for _, doc := range yamlDocSep.Split(string(upstream), -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var stage map[string]any
		if err := yaml.Unmarshal([]byte(doc), &stage); err != nil {
			return nil, fmt.Errorf("kwok stages: %w", err)
		}
		spec, _ := stage["spec"].(map[string]any)
		ref, _ := spec["resourceRef"].(map[string]any)
		next, _ := spec["next"].(map[string]any)
		deletes, _ := next["delete"].(bool)
		if stage["kind"] != "Stage" || ref["kind"] != "Pod" || deletes {
			docs = append(docs, []byte(strings.Trim(doc, "\n")+"\n"))
			continue
		}
		selector, _ := spec["selector"].(map[string]any)
		if selector == nil {
			return nil, fmt.Errorf("kwok stages: pod stage %v has no selector", stage["metadata"])
		}
		exprs, _ := selector["matchExpressions"].([]any)
		selector["matchExpressions"] = append(exprs, exclude)
		b, err := yaml.Marshal(stage)
		if err != nil {
			return nil, fmt.Errorf("kwok stages: %w", err)
		}
		docs = append(docs, b)
	}
	docs = append(docs, bytes.TrimLeft(simulateStages, "\n"))
	primary, err := primaryCrashLoopStage()
	if err != nil {
		return nil, err
	}
	docs = append(docs, primary)
	return bytes.Join(docs, []byte("---\n")), nil
}

// primaryCrashLoopStage is the crash-loop stage for the pods of a primary that carry
// SimulatePrimaryAnnotation: herald-pod-crash-loop with its first requirement (the simulate
// annotation) replaced. kwok's own pod-ready stage also matches such a pod while it is
// Pending, but a stage of weight 0 is never chosen beside this one, of weight 1; once the
// pod runs (crash-looping) pod-ready no longer matches.
func primaryCrashLoopStage() ([]byte, error) {
	for _, doc := range yamlDocSep.Split(string(simulateStages), -1) {
		var stage map[string]any
		if err := yaml.Unmarshal([]byte(doc), &stage); err != nil {
			return nil, fmt.Errorf("kwok stages: %w", err)
		}
		meta, _ := stage["metadata"].(map[string]any)
		if meta == nil || meta["name"] != "herald-pod-crash-loop" {
			continue
		}
		meta["name"] = "herald-primary-pod-crash-loop"
		spec, _ := stage["spec"].(map[string]any)
		selector, _ := spec["selector"].(map[string]any)
		exprs, _ := selector["matchExpressions"].([]any)
		if len(exprs) == 0 {
			return nil, fmt.Errorf("kwok stages: herald-pod-crash-loop has no selector")
		}
		selector["matchExpressions"] = append([]any{
			map[string]any{"key": fmt.Sprintf(".metadata.annotations[%q]", SimulatePrimaryAnnotation), "operator": "In", "values": []any{SimulateCrashLoop}},
			map[string]any{"key": fmt.Sprintf(".metadata.annotations[%q]", PromotedRevisionAnnotation), "operator": "Exists"},
		}, exprs[1:]...)
		return yaml.Marshal(stage)
	}
	return nil, fmt.Errorf("kwok stages: no herald-pod-crash-loop stage to derive the primary's from")
}

// writeClusterKwokStages writes the stage file of a cluster (kwokStages of the
// build's upstream stages) to path. It is written at every start, so a cached
// build from before a change of the simulation stages gets them too.
func writeClusterKwokStages(upstreamPath, path string) error {
	upstream, err := os.ReadFile(upstreamPath)
	if err != nil {
		return fmt.Errorf("kwok stages: %w", err)
	}
	b, err := kwokStages(upstream)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
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
