package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/dockerfaasd/dockerfaasd/pkg/docker"
)

// healthyRun is how long a watch must have stayed connected for its backoff
// to start again from the beginning after the next failure.
const healthyRun = time.Minute

// watchDocker keeps one Docker event subscription open for as long as ctx
// lives. Each attempt subscribes first and then re-lists everything, so no
// change can fall between the list and the stream; events only enqueue keys.
func (c *Controller) watchDocker(ctx context.Context) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 200 * time.Millisecond
	b.MaxInterval = 10 * time.Second
	b.MaxElapsedTime = 0 // a daemon never gives up on Docker
	b.Reset()
	for ctx.Err() == nil {
		started := time.Now()
		err := c.watchOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > healthyRun {
			b.Reset()
		}
		d := b.NextBackOff()
		c.setStream("reconnecting", err)
		c.cfg.Log.WithError(err).WithField("retry_in", d.Round(time.Millisecond)).Warn("docker event stream lost")
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
	}
}

func (c *Controller) watchOnce(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := c.engine.Ping(ctx); err != nil {
		return fmt.Errorf("ping docker: %w", err)
	}
	// Containers are filtered by our labels; network events carry no labels,
	// so networks get their own stream, mapped to keys by name.
	cevs, cerrs := c.engine.Events(ctx, []string{"container"}, c.instanceLabels())
	nevs, nerrs := c.engine.Events(ctx, []string{"network"}, nil)
	if err := c.ResyncAll(ctx); err != nil {
		return err
	}
	c.setStream("connected", nil)
	c.cfg.Log.Info("watching docker events")
	for {
		select {
		case ev, ok := <-cevs:
			if !ok {
				return errors.New("container event stream closed")
			}
			if k := labelKey(ev.Attributes); k != "" {
				c.touch(k)
				c.queue.Nudge(k)
			}
		case ev, ok := <-nevs:
			if !ok {
				return errors.New("network event stream closed")
			}
			c.onNetworkEvent(ev)
		case err := <-cerrs:
			return fmt.Errorf("container events: %w", err)
		case err := <-nerrs:
			return fmt.Errorf("network events: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *Controller) onNetworkEvent(ev docker.Event) {
	c.mu.Lock()
	key := c.networks[ev.Attributes["name"]]
	c.mu.Unlock()
	if key != "" {
		c.touch(key)
		c.queue.Nudge(key)
	}
}

func (c *Controller) setStream(state string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.global.EventStream = state
	if state == "connected" {
		c.global.LastConnect = time.Now()
	}
	if err != nil {
		c.global.LastStreamError = err.Error()
	}
}
