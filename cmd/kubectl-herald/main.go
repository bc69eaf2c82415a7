// Command kubectl-herald is the kubectl plugin of Herald: `kubectl herald get|status|promote|
// abort|retry|pause|resume|lint|version`. It connects as kubectl does (every kubectl
// connection flag, KUBECONFIG, the current context's namespace), through k8s.io/cli-runtime.
//
// Install it on the PATH (`go install ./cmd/kubectl-herald`, or `make build` and bin/) and
// kubectl finds it as `kubectl herald`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/cli-runtime/pkg/genericiooptions"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}, nil)
	stop()
	os.Exit(code)
}
