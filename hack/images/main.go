// Command images builds Herald's images (the manager and the load tester) without Docker and
// writes each as an OCI image layout under -out; with -registry it also pushes them there as
// <registry>/<name>:<tag>. Run by `make images`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/herald-rollouts/herald/internal/images"
)

func main() {
	var (
		out      = flag.String("out", "bin/images", "Directory of the OCI layouts, one per image.")
		registry = flag.String("registry", "", "Push the images to this repository prefix (e.g. ghcr.io/herald-rollouts); empty: do not push.")
		version  = flag.String("version", "", "Version (a tag such as v1.2.3, or a git describe); the image tag is it without the leading v.")
		revision = flag.String("revision", "", "Source commit.")
		source   = flag.String("source", "https://github.com/herald-rollouts/herald", "Source repository URL.")
		created  = flag.String("created", "", "Creation time as Unix seconds (e.g. the commit time, for reproducible images); empty: now.")
		only     = flag.String("only", "", "Comma-separated images to build (default: all).")
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *out, *registry, *version, *revision, *source, *created, *only); err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out, registry, version, revision, source, created, only string) error {
	tag, err := images.Tag(version)
	if err != nil {
		return err
	}
	when := time.Now().UTC().Truncate(time.Second)
	if created != "" {
		secs, err := strconv.ParseInt(created, 10, 64)
		if err != nil {
			return fmt.Errorf("-created %q: not Unix seconds", created)
		}
		when = time.Unix(secs, 0).UTC()
	}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	opts := images.Options{Root: root, Version: version, Revision: revision, Source: source, Created: when, Log: os.Stdout}
	var errs []error
	for _, b := range images.Binaries {
		if only != "" && !contains(strings.Split(only, ","), b.Name) {
			continue
		}
		start := time.Now()
		idx, err := images.Build(ctx, opts, b)
		if err != nil {
			return err
		}
		dir := filepath.Join(out, b.Name)
		if err := images.WriteLayout(dir, tag, idx); err != nil {
			return fmt.Errorf("writing %s: %w", dir, err)
		}
		size, err := images.Size(idx)
		if err != nil {
			return err
		}
		digest, err := idx.Digest()
		if err != nil {
			return err
		}
		fmt.Printf("%s:%s %s, %.1f MiB compressed (all platforms), in %s: %s\n",
			b.Name, tag, digest, float64(size)/(1<<20), time.Since(start).Round(100*time.Millisecond), dir)
		if registry == "" {
			continue
		}
		ref, err := images.Push(ctx, registry, b.Name, tag, idx)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Printf("pushed %s@%s\n", ref, digest)
	}
	return errors.Join(errs...)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if strings.TrimSpace(v) == s {
			return true
		}
	}
	return false
}
