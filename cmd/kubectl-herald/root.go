package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/router"
)

// scheme knows the kinds the plugin reads: Kubernetes', Herald's and Istio's.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(flaggerv1.AddToScheme(s))
	utilruntime.Must(router.AddToScheme(s))
	return s
}()

// env is what a command works with. Tests give their own (a fake client, a fixed clock).
type env struct {
	streams genericiooptions.IOStreams
	// connect returns a client of the cluster and the namespace the command works in (-n, or
	// the kubeconfig context's).
	connect func(flags *genericclioptions.ConfigFlags) (client.WithWatch, string, error)
	now     func() time.Time
	// color: ANSI colours on stdout (only on a terminal, unless NO_COLOR or TERM=dumb).
	color bool
	// terminal: stdout is a terminal, so -w may redraw the screen.
	terminal bool
	// poll is how often watches redraw what events do not announce (ages, child objects).
	poll time.Duration
	// flags are kubectl's connection flags of this run.
	flags *genericclioptions.ConfigFlags
}

// client connects with the run's flags.
func (e *env) client() (client.WithWatch, string, error) { return e.connect(e.flags) }

// exitError ends the plugin with a code and, when msg is set, a message on stderr.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// run runs the plugin with args and returns its exit code. testEnv, when set, replaces the
// connection, the clock and the terminal detection.
func run(ctx context.Context, args []string, streams genericiooptions.IOStreams, testEnv *env) int {
	flags := genericclioptions.NewConfigFlags(true)
	e := testEnv
	if e == nil {
		e = &env{
			streams:  streams,
			now:      time.Now,
			color:    printers.AllowsColorOutput(streams.Out),
			terminal: printers.IsTerminal(streams.Out),
			poll:     2 * time.Second,
		}
		e.connect = connect
	}
	e.flags = flags
	root := newRoot(e, flags)
	root.SetArgs(args)
	root.SetIn(e.streams.In)
	root.SetOut(e.streams.Out)
	root.SetErr(e.streams.ErrOut)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var exit *exitError
	if errors.As(err, &exit) {
		if exit.msg != "" {
			fmt.Fprintln(e.streams.ErrOut, "error: "+exit.msg)
		}
		return exit.code
	}
	fmt.Fprintln(e.streams.ErrOut, "error: "+err.Error())
	return 1
}

// connect builds a client from kubectl's connection flags and KUBECONFIG.
func connect(flags *genericclioptions.ConfigFlags) (client.WithWatch, string, error) {
	cfg, err := flags.ToRESTConfig()
	if err != nil {
		return nil, "", err
	}
	cfg.UserAgent = "kubectl-herald"
	ns, _, err := flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, "", err
	}
	cl, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, "", err
	}
	return cl, ns, nil
}

func newRoot(e *env, flags *genericclioptions.ConfigFlags) *cobra.Command {
	root := &cobra.Command{
		Use:   "kubectl-herald",
		Short: "See and steer Herald's Canaries",
		Long: `kubectl herald shows Herald's Canaries and steers their releases without editing
the Canary's spec (which a GitOps tool may own): promote, abort, retry, pause and resume are
requests that Herald acts on once, for the revision they were made for.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		// kubectl runs a plugin as kubectl-herald; its help should say `kubectl herald`.
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl herald"},
	}
	flags.AddFlags(root.PersistentFlags())
	root.AddCommand(
		newGetCmd(e),
		newStatusCmd(e),
		newRequestCmd(e, flaggerv1.RequestPromote, "Promote the revision under analysis now, at its current weight",
			"Ends the analysis of the current revision where it stands and promotes it, as skipAnalysis would:\n"+
				"the canary keeps its traffic until the primary has rolled out. Gates and metrics are not consulted."),
		newRequestCmd(e, flaggerv1.RequestAbort, "Roll back the revision under analysis now",
			"Routes all traffic back to the primary and scales the canary down: the release is Failed."),
		newRequestCmd(e, flaggerv1.RequestRetry, "Run the analysis of a Failed revision again",
			"Starts a new analysis of the revision that failed, without a change to the target."),
		newRequestCmd(e, flaggerv1.RequestPause, "Hold the analysis of the current revision",
			"No step, hook or metric check runs until `kubectl herald resume`; the traffic stays as it is.\n"+
				"A new revision of the target is analysed as usual."),
		newRequestCmd(e, flaggerv1.RequestResume, "Let a paused analysis go on", "The step that was due runs at once."),
		newLintCmd(e),
		newVersionCmd(e),
	)
	return root
}

// usageError is a mistake in the command line: exit code 1 with the message.
func usageError(format string, args ...any) error {
	return &exitError{code: 1, msg: fmt.Sprintf(format, args...)}
}
