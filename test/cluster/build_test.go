package cluster

import (
	"slices"
	"strings"
	"testing"
)

func TestParseStagingReplaces(t *testing.T) {
	gomod := []byte(`module k8s.io/kubernetes

go 1.26.0

require (
	k8s.io/api v0.0.0
	github.com/foo/bar v1.2.3
)

replace github.com/some/fork => github.com/other/fork v1.0.0

replace k8s.io/single => ./staging/src/k8s.io/single // a comment

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/apimachinery => ./staging/src/k8s.io/apimachinery
	// k8s.io/commented => ./staging/src/k8s.io/commented
	github.com/x/y => github.com/x/y v0.1.0
	k8s.io/versioned v1.0.0 => ./staging/src/k8s.io/versioned
	k8s.io/api => ./staging/src/k8s.io/api
)

replace k8s.io/elsewhere => ../elsewhere
`)
	got := ParseStagingReplaces(gomod)
	want := []string{"k8s.io/single", "k8s.io/api", "k8s.io/apimachinery", "k8s.io/versioned"}
	if !slices.Equal(got, want) {
		t.Fatalf("ParseStagingReplaces = %q, want %q", got, want)
	}
	if got := ParseStagingReplaces([]byte("module x\n")); len(got) != 0 {
		t.Fatalf("no replaces: got %q", got)
	}
}

func TestComponentFor(t *testing.T) {
	for _, n := range append(AllBinaries, KwokStagesFile, SourceControllerCRDs, KustomizeControllerCRDs) {
		if _, err := componentFor(n); err != nil {
			t.Errorf("componentFor(%q): %v", n, err)
		}
	}
	if _, err := componentFor("kubelet"); err == nil {
		t.Error("componentFor(kubelet) should fail")
	}
	c, _ := componentFor(KubeAPIServer)
	if c2, _ := componentFor(Kubectl); c2 != c {
		t.Error("kubectl and kube-apiserver should come from one build")
	}
	for bin, crds := range map[string]string{SourceController: SourceControllerCRDs, KustomizeController: KustomizeControllerCRDs} {
		c, _ := componentFor(bin)
		if c2, _ := componentFor(crds); c2 != c || !c.ownModule || c.version != FluxVersion {
			t.Errorf("%s and its CRDs should come from one build of its own module at %s", bin, FluxVersion)
		}
	}
}

func TestDecodeCRDs(t *testing.T) {
	crds, err := decodeCRDs([]byte(`---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gitrepositories.source.toolkit.fluxcd.io
spec:
  group: source.toolkit.fluxcd.io
---
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: kustomizations.kustomize.toolkit.fluxcd.io
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(crds) != 2 || crds[0].Name != "gitrepositories.source.toolkit.fluxcd.io" || crds[0].Spec.Group != "source.toolkit.fluxcd.io" ||
		crds[1].Name != "kustomizations.kustomize.toolkit.fluxcd.io" {
		t.Fatalf("decoded %d CRDs: %+v", len(crds), crds)
	}
	if _, err := decodeCRDs([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n")); err == nil || !strings.Contains(err.Error(), "ConfigMap") {
		t.Fatalf("a ConfigMap among CRDs: err = %v", err)
	}
	if _, err := decodeCRDs([]byte("kind: [")); err == nil {
		t.Fatal("broken YAML decoded")
	}
}
