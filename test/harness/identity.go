package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/herald-rollouts/herald/test/cluster"
)

// HeraldUser is the user Herald runs as in local runs; StartHerald passes it as
// --controller-username, so the webhooks tell Herald's writes from a person's.
const HeraldUser = "herald"

// HeraldKubeconfig binds HeraldUser to the manager's generated ClusterRole
// (config/rbac/role.yaml) plus what a local run needs to install itself (CRDs, webhook
// configurations, its namespace), and returns a kubeconfig for that user. Running the suites
// with exactly the generated RBAC keeps the kubebuilder:rbac markers honest.
func HeraldKubeconfig(ctx context.Context, env *cluster.Cluster, c client.Client) (string, error) {
	root, err := cluster.RepoRoot()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(root, "config", "rbac", "role.yaml"))
	if err != nil {
		return "", fmt.Errorf("reading the generated ClusterRole: %w", err)
	}
	var manager rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(b, &manager); err != nil {
		return "", fmt.Errorf("decoding config/rbac/role.yaml: %w", err)
	}
	install := rbacv1.ClusterRole{Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}, Verbs: []string{"create", "patch"}},
		{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"mutatingwebhookconfigurations", "validatingwebhookconfigurations"}, Verbs: []string{"create"}},
		{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"create"}},
	}}
	install.Name = "herald-local-install"
	for _, role := range []*rbacv1.ClusterRole{&manager, &install} {
		role.ResourceVersion = ""
		if err := client.IgnoreAlreadyExists(c.Create(ctx, role)); err != nil {
			return "", fmt.Errorf("creating ClusterRole %s: %w", role.Name, err)
		}
		binding := &rbacv1.ClusterRoleBinding{
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
			Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: HeraldUser}},
		}
		binding.Name = role.Name
		if err := client.IgnoreAlreadyExists(c.Create(ctx, binding)); err != nil {
			return "", fmt.Errorf("binding ClusterRole %s: %w", role.Name, err)
		}
	}
	return env.UserKubeconfig(HeraldUser)
}
