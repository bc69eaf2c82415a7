/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

// Command loadtester is the service that Canary analysis hooks call: it generates load
// (hey command lines run on a built-in generator), keeps manual gates that survive a
// restart, and runs the commands an operator allows. It answers on Flagger's load
// tester endpoints, so existing hooks work unchanged.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	// Mozilla's CA roots, used when the image has none (it is a static binary on an empty base).
	_ "golang.org/x/crypto/x509roots/fallback"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/herald-rollouts/herald/cmd/loadtester/internal/commands"
	"github.com/herald-rollouts/herald/cmd/loadtester/internal/gates"
	"github.com/herald-rollouts/herald/cmd/loadtester/internal/jobs"
	"github.com/herald-rollouts/herald/cmd/loadtester/internal/metrics"
	"github.com/herald-rollouts/herald/cmd/loadtester/internal/server"
	"github.com/herald-rollouts/herald/cmd/loadtester/internal/tasks"
	"github.com/herald-rollouts/herald/internal/logging"
	"github.com/herald-rollouts/herald/internal/version"
)

// gateTokenEnv holds the default of -gate-token, so that the token can come from a
// Secret without showing in the process list.
const gateTokenEnv = "LOADTESTER_GATE_TOKEN"

type options struct {
	port            int
	stateDir        string
	stateConfigMap  string
	kubeconfig      string
	allowCommands   patternList
	allowShell      patternList
	namespaceRegexp string
	timeout         time.Duration
	maxLoads        int
	maxWorkers      int
	gateToken       string
	logLevel        string
	logEncoding     string
	version         bool
}

// patternList is a repeatable flag. Values are not split on commas: commas are part of
// regular expressions such as \d{1,3}.
type patternList []string

func (p *patternList) String() string { return strings.Join(*p, " ") }

func (p *patternList) Set(v string) error {
	*p = append(*p, v)
	return nil
}

func (o *options) bind(fs *flag.FlagSet) {
	fs.BoolVar(&o.version, "version", false, "Print the version and exit.")
	fs.IntVar(&o.port, "port", 8080, "Port of the HTTP API. 8080 is where Flagger's chart runs its load tester and where its "+
		"docs send gate calls (curl localhost:8080/gate/open); Flagger's binary default, 9090, is Prometheus's port.")
	fs.StringVar(&o.stateDir, "state-dir", filepath.Join(os.TempDir(), "herald-loadtester"),
		"Directory of the gate state ("+gates.FileName+") when -state-configmap is not set: kept over restarts of this "+
			"process, for local runs. Empty: gates in memory only.")
	fs.StringVar(&o.stateConfigMap, "state-configmap", "", "<namespace>/<name> of a ConfigMap that keeps the gate state "+
		"(key "+gates.FileName+"): it survives pod replacements and is shared by replicas. The load tester needs get and "+
		"update on it (create if it does not exist). config/loadtester sets it.")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "Kubeconfig for -state-configmap. Default: $KUBECONFIG, ~/.kube/config, "+
		"or the pod's service account.")
	fs.Var(&o.allowCommands, "allow-command", "Regular expression of a command that cmd, bash, helm and kubectl tasks may run "+
		"without a shell, matched against the whole command as plain words (helm and kubectl tasks: \"helm <cmd>\", "+
		"\"kubectl <cmd>\"; a word with spaces or special characters is single-quoted). Repeatable. Default: none, so nobody "+
		"who can reach the load tester can run commands; hey command lines need no pattern. A command line that needs a "+
		"shell (; | & $ ` < > ( ) globs...) never matches these.")
	fs.Var(&o.allowShell, "allow-shell-command", "Regular expression of a command line that cmd and bash tasks may run "+
		"with a shell (sh -c, bash -c), matched against the text as sent. Repeatable. Default: none. Only exact lines are "+
		"safe: a pattern such as 'curl \\S+' also matches 'curl x;rm${IFS}-rf${IFS}/'.")
	fs.StringVar(&o.namespaceRegexp, "namespace-regexp", "", "Serve only payloads whose namespace matches this regular "+
		"expression (the whole namespace); others get 403. Default: all.")
	fs.DurationVar(&o.timeout, "timeout", time.Hour, "Longest run of a task: loads and commands are stopped after it.")
	fs.IntVar(&o.maxLoads, "max-loads", 10, "Most loads and background commands running at once; more get 429.")
	fs.IntVar(&o.maxWorkers, "max-workers", 500, "Most workers (concurrent requests) of all running loads together; a load that "+
		"would exceed it gets 429, one that asks for more on its own 400.")
	fs.StringVar(&o.gateToken, "gate-token", os.Getenv(gateTokenEnv), "Token that the task endpoint /, /gate/check|open|close and "+
		"/rollback/check|open|close require (401 without it), as 'Authorization: Bearer <token>' or as the password of a "+
		"hook URL (http://herald:<token>@flagger-loadtester.test/gate/check). Default: $"+gateTokenEnv+", or none: "+
		"whoever reaches the load tester can open gates. Prefer the environment variable: flags show in process lists.")
	fs.StringVar(&o.logLevel, "log-level", "info", "Log level: debug, info, warn or error.")
	fs.StringVar(&o.logEncoding, "log-encoding", "json", "Log encoding: json or console.")
}

// config is what the options turn into.
type config struct {
	rules      commands.Rules
	configMap  gates.ID // namespace and name of -state-configmap
	namespaces *regexp.Regexp
}

func (o *options) validate() (config, error) {
	var c config
	var errs []error
	if o.port < 1 || o.port > 65535 {
		errs = append(errs, fmt.Errorf("-port %d is not a TCP port", o.port))
	}
	var err error
	if c.rules.Commands, err = commands.NewAllowList(o.allowCommands); err != nil {
		errs = append(errs, fmt.Errorf("-allow-command: %w", err))
	}
	if c.rules.ShellCommands, err = commands.NewAllowList(o.allowShell); err != nil {
		errs = append(errs, fmt.Errorf("-allow-shell-command: %w", err))
	}
	if o.namespaceRegexp != "" {
		c.namespaces, err = regexp.Compile(`^(?:` + o.namespaceRegexp + `)$`)
		if err != nil {
			errs = append(errs, fmt.Errorf("-namespace-regexp: %w", err))
		}
	}
	if o.timeout <= 0 {
		errs = append(errs, fmt.Errorf("-timeout %s must be positive", o.timeout))
	}
	if o.stateConfigMap != "" {
		ns, name, ok := strings.Cut(o.stateConfigMap, "/")
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("-state-configmap %q: use <namespace>/<name>", o.stateConfigMap))
		case len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0:
			errs = append(errs, fmt.Errorf("-state-configmap %q: not a namespace and a ConfigMap name", o.stateConfigMap))
		}
		c.configMap = gates.ID{Namespace: ns, Name: name}
	}
	if o.maxLoads < 1 {
		errs = append(errs, fmt.Errorf("-max-loads %d must be at least 1", o.maxLoads))
	}
	if o.maxWorkers < 1 {
		errs = append(errs, fmt.Errorf("-max-workers %d must be at least 1", o.maxWorkers))
	}
	if err := logging.Validate(o.logLevel, o.logEncoding); err != nil {
		errs = append(errs, err)
	}
	return c, errors.Join(errs...)
}

func main() {
	var o options
	o.bind(flag.CommandLine)
	flag.Parse()
	if o.version {
		fmt.Println(version.String("loadtester"))
		return
	}
	c, err := o.validate()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	log := logging.New(o.logLevel, o.logEncoding)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, c, log); err != nil {
		log.Error(err, "load tester stopped")
		os.Exit(1)
	}
}

// openGates returns the gate store that the flags ask for.
func openGates(ctx context.Context, o options, c config) (gates.Store, error) {
	if o.stateConfigMap == "" {
		return gates.Open(o.stateDir)
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading the Kubernetes client configuration for -state-configmap: %w", err)
	}
	cfg.UserAgent = "herald-loadtester"
	// A gate call must not hang on an unreachable API server: the hook has its own timeout.
	cfg.Timeout = 10 * time.Second
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating the Kubernetes client: %w", err)
	}
	store := gates.NewConfigMapStore(client, c.configMap.Namespace, c.configMap.Name)
	checkCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := store.Check(checkCtx); err != nil {
		return nil, err
	}
	return store, nil
}

func run(ctx context.Context, o options, c config, log logr.Logger) error {
	store, err := openGates(ctx, o, c)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	background := jobs.New(o.timeout, jobs.Limits{Jobs: o.maxLoads, Workers: o.maxWorkers})
	handler := server.New(server.Options{
		Gates:      store,
		Tasks:      &tasks.Runner{Rules: c.rules, Jobs: background, Timeout: o.timeout, Metrics: m, Log: log},
		Metrics:    m,
		Gatherer:   reg,
		Namespaces: c.namespaces,
		GateToken:  o.gateToken,
		Log:        log,
	})

	l, err := net.Listen("tcp", ":"+strconv.Itoa(o.port))
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	// Calls inherit this context, so that a shutdown also stops the commands of blocking
	// tasks instead of waiting for them up to -timeout.
	calls, cancelCalls := context.WithCancel(context.Background())
	defer cancelCalls()
	srv := &http.Server{
		Handler:           handler,
		BaseContext:       func(net.Listener) context.Context { return calls },
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// No write timeout: bash, helm and kubectl tasks answer when their command ends.
	}
	log.Info("load tester listening", "address", l.Addr().String(), "gateState", store.Where(),
		"allowedCommandPatterns", c.rules.Commands.Len(), "allowedShellCommandPatterns", c.rules.ShellCommands.Len(), "namespaceRegexp", o.namespaceRegexp, "timeout", o.timeout.String(),
		"maxLoads", o.maxLoads, "maxWorkers", o.maxWorkers, "gateTokenRequired", o.gateToken != "")

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(l) }()
	select {
	case err := <-serveErr:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: stopping loads and commands")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cancelCalls()
	jobsErr := background.Stop(shutdownCtx)
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutting the HTTP server down: %w", err)
	}
	if jobsErr != nil {
		return fmt.Errorf("waiting for loads and commands to stop: %w", jobsErr)
	}
	return nil
}
