/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

// Package tasks turns a hook payload sent to the load tester's root path into work:
//
//	type cmd (default)  a hey command line runs on the built-in generator, in the
//	                    background, at most once at a time per Canary and load; any other
//	                    command runs with sh -c in the background, if allowed
//	type load           the explicit form of a load (see load.FromMetadata)
//	type bash           bash -c <cmd>, blocking, if allowed
//	type helm, helmv3   helm <cmd>, blocking, if allowed
//	type kubectl        kubectl <cmd>, blocking, if allowed
//
// Commands are allowed by the operator's -allow-command patterns, matched against the
// whole command line as it runs ("helm test podinfo", "kubectl get pods", or the cmd of
// cmd and bash tasks). Every refusal and every bad input is an answer with a status code
// and a message that says what to change, never a panic.
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

// Payload is the body every hook call carries (Flagger's CanaryWebhookPayload).
type Payload struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Phase     string            `json:"phase,omitempty"`
	Checksum  string            `json:"checksum,omitempty"`
	Metadata  map[string]string `json:"metadata,omitempty"`
}

// Response is the answer to a task call.
type Response struct {
	// Status is the HTTP status: 202 for background work, 200 for a blocking command that
	// succeeded, 400 for bad input, 403 for a refused command, 500 for a failed one.
	Status int
	// Body is a message for the user, or a command's output when asked for.
	Body string
}

// Runner runs tasks. All fields are required.
type Runner struct {
	// Allow holds the commands that may run.
	Allow *commands.AllowList
	// Jobs runs the background work, once per key at a time.
	Jobs *jobs.Registry
	// Timeout bounds a blocking command.
	Timeout time.Duration
	Metrics *metrics.Metrics
	Log     logr.Logger
}

// Run runs the task that p's metadata describes.
func (r *Runner) Run(ctx context.Context, p Payload) Response {
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
		if md["cmd"] == "" {
			return missingCmd(typ)
		}
		return r.blocking(ctx, p, typ, md["cmd"], []string{"bash", "-c", md["cmd"]})
	case TypeHelm, TypeHelmV3, TypeKubectl:
		if md["cmd"] == "" {
			return missingCmd(typ)
		}
		binary := typ
		if typ == TypeHelmV3 {
			binary = TypeHelm
		}
		args, err := shellwords.Split(md["cmd"])
		if err != nil {
			return Response{http.StatusBadRequest, fmt.Sprintf("metadata.cmd of a %s task is the arguments of %s: %v", typ, binary, err)}
		}
		return r.blocking(ctx, p, typ, binary+" "+md["cmd"], append([]string{binary}, args...))
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

// cmd runs a cmd task: hey on the built-in generator, anything else with sh -c, both in
// the background.
func (r *Runner) cmd(p Payload) Response {
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
			if !r.Allow.Allows(line) {
				r.Metrics.Commands.WithLabelValues(TypeCmd, "refused").Inc()
				return Response{http.StatusForbidden, fmt.Sprintf("metadata.cmd: hey -D sends a file of the load tester and is "+
					"refused unless the command matches an -allow-command pattern; use -d, or a load task's body (%s)", allowHint(r.Allow))}
			}
			if err := spec.LoadBodyFile(); err != nil {
				return Response{http.StatusBadRequest, "metadata.cmd: hey -D: " + err.Error()}
			}
		}
		return r.startLoad(p, spec)
	case err != nil && !errors.Is(err, shellwords.ErrNeedsShell):
		return Response{http.StatusBadRequest, "metadata.cmd: " + err.Error()}
	}

	if !r.Allow.Allows(line) {
		r.Metrics.Commands.WithLabelValues(TypeCmd, "refused").Inc()
		msg := refusal(line, r.Allow)
		if f := strings.Fields(line); len(f) > 0 && load.IsHey(f[0]) && err != nil {
			msg += fmt.Sprintf("; this hey command is not run by the built-in generator because %v: quote the URL or drop the shell feature", err)
		}
		return Response{http.StatusForbidden, msg}
	}
	key := p.Namespace + "/" + p.Name + "/cmd/" + line
	log := r.logFor(p)
	logOutput, _ := strconv.ParseBool(p.Metadata["logCmdOutput"])
	started, serr := r.Jobs.Start(key, func(ctx context.Context) {
		log.Info("command started", "type", TypeCmd, "command", line)
		out, err := commands.Run(ctx, []string{"sh", "-c", line})
		r.finished(log, TypeCmd, line, out, err, logOutput)
	})
	switch {
	case serr != nil:
		return Response{http.StatusServiceUnavailable, serr.Error()}
	case !started:
		return Response{http.StatusAccepted, fmt.Sprintf("command already running for %s/%s", p.Namespace, p.Name)}
	}
	return Response{http.StatusAccepted, fmt.Sprintf("command started for %s/%s", p.Namespace, p.Name)}
}

// startLoad starts a load unless the same one runs already for the same Canary.
func (r *Runner) startLoad(p Payload, spec load.Spec) Response {
	key := p.Namespace + "/" + p.Name + "/load/" + spec.Key()
	log := r.logFor(p)
	desc := spec.String()
	started, err := r.Jobs.Start(key, func(ctx context.Context) {
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
		return Response{http.StatusServiceUnavailable, err.Error()}
	case !started:
		r.Metrics.LoadsDeduplicated.Inc()
		return Response{http.StatusAccepted, fmt.Sprintf("load already running for %s/%s: %s", p.Namespace, p.Name, desc)}
	}
	r.Metrics.LoadsStarted.Inc()
	return Response{http.StatusAccepted, fmt.Sprintf("load started for %s/%s: %s", p.Namespace, p.Name, desc)}
}

// blocking runs an allowed command and answers with its outcome: 200, or 500 with its
// output. metadata.returnCmdOutput "true" puts the standard output in a 200's body.
func (r *Runner) blocking(ctx context.Context, p Payload, typ, line string, argv []string) Response {
	if !r.Allow.Allows(line) {
		r.Metrics.Commands.WithLabelValues(typ, "refused").Inc()
		return Response{http.StatusForbidden, refusal(line, r.Allow)}
	}
	if r.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.Timeout)
		defer cancel()
	}
	log := r.logFor(p)
	log.Info("command started", "type", typ, "command", line)
	logOutput, _ := strconv.ParseBool(p.Metadata["logCmdOutput"])
	out, err := commands.Run(ctx, argv)
	r.finished(log, typ, line, out, err, logOutput)
	if err != nil {
		return Response{http.StatusInternalServerError, fmt.Sprintf("%v\n%s", err, out.Combined)}
	}
	if ret, _ := strconv.ParseBool(p.Metadata["returnCmdOutput"]); ret {
		return Response{http.StatusOK, string(out.Stdout)}
	}
	return Response{http.StatusOK, "OK"}
}

func (r *Runner) finished(log logr.Logger, typ, line string, out commands.Output, err error, logOutput bool) {
	if err != nil {
		r.Metrics.Commands.WithLabelValues(typ, "failed").Inc()
		log.Error(err, "command failed", "type", typ, "command", line, "output", string(out.Combined))
		return
	}
	r.Metrics.Commands.WithLabelValues(typ, "ok").Inc()
	if logOutput {
		log.Info("command succeeded", "type", typ, "command", line, "output", string(out.Combined))
		return
	}
	log.Info("command succeeded", "type", typ, "command", line)
}

func (r *Runner) logFor(p Payload) logr.Logger {
	return r.Log.WithValues("canary", p.Name, "namespace", p.Namespace)
}

// refusal explains why a command does not run, and how to allow it.
func refusal(line string, allow *commands.AllowList) string {
	return fmt.Sprintf("command %q refused: %s", line, allowHint(allow))
}

func allowHint(allow *commands.AllowList) string {
	if allow.Len() == 0 {
		return "the load tester runs no commands unless it is started with -allow-command=<regexp> " +
			"(matched against the whole command); hey command lines need no allow-list"
	}
	return fmt.Sprintf("it matches none of the %d -allow-command patterns (each matched against the whole command)", allow.Len())
}
