package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/requests"
)

type requestOptions struct {
	action  flaggerv1.CanaryRequestAction
	wait    bool
	timeout time.Duration
}

func newRequestCmd(e *env, action flaggerv1.CanaryRequestAction, short, long string) *cobra.Command {
	o := &requestOptions{action: action}
	cmd := &cobra.Command{
		Use:   string(action) + " NAME",
		Short: short,
		Long: long + `

The request is an annotation on the Canary (` + requests.Annotation + `), written as the field manager
"` + requests.FieldManager + `": the spec is not touched, so a GitOps re-apply neither undoes it nor
reports drift. Herald acts on it once, only for the revision it was made for, and records the
outcome in status.lastRequest. A request that makes no sense for the Canary as it stands is
refused here, and nothing is written.`,
		Example: fmt.Sprintf("  kubectl herald -n test %s podinfo", action),
		Args:    exactlyOneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd.Context(), e, args[0])
		},
	}
	cmd.Flags().BoolVar(&o.wait, "wait", true, "Wait until Herald has acted on the request, and exit 1 if it refused it.")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 30*time.Second, "How long --wait waits for Herald.")
	return cmd
}

func (o *requestOptions) run(ctx context.Context, e *env, name string) error {
	cl, ns, err := e.client()
	if err != nil {
		return err
	}
	user := whoAmI(ctx, cl)
	var req requests.Request
	// Read, check and write at the resourceVersion that was checked: when the Canary changed
	// in between (Herald wrote its status), it is read and checked again.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		c, err := getCanary(ctx, cl, ns, name)
		if err != nil {
			return err
		}
		if pending, perr := requests.Pending(c); perr == nil && pending != nil {
			return &exitError{code: 1, msg: fmt.Sprintf(
				"canary %s/%s has a %s request made %s that Herald has not acted on yet (is Herald running?); nothing was changed. "+
					"Wait for it, or withdraw it with: kubectl -n %s annotate canary/%s %s-",
				ns, name, pending.Action, pending.Time.UTC().Format(time.RFC3339), ns, name, requests.Annotation)}
		}
		if err := requests.Allowed(c, o.action); err != nil {
			return &exitError{code: 1, msg: err.Error() + "; nothing was changed"}
		}
		req = requests.New(o.action, c, user, e.now())
		return writeRequest(ctx, cl, c, req)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.streams.Out, "canary.flagger.app/%s %s requested (request %s)\n", name, o.action, req.ID)
	if !o.wait {
		return nil
	}
	return o.await(ctx, e, cl, ns, name, req)
}

// writeRequest puts the request on the Canary with a server-side apply of the annotation
// alone, as the plugin's own field manager, at the resourceVersion it was checked at.
func writeRequest(ctx context.Context, cl client.Client, c *flaggerv1.Canary, req requests.Request) error {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(flaggerv1.GroupVersion.String())
	u.SetKind(flaggerv1.CanaryKind)
	u.SetNamespace(c.Namespace)
	u.SetName(c.Name)
	u.SetResourceVersion(c.ResourceVersion)
	u.SetAnnotations(map[string]string{requests.Annotation: req.Encode()})
	// ForceOwnership: the annotation is the plugin's by contract, even if someone wrote it by
	// hand (kubectl annotate) before.
	if err := cl.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(requests.FieldManager), client.ForceOwnership); err != nil {
		return fmt.Errorf("writing the request on canary %s/%s: %w", c.Namespace, c.Name, err)
	}
	return nil
}

// await waits until Herald has recorded the request in status.lastRequest.
func (o *requestOptions) await(ctx context.Context, e *env, cl client.Client, ns, name string, req requests.Request) error {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := getCanary(ctx, cl, ns, name)
		if err == nil && c.Status.LastRequest != nil && c.Status.LastRequest.ID == req.ID {
			r := c.Status.LastRequest
			if r.Outcome != flaggerv1.RequestHonoured {
				return &exitError{code: 1, msg: fmt.Sprintf("Herald did not act on the %s request (%s): %s", o.action, r.Outcome, r.Message)}
			}
			writeColored(e.streams.Out, fmt.Sprintf("canary.flagger.app/%s %s %s: %s\n", name, o.action, r.Outcome, cell(r.Message)), e.color)
			return nil
		}
		select {
		case <-ctx.Done():
			return &exitError{code: 1, msg: fmt.Sprintf(
				"Herald has not acted on the %s request within %s (is Herald running?). The request stays on the Canary: "+
					"Herald acts on it when it sees it, if it still makes sense then; withdraw it with: kubectl -n %s annotate canary/%s %s-",
				o.action, o.timeout, ns, name, requests.Annotation)}
		case <-tick.C:
		}
	}
}

// whoAmI is the user the API server authenticates the plugin as, for the request's record;
// empty when the server does not say.
func whoAmI(ctx context.Context, cl client.Client) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	review := &authenticationv1.SelfSubjectReview{}
	if err := cl.Create(ctx, review); err != nil {
		return ""
	}
	return review.Status.UserInfo.Username
}
