/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

// Package tasks turns a hook payload sent to the load tester's root path into work:
//
//	type cmd (default)  a hey command line runs on the built-in generator, in the
//	                    background, at most once at a time per Canary and load; any other
//	                    command runs in the background, if allowed
//	type load           the explicit form of a load (see load.FromMetadata)
//	type bash           a command, blocking, if allowed
//	type helm, helmv3   helm <cmd>, blocking, if allowed
//	type kubectl        kubectl <cmd>, blocking, if allowed
//
// Commands are allowed by the operator's patterns (see commands.Rules): a command of
// plain words runs without a shell when it matches an -allow-command pattern ("helm test
// podinfo", "kubectl get pods", "curl -s http://x/"); a line that needs a shell runs with
// sh -c (cmd) or bash -c (bash) only when it matches an -allow-shell-command pattern. Every
// refusal and every bad input is an answer with a status code and a message that says
// what to change, never a panic.
package tasks

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"github.com/herald-rollouts/herald/cmd/loadtester/internal/commands"
	"github.com/herald-rollouts/herald/cmd/loadtester/internal/jobs"
	"github.com/herald-rollouts/herald/cmd/loadtester/internal/load"
	"github.com/herald-rollouts/herald/cmd/loadtester/internal/metrics"
	"github.com/herald-rollouts/herald/cmd/loadtester/internal/shellwords"
	"github.com/herald-rollouts/herald/internal/hookwire"
)

// Task types, the values of metadata.type.
const (
	TypeCmd     = "cmd"
	TypeLoad    = "load"
	TypeBash    = "bash"
	TypeHelm    = "helm"
	TypeHelmV3  = "helmv3"
	TypeKubectl = "kubectl"
)

// supported lists the task types for messages.
const supported = "cmd (the default), load, bash, helm, helmv3, kubectl"

// Response is the answer to a task call.
type Response struct {
	// Status is the HTTP status: 202 for background work, 200 for a blocking command that
	// succeeded, 400 for bad input, 403 for a refused command, 429 when the background
	// work is at its limits, 500 for a failed command or one that is not installed.
	Status int
	// Body is a message for the user, or a command's output when asked for.
	Body string
}

// Runner runs tasks. All fields are required.
type Runner struct {
	// Rules say which commands may run, and how.
	Rules commands.Rules
	// Jobs runs the background work, once per key at a time, within its limits.
	Jobs *jobs.Registry
	// Timeout bounds a blocking command.
	Timeout time.Duration
	Metrics *metrics.Metrics
	Log     logr.Logger
}

// Run runs the task that p's metadata describes. p is the payload Herald's hooks send
// (hookwire.Payload, Flagger's CanaryWebhookPayload).
func (r *Runner) Run(ctx context.Context, p hookwire.Payload) Response {
	md := p.Metadata
	if len(md) == 0 {
		return Response{http.StatusBadRequest, "metadata is missing: set metadata.cmd to a command such as " +
			`"hey -z 1m -q 10 -c 2 http://podinfo-canary.test:9898/", or metadata.type to one of ` + supported}
	}
	typ := md["type"]
	if typ == "" {
		typ = TypeCmd
	}
	switch typ {
	case TypeCmd:
		return r.cmd(p)
	case TypeLoad:
		spec, err := load.FromMetadata(md)
		if err != nil {
			return Response{http.StatusBadRequest, err.Error()}
		}
		return r.startLoad(p, spec)
	case TypeBash:
		if strings.TrimSpace(md["cmd"]) == "" {
			return missingCmd(typ)
		}
		plan, res := r.plan(typ, func() (commands.Plan, error) { return r.Rules.PlanLine("bash", md["cmd"]) })
		if res != nil {
			return *res
		}
		return r.blocking(ctx, p, typ, plan)
	case TypeHelm, TypeHelmV3, TypeKubectl:
		if strings.TrimSpace(md["cmd"]) == "" {
			return missingCmd(typ)
		}
		binary := typ
		if typ == TypeHelmV3 {
			binary = TypeHelm
		}
		args, err := shellwords.SplitCommand(md["cmd"])
		if err != nil {
			return Response{http.StatusBadRequest, fmt.Sprintf("metadata.cmd of a %s task is the arguments of %s, "+
				"which runs without a shell: %v", typ, binary, err)}
		}
		plan, res := r.plan(typ, func() (commands.Plan, error) { return r.Rules.PlanArgv(append([]string{binary}, args...)) })
		if res != nil {
			return *res
		}
		return r.blocking(ctx, p, typ, plan)
	case "concord", "ngrinder":
		return Response{http.StatusBadRequest, fmt.Sprintf("task type %q is not supported by Herald's load tester; "+
			"call its API from a bash task, or use one of %s", typ, supported)}
	default:
		return Response{http.StatusBadRequest, fmt.Sprintf("unknown task type %q in metadata.type; use one of %s", typ, supported)}
	}
}

func missingCmd(typ string) Response {
	return Response{http.StatusBadRequest, fmt.Sprintf("metadata.cmd is required for a %s task", typ)}
}

// cmd runs a cmd task: hey on the built-in generator, anything else as an allowed
// command, both in the background.
func (r *Runner) cmd(p hookwire.Payload) Response {
	line := p.Metadata["cmd"]
	if strings.TrimSpace(line) == "" {
		return missingCmd(TypeCmd)
	}
	words, err := shellwords.Split(line)
	switch {
	case err == nil && len(words) > 0 && load.IsHey(words[0]):
		spec, err := load.ParseHey(words[1:])
		if err != nil {
			return Response{http.StatusBadRequest, "metadata.cmd: " + err.Error()}
		}
		if spec.BodyFile != "" {
			// -D makes the load tester send one of its own files (a token, say) to any URL.
			if _, err := r.Rules.PlanArgv(words); err != nil {
				r.Metrics.Commands.WithLabelValues(TypeCmd, "refused").Inc()
				return Response{http.StatusForbidden, fmt.Sprintf("metadata.cmd: hey -D sends a file of the load tester and is "+
					"refused unless the command matches an -allow-command pattern; use -d, or a load task's body (%v)", err)}
			}
			if err := spec.LoadBodyFile(); err != nil {
				return Response{http.StatusBadRequest, "metadata.cmd: hey -D: " + err.Error()}
			}
		}
		return r.startLoad(p, spec)
	case err != nil && !errors.Is(err, shellwords.ErrNeedsShell):
		return Response{http.StatusBadRequest, "metadata.cmd: " + err.Error()}
	}

	plan, res := r.plan(TypeCmd, func() (commands.Plan, error) { return r.Rules.PlanLine("sh", line) })
	if res != nil {
		if f := strings.Fields(line); res.Status == http.StatusForbidden && len(f) > 0 && load.IsHey(f[0]) && err != nil {
			res.Body += fmt.Sprintf("; this hey command is not run by the built-in generator because %v: quote the URL or drop the shell feature", err)
		}
		return *res
	}
	key := jobs.Key{Namespace: p.Namespace, Name: p.Name, Kind: "cmd", ID: plan.Line}
	log := r.logFor(p)
	logOutput, _ := strconv.ParseBool(p.Metadata["logCmdOutput"])
	started, serr := r.Jobs.Start(key, 0, func(ctx context.Context) {
		log.Info("command started", "type", TypeCmd, "command", plan.Line, "shell", plan.Shell)
		out, err := commands.Run(ctx, plan.Argv)
		r.finished(log, TypeCmd, plan.Line, out, err, logOutput)
	})
	switch {
	case serr != nil:
		return startError(serr)
	case !started:
		return Response{http.StatusAccepted, fmt.Sprintf("command already running for %s/%s", p.Namespace, p.Name)}
	}
	return Response{http.StatusAccepted, fmt.Sprintf("command started for %s/%s", p.Namespace, p.Name)}
}

// plan asks the rules how a command of a task of type typ runs, answering a refusal with
// 403, a command that does not parse with 400, and one whose program is missing with 500
// (checked after the rules, so that a refused caller learns nothing of what is installed).
func (r *Runner) plan(typ string, decide func() (commands.Plan, error)) (commands.Plan, *Response) {
	plan, err := decide()
	var refused *commands.RefusedError
	switch {
	case errors.As(err, &refused):
		r.Metrics.Commands.WithLabelValues(typ, "refused").Inc()
		return plan, &Response{http.StatusForbidden, err.Error()}
	case err != nil:
		return plan, &Response{http.StatusBadRequest, "metadata.cmd: " + err.Error()}
	}
	if err := commands.Installed(plan.Argv[0]); err != nil {
		r.Metrics.Commands.WithLabelValues(typ, "failed").Inc()
		return plan, &Response{http.StatusInternalServerError, err.Error()}
	}
	return plan, nil
}

// startLoad starts a load unless the same one runs already for the same Canary.
func (r *Runner) startLoad(p hookwire.Payload, spec load.Spec) Response {
	key := jobs.Key{Namespace: p.Namespace, Name: p.Name, Kind: "load", ID: spec.Key()}
	log := r.logFor(p)
	desc := spec.String()
	if most := r.Jobs.Limits().Workers; most > 0 && spec.Concurrency > most {
		return Response{http.StatusBadRequest, fmt.Sprintf("the load asks for %d workers; this load tester runs at most %d "+
			"workers at once (-max-workers): ask for fewer (hey -c, metadata.concurrency)", spec.Concurrency, most)}
	}
	started, err := r.Jobs.Start(key, spec.Concurrency, func(ctx context.Context) {
		r.Metrics.LoadsRunning.Inc()
		defer r.Metrics.LoadsRunning.Dec()
		log.Info("load started", "load", desc)
		res, err := load.Run(ctx, spec, r.Metrics.ObserveLoadRequest)
		if err != nil {
			log.Error(err, "load could not run", "load", desc)
			return
		}
		log.Info("load finished", "load", desc, "result", res.String(), "stoppedEarly", ctx.Err() != nil)
	})
	switch {
	case err != nil:
		return startError(err)
	case !started:
		r.Metrics.LoadsDeduplicated.Inc()
		return Response{http.StatusAccepted, fmt.Sprintf("load already running for %s/%s: %s", p.Namespace, p.Name, desc)}
	}
	r.Metrics.LoadsStarted.Inc()
	return Response{http.StatusAccepted, fmt.Sprintf("load started for %s/%s: %s", p.Namespace, p.Name, desc)}
}

// startError answers a background job that did not start: 429 when the load tester is
// full (the hook is called again at the next step), 503 when it is shutting down.
func startError(err error) Response {
	if errors.Is(err, jobs.ErrFull) {
		return Response{http.StatusTooManyRequests, err.Error()}
	}
	return Response{http.StatusServiceUnavailable, err.Error()}
}

// blocking runs an allowed command and answers with its outcome: 200, or 500 with its
// output. metadata.returnCmdOutput "true" puts the standard output in a 200's body. The
// command counts against -max-loads while it runs (429 when the load tester is full), and
// is stopped after -timeout.
func (r *Runner) blocking(ctx context.Context, p hookwire.Payload, typ string, plan commands.Plan) Response {
	if r.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.Timeout)
		defer cancel()
	}
	log := r.logFor(p)
	logOutput, _ := strconv.ParseBool(p.Metadata["logCmdOutput"])
	var res Response
	err := r.Jobs.Run(ctx, func(ctx context.Context) {
		log.Info("command started", "type", typ, "command", plan.Line, "shell", plan.Shell)
		out, err := commands.Run(ctx, plan.Argv)
		r.finished(log, typ, plan.Line, out, err, logOutput)
		switch ret, _ := strconv.ParseBool(p.Metadata["returnCmdOutput"]); {
		case err != nil:
			res = Response{http.StatusInternalServerError, fmt.Sprintf("%v\n%s", err, out.Combined)}
		case ret:
			res = Response{http.StatusOK, string(out.Stdout)}
		default:
			res = Response{http.StatusOK, "OK"}
		}
	})
	if err != nil {
		return startError(err)
	}
	return res
}

// finished logs a command's outcome, with the end of its output (commands.LogTail) when
// it failed or when logOutput asks for it.
func (r *Runner) finished(log logr.Logger, typ, line string, out commands.Output, err error, logOutput bool) {
	if err != nil {
		r.Metrics.Commands.WithLabelValues(typ, "failed").Inc()
		log.Error(err, "command failed", "type", typ, "command", line, "output", commands.Tail(out.Combined, commands.LogTail))
		return
	}
	r.Metrics.Commands.WithLabelValues(typ, "ok").Inc()
	if logOutput {
		log.Info("command succeeded", "type", typ, "command", line, "output", commands.Tail(out.Combined, commands.LogTail))
		return
	}
	log.Info("command succeeded", "type", typ, "command", line)
}

func (r *Runner) logFor(p hookwire.Payload) logr.Logger {
	return r.Log.WithValues("canary", p.Name, "namespace", p.Namespace)
}
