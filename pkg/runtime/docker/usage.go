package docker

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/openfaas/faas-provider/types"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
)

// Usage reports the CPU and memory used by a function's running replicas,
// for `GET /system/function/NAME?usage=1` (what faas-cli describe shows).
type Usage struct {
	r *Runtime

	mu   sync.Mutex
	last map[string]map[string]engine.Stats // function key → container ID → previous sample
}

func newUsage(r *Runtime) *Usage {
	return &Usage{r: r, last: map[string]map[string]engine.Stats{}}
}

// Usage implements runtime.UsageReader (see Usage.Function).
func (r *Runtime) Usage(ctx context.Context, key string) (types.FunctionUsage, error) {
	return r.usage.Function(ctx, key)
}

// Function sums usage over the running replicas of key. CPU is in
// millicores averaged since the previous measurement of each replica (since
// the replica started, on the first one), as OpenFaaS providers report it;
// memory is in bytes.
func (u *Usage) Function(ctx context.Context, key string) (types.FunctionUsage, error) {
	ns, name, err := faas.SplitKey(key)
	if err != nil {
		return types.FunctionUsage{}, err
	}
	list, err := u.r.eng.ListContainers(ctx, u.r.keyLabels(ns, name))
	if err != nil {
		return types.FunctionUsage{}, fmt.Errorf("usage of %s: %w", key, err)
	}
	var out types.FunctionUsage
	u.mu.Lock()
	prev := u.last[key]
	u.mu.Unlock()
	// Only replicas sampled now are kept, so the map never outgrows the
	// function's running replicas.
	now := make(map[string]engine.Stats, len(list))
	for _, ct := range list {
		if ct.State != engine.StateRunning {
			continue
		}
		st, err := u.r.eng.ContainerStats(ctx, ct.ID)
		if errors.Is(err, engine.ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return types.FunctionUsage{}, fmt.Errorf("usage of %s: %w", key, err)
		}
		now[ct.ID] = st
		out.TotalMemoryBytes += float64(st.Memory)
		p, ok := prev[ct.ID]
		if !ok {
			p = engine.Stats{Read: ct.Created}
		}
		out.CPU += millicores(p, st)
	}
	u.mu.Lock()
	u.last[key] = now
	u.mu.Unlock()
	return out, nil
}

// millicores is the CPU used between two samples, in thousandths of a CPU.
func millicores(prev, cur engine.Stats) float64 {
	wall := cur.Read.Sub(prev.Read)
	cpu := cur.CPUTotal - prev.CPUTotal
	if wall <= 0 || cpu < 0 {
		return 0
	}
	return float64(cpu) / float64(wall) * 1000
}
