package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/herald-rollouts/herald/config"
)

// FluxNamespace is the namespace Flux's controllers run "in" (RUNTIME_NAMESPACE): where
// its installations keep their GitRepositories and Kustomizations.
const FluxNamespace = "flux-system"

// fluxUser is the user a Flux controller authenticates as: the name of the ServiceAccount
// it runs under in a real installation, so that Herald's webhooks and the audit trail tell
// it apart from a person and from Herald exactly as they would in a cluster.
func fluxUser(controller string) string {
	return "system:serviceaccount:" + FluxNamespace + ":" + controller
}

// FluxCRDs decodes the CRDs of source-controller and kustomize-controller that the build
// copied from their modules (see Build); it builds them first if they are missing.
func FluxCRDs(ctx context.Context, out io.Writer) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	paths, err := Build(ctx, out, SourceControllerCRDs, KustomizeControllerCRDs)
	if err != nil {
		return nil, err
	}
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, name := range []string{SourceControllerCRDs, KustomizeControllerCRDs} {
		raw, err := os.ReadFile(paths[name])
		if err != nil {
			return nil, err
		}
		decoded, err := decodeCRDs(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		crds = append(crds, decoded...)
	}
	return crds, nil
}

// decodeCRDs reads the CustomResourceDefinitions of a multi-document YAML file.
func decodeCRDs(raw []byte) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	var crds []*apiextensionsv1.CustomResourceDefinition
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 1<<20)
	for {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := dec.Decode(&crd); err != nil {
			if errors.Is(err, io.EOF) {
				return crds, nil
			}
			return nil, fmt.Errorf("decoding CRDs: %w", err)
		}
		if crd.Name == "" {
			continue // an empty document
		}
		if crd.Kind != "CustomResourceDefinition" {
			return nil, fmt.Errorf("%s %q is not a CustomResourceDefinition", crd.Kind, crd.Name)
		}
		crds = append(crds, &crd)
	}
}

// StartFlux installs Flux's CRDs and starts source-controller and kustomize-controller
// against the cluster (Options.Flux does it as part of Start). Each controller
// authenticates as its own user, bound to cluster-admin as Flux's installation binds its
// ServiceAccounts; source-controller keeps its artifacts under the state directory and
// serves them on 127.0.0.1, where kustomize-controller fetches them. Both stop with the
// cluster.
func (c *Cluster) StartFlux(ctx context.Context) error {
	c.mu.Lock()
	started := c.fluxStarted
	c.fluxStarted = true
	c.mu.Unlock()
	if started {
		return nil
	}
	bins, err := Build(ctx, c.opts.Out, FluxBinaries...)
	if err != nil {
		return err
	}
	c.mu.Lock()
	for k, v := range bins {
		c.bins[k] = v
	}
	c.mu.Unlock()
	c.progress.printf("installing Flux's CRDs")
	crds, err := FluxCRDs(ctx, c.opts.Out)
	if err != nil {
		return err
	}
	if err := config.InstallCRDs(ctx, c.Config, crds); err != nil {
		return err
	}
	cs, err := c.Clientset()
	if err != nil {
		return err
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: FluxNamespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", FluxNamespace, err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "flux-controllers"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
	}
	for _, ctrl := range FluxBinaries {
		binding.Subjects = append(binding.Subjects, rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: fluxUser(ctrl)})
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("binding Flux's controllers to cluster-admin: %w", err)
	}

	storage := c.path("flux-storage")
	if err := os.MkdirAll(storage, 0o755); err != nil {
		return err
	}
	c.progress.printf("starting source-controller")
	if err := c.startFluxController(ctx, SourceController, 2, func(ports []int) []string {
		// The artifact server listens and advertises on loopback: kustomize-controller
		// downloads each revision from the URL it finds in the GitRepository's status.
		addr := "127.0.0.1:" + strconv.Itoa(ports[1])
		c.FluxArtifactsURL = "http://" + addr
		return []string{"--storage-path=" + storage, "--storage-addr=" + addr, "--storage-adv-addr=" + addr}
	}); err != nil {
		return err
	}
	c.progress.printf("starting kustomize-controller")
	if err := c.startFluxController(ctx, KustomizeController, 1, func([]int) []string {
		// Remote bases would reach out of the machine.
		return []string{"--no-remote-bases=true"}
	}); err != nil {
		return err
	}
	c.progress.printf("Flux %s is running (source-controller, kustomize-controller)", FluxVersion)
	return nil
}

// startFluxController starts one controller with its own kubeconfig and temporary
// directory, a health endpoint on loopback (ports[0]) and no metrics server, and waits
// until it is ready.
func (c *Cluster) startFluxController(ctx context.Context, name string, nports int, flags func(ports []int) []string) error {
	kc := c.path(name + ".kubeconfig")
	if err := c.clientKubeconfig(kc, fluxUser(name), "system:serviceaccounts", "system:serviceaccounts:"+FluxNamespace); err != nil {
		return err
	}
	tmp := c.path(name + "-tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	var health string
	return c.withPortRetry(ctx, name, nports, func(ports []int) (*process, error) {
		health = "127.0.0.1:" + strconv.Itoa(ports[0])
		args := append([]string{
			"--health-addr=" + health,
			"--metrics-addr=0",
			"--events-addr=",
			"--enable-leader-election=false",
			"--watch-all-namespaces=true",
			"--log-level=info",
			"--log-encoding=json",
		}, flags(ports)...)
		env := append(c.childEnv(),
			// controller-runtime reads the kubeconfig from $KUBECONFIG (the flag set of
			// Flux's controllers has no --kubeconfig).
			"KUBECONFIG="+kc,
			"RUNTIME_NAMESPACE="+FluxNamespace,
			// Clones and downloads go below the state directory.
			"TMPDIR="+tmp,
		)
		p, err := startProcess(name, c.bins[name], args, c.LogFile(name), env)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.procs = append(c.procs, p)
		c.mu.Unlock()
		return p, nil
	}, func(ctx context.Context, p *process) error {
		return poll(ctx, p, name+" /readyz", func() (bool, error) {
			resp, err := http.Get("http://" + health + "/readyz")
			if err != nil {
				return false, nil
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK, nil
		})
	})
}
