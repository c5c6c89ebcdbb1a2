package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/openfaas/faas-provider/types"

	"github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// statsReader is what Usage needs from Docker.
type statsReader interface {
	ListContainers(ctx context.Context, labels map[string]string) ([]docker.Container, error)
	ContainerStats(ctx context.Context, id string) (docker.Stats, error)
}

// Usage reports the CPU and memory used by a function's running replicas,
// for `GET /system/function/NAME?usage=1` (what faas-cli describe shows).
type Usage struct {
	c      *Controller
	engine statsReader

	mu   sync.Mutex
	last map[string]map[string]docker.Stats // function key → container ID → previous sample
}

// Usage returns the controller's usage service.
func (c *Controller) Usage() *Usage {
	sr, _ := c.engine.(statsReader)
	return &Usage{c: c, engine: sr, last: map[string]map[string]docker.Stats{}}
}

// Function sums usage over the running replicas of key. CPU is in
// millicores averaged since the previous measurement of each replica (since
// the replica started, on the first one), as OpenFaaS providers report it;
// memory is in bytes.
func (u *Usage) Function(ctx context.Context, key string) (types.FunctionUsage, error) {
	if u.engine == nil {
		return types.FunctionUsage{}, errors.New("usage: the docker engine cannot report stats")
	}
	ns, name, err := store.SplitKey(key)
	if err != nil {
		return types.FunctionUsage{}, err
	}
	list, err := u.engine.ListContainers(ctx, u.c.keyLabels(ns, name))
	if err != nil {
		return types.FunctionUsage{}, fmt.Errorf("usage of %s: %w", key, err)
	}
	var out types.FunctionUsage
	u.mu.Lock()
	prev := u.last[key]
	u.mu.Unlock()
	// Only replicas sampled now are kept, so the map never outgrows the
	// function's running replicas.
	now := make(map[string]docker.Stats, len(list))
	for _, ct := range list {
		if ct.State != docker.StateRunning {
			continue
		}
		st, err := u.engine.ContainerStats(ctx, ct.ID)
		if errors.Is(err, docker.ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return types.FunctionUsage{}, fmt.Errorf("usage of %s: %w", key, err)
		}
		now[ct.ID] = st
		out.TotalMemoryBytes += float64(st.Memory)
		p, ok := prev[ct.ID]
		if !ok {
			p = docker.Stats{Read: ct.Created}
		}
		out.CPU += millicores(p, st)
	}
	u.mu.Lock()
	u.last[key] = now
	u.mu.Unlock()
	return out, nil
}

// millicores is the CPU used between two samples, in thousandths of a CPU.
func millicores(prev, cur docker.Stats) float64 {
	wall := cur.Read.Sub(prev.Read)
	cpu := cur.CPUTotal - prev.CPUTotal
	if wall <= 0 || cpu < 0 {
		return 0
	}
	return float64(cpu) / float64(wall) * 1000
}
