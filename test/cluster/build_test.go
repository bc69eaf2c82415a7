package cluster

import (
	"slices"
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
	for _, n := range append(AllBinaries, KwokStagesFile) {
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
}
