package main

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-rollouts/herald/internal/version"
)

type versionOptions struct {
	clientOnly bool
	namespace  string
	selector   string
}

func newVersionCmd(e *env) *cobra.Command {
	o := &versionOptions{}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the plugin's version and the version of the Herald controller of the cluster",
		Long: `Prints the plugin's version, and the controller's: the image tag (or the
app.kubernetes.io/version label) of the Deployments labelled app.kubernetes.io/name=herald, as the
Helm chart and config/default install them. A Herald run outside the cluster (make run) has no
Deployment, and is reported as not found.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.Context(), e)
		},
	}
	cmd.Flags().BoolVar(&o.clientOnly, "client", false, "Print the plugin's version only, without connecting.")
	cmd.Flags().StringVar(&o.namespace, "controller-namespace", "", "Namespace of Herald's Deployment (default: all the namespaces the user may list).")
	cmd.Flags().StringVar(&o.selector, "controller-selector", "app.kubernetes.io/name=herald", "Label selector of Herald's Deployment.")
	return cmd
}

func (o *versionOptions) run(ctx context.Context, e *env) error {
	fmt.Fprintf(e.streams.Out, "Plugin:     %s\n", version.String("kubectl-herald"))
	if o.clientOnly {
		return nil
	}
	cl, _, err := e.client()
	if err != nil {
		return err
	}
	sel, err := parseSelector(o.selector)
	if err != nil {
		return usageError("--controller-selector: %v", err)
	}
	var list appsv1.DeploymentList
	if err := cl.List(ctx, &list, client.InNamespace(o.namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return fmt.Errorf("looking for Herald's Deployment (%s): %w", o.selector, err)
	}
	if len(list.Items) == 0 {
		where := "in any namespace"
		if o.namespace != "" {
			where = "in namespace " + o.namespace
		}
		fmt.Fprintf(e.streams.Out, "Controller: not found (no Deployment labelled %s %s)\n", o.selector, where)
		return nil
	}
	sort.Slice(list.Items, func(i, j int) bool {
		return list.Items[i].Namespace+"/"+list.Items[i].Name < list.Items[j].Namespace+"/"+list.Items[j].Name
	})
	for _, d := range list.Items {
		fmt.Fprintf(e.streams.Out, "Controller: %s\n", cell(controllerVersion(&d)))
	}
	return nil
}

// controllerVersion describes a Herald Deployment: its version (the image tag, else the
// version label), image and readiness.
func controllerVersion(d *appsv1.Deployment) string {
	image := ""
	if cs := d.Spec.Template.Spec.Containers; len(cs) > 0 {
		image = cs[0].Image
		for _, c := range cs {
			if c.Name == "manager" || c.Name == "herald" {
				image = c.Image
			}
		}
	}
	v := imageTag(image)
	if v == "" {
		v = d.Labels["app.kubernetes.io/version"]
	}
	if v == "" {
		v = "unknown"
	}
	desired := int32(1)
	if d.Spec.Replicas != nil {
		desired = *d.Spec.Replicas
	}
	return fmt.Sprintf("%s (Deployment %s/%s, image %s, %d/%d ready)", v, d.Namespace, d.Name, image, d.Status.ReadyReplicas, desired)
}

// imageTag is the tag of an image reference (before a digest), or "".
func imageTag(image string) string {
	ref, _, _ := strings.Cut(image, "@")
	slash := strings.LastIndex(ref, "/")
	colon := strings.LastIndex(ref, ":")
	if colon <= slash {
		return ""
	}
	return ref[colon+1:]
}

func parseSelector(s string) (labels.Selector, error) { return labels.Parse(s) }
