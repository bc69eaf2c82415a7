package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/herald-rollouts/herald/test/cluster"
)

// HeraldUser is the user Herald runs as in local runs; StartHerald passes it as
// --controller-username, so the webhooks tell Herald's writes from a person's.
const HeraldUser = "herald"

// HeraldNamespace is Herald's own namespace in local runs (its default -pod-namespace), where
// the generated Role (leader-election Lease, certificate Secret) is bound.
const HeraldNamespace = "herald-system"

// HeraldKubeconfig binds HeraldUser to the manager's generated RBAC (config/rbac/role.yaml: the
// ClusterRole, and the Role in Herald's namespace) plus what a local run needs to install
// itself (CRDs, webhook configurations, its namespace), and returns a kubeconfig for that
// user. Running the suites with exactly the generated RBAC keeps the kubebuilder:rbac markers
// honest.
func HeraldKubeconfig(ctx context.Context, env *cluster.Cluster, c client.Client) (string, error) {
	clusterRole, role, err := GeneratedRBAC()
	if err != nil {
		return "", err
	}
	install := rbacv1.ClusterRole{Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}, Verbs: []string{"create", "patch", "get"}},
		{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"mutatingwebhookconfigurations", "validatingwebhookconfigurations"}, Verbs: []string{"create"}},
		{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"create"}},
	}}
	install.Name = "herald-local-install"
	subject := rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: HeraldUser}
	for _, cr := range []*rbacv1.ClusterRole{clusterRole, &install} {
		cr.ResourceVersion = ""
		if err := client.IgnoreAlreadyExists(c.Create(ctx, cr)); err != nil {
			return "", fmt.Errorf("creating ClusterRole %s: %w", cr.Name, err)
		}
		binding := &rbacv1.ClusterRoleBinding{
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: cr.Name},
			Subjects: []rbacv1.Subject{subject},
		}
		binding.Name = cr.Name
		if err := client.IgnoreAlreadyExists(c.Create(ctx, binding)); err != nil {
			return "", fmt.Errorf("binding ClusterRole %s: %w", cr.Name, err)
		}
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: HeraldNamespace}}
	if err := client.IgnoreAlreadyExists(c.Create(ctx, ns)); err != nil {
		return "", fmt.Errorf("creating namespace %s: %w", HeraldNamespace, err)
	}
	role.ResourceVersion, role.Namespace = "", HeraldNamespace
	if err := client.IgnoreAlreadyExists(c.Create(ctx, role)); err != nil {
		return "", fmt.Errorf("creating Role %s: %w", role.Name, err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name, Namespace: HeraldNamespace},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{subject},
	}
	if err := client.IgnoreAlreadyExists(c.Create(ctx, binding)); err != nil {
		return "", fmt.Errorf("binding Role %s: %w", role.Name, err)
	}
	return env.UserKubeconfig(HeraldUser)
}

// GeneratedRBAC reads config/rbac/role.yaml: the manager's ClusterRole and its Role in
// Herald's namespace.
func GeneratedRBAC() (*rbacv1.ClusterRole, *rbacv1.Role, error) {
	root, err := cluster.RepoRoot()
	if err != nil {
		return nil, nil, err
	}
	b, err := os.ReadFile(filepath.Join(root, "config", "rbac", "role.yaml"))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the generated RBAC: %w", err)
	}
	var cr *rbacv1.ClusterRole
	var role *rbacv1.Role
	for _, doc := range strings.Split(string(b), "\n---\n") {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			return nil, nil, fmt.Errorf("decoding config/rbac/role.yaml: %w", err)
		}
		switch meta.Kind {
		case "ClusterRole":
			cr = &rbacv1.ClusterRole{}
			err = yaml.UnmarshalStrict([]byte(doc), cr)
		case "Role":
			role = &rbacv1.Role{}
			err = yaml.UnmarshalStrict([]byte(doc), role)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("decoding config/rbac/role.yaml: %w", err)
		}
	}
	if cr == nil || role == nil {
		return nil, nil, fmt.Errorf("config/rbac/role.yaml should hold a ClusterRole and a Role")
	}
	return cr, role, nil
}
