package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// watchCanaries follows the Canaries of ns ("" for all; only name when set) until ctx ends or
// a callback returns an error: onChange for every added, changed or deleted Canary, onTick
// every e.poll in between. A watch the API server closes (they time out) is opened again from
// where it stopped; after an error the Canaries are listed again.
func watchCanaries(ctx context.Context, e *env, cl client.WithWatch, ns, name string,
	onChange func(c *flaggerv1.Canary, deleted bool) error, onTick func() error) error {
	opts := []client.ListOption{client.InNamespace(ns)}
	if name != "" {
		opts = append(opts, client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("metadata.name", name)})
	}
	ticker := time.NewTicker(e.poll)
	defer ticker.Stop()
	resourceVersion := ""
	for {
		if resourceVersion == "" {
			var list flaggerv1.CanaryList
			if err := cl.List(ctx, &list, opts...); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("listing canaries: %w", err)
			}
			resourceVersion = list.ResourceVersion
		}
		from := &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: resourceVersion, AllowWatchBookmarks: true}}
		w, err := cl.Watch(ctx, &flaggerv1.CanaryList{}, append([]client.ListOption{from}, opts...)...)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("watching canaries: %w", err)
		}
		rv, err := drain(ctx, w, ticker.C, onChange, onTick)
		w.Stop()
		switch {
		case err != nil:
			return err
		case ctx.Err() != nil:
			return nil
		}
		resourceVersion = rv
	}
}

// drain handles the events of one watch; it returns the resourceVersion to go on from ("" to
// list again) when the watch ends.
func drain(ctx context.Context, w watch.Interface, tick <-chan time.Time,
	onChange func(c *flaggerv1.Canary, deleted bool) error, onTick func() error) (string, error) {
	rv := ""
	for {
		select {
		case <-ctx.Done():
			return rv, nil
		case <-tick:
			if err := onTick(); err != nil {
				return rv, err
			}
		case ev, ok := <-w.ResultChan():
			if !ok {
				return rv, nil
			}
			if ev.Type == watch.Error {
				return "", nil // e.g. 410 Gone: list again
			}
			c, isCanary := ev.Object.(*flaggerv1.Canary)
			if !isCanary {
				continue
			}
			rv = c.ResourceVersion
			if ev.Type == watch.Bookmark {
				continue
			}
			if err := onChange(c, ev.Type == watch.Deleted); err != nil {
				return rv, err
			}
		}
	}
}

// errStopWatch ends a watch without an error.
var errStopWatch = errors.New("stop watching")
