package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"

	"github.com/dockerfaasd/dockerfaasd/pkg/docker"
)

// cold measures deploy → first 200 through dockerfaasd against the Docker
// floor: network create, container create+start, first 200 from the
// container itself. Daemon and floor runs alternate, so background load
// hits both alike.
func (r *runner) cold(ctx context.Context) error {
	var floor, floorNet, viaDaemon []time.Duration
	for i := range r.s.ColdRuns {
		f, fn, err := r.coldFloorOnce(ctx, i)
		if err != nil {
			return err
		}
		floor, floorNet = append(floor, f), append(floorNet, fn)
		d, err := r.coldDaemonOnce(ctx, i)
		if err != nil {
			return err
		}
		viaDaemon = append(viaDaemon, d)
		logf("cold start %d: floor %s (+network %s), dockerfaasd %s", i+1, f, fn, d)
	}
	r.coldFloor, r.coldFloorNet, r.coldDaemon = median(floor), median(floorNet), median(viaDaemon)

	var b strings.Builder
	fmt.Fprintf(&b, "Median of %d runs each, alternating; polls every 5 ms (see Method).\n\n", r.s.ColdRuns)
	b.WriteString("| what | median | runs |\n|---|---:|---|\n")
	fmt.Fprintf(&b, "| Docker floor: container create+start → first 200 | %s | %s |\n", fmtDur(r.coldFloor), fmtDurs(floor))
	fmt.Fprintf(&b, "| Docker floor with its own network: network create + the above | %s | %s |\n", fmtDur(r.coldFloorNet), fmtDurs(floorNet))
	fmt.Fprintf(&b, "| dockerfaasd: deploy (POST) → first 200 through /function/ | %s | %s |\n", fmtDur(r.coldDaemon), fmtDurs(viaDaemon))
	withNet := ratio(r.coldDaemon.Seconds(), r.coldFloorNet.Seconds())
	fmt.Fprintf(&b, "\n| ratio | value | target |\n|---|---:|---|\n")
	fmt.Fprintf(&b, "| dockerfaasd / floor with network (the same work) | %s | ≤ 1.10%s |\n", fmtRatio(withNet), verdict(withNet <= 1.1))
	fmt.Fprintf(&b, "| dockerfaasd / floor without network | %s | — |\n", fmtRatio(ratio(r.coldDaemon.Seconds(), r.coldFloor.Seconds())))
	r.rep.add("cold", b.String())
	return nil
}

// coldFloorOnce returns the floor without and with network creation.
func (r *runner) coldFloorOnce(ctx context.Context, i int) (time.Duration, time.Duration, error) {
	name := fmt.Sprintf("benchfloor-%s-cold%d", r.id, i)
	t0 := time.Now()
	netID, err := r.createNetwork(ctx, name)
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = removeNetwork(context.WithoutCancel(ctx), r.docker, netID) }()
	t1 := time.Now()
	id, ip, err := r.runFloor(ctx, name, name)
	if id != "" {
		defer func() { _ = removeContainer(context.WithoutCancel(ctx), r.docker, id) }()
	}
	if err != nil {
		return 0, 0, err
	}
	at, err := firstOK(ctx, "http://"+ip+":8080/", "", nil, 5*time.Millisecond, 30*time.Second)
	if err != nil {
		return 0, 0, err
	}
	return at.Sub(t1), at.Sub(t0), nil
}

// coldDaemonOnce deploys a new function, waits for its first 200 through
// the daemon, then deletes it and waits until its network is gone.
func (r *runner) coldDaemonOnce(ctx context.Context, i int) (time.Duration, error) {
	name := fmt.Sprintf("cold%d", i)
	t0 := time.Now()
	if err := r.d.deploy(ctx, name, r.image); err != nil {
		return 0, err
	}
	at, err := firstOK(ctx, r.d.base+"/function/"+name, r.d.authHeader(), nil, 5*time.Millisecond, 60*time.Second)
	if err != nil {
		return 0, err
	}
	return at.Sub(t0), r.removeFunction(ctx, name)
}

// removeFunction deletes a function and waits (up to 60 s) until the
// daemon removed its containers and network.
func (r *runner) removeFunction(ctx context.Context, name string) error {
	if err := r.d.remove(ctx, name); err != nil {
		return err
	}
	f := filters.NewArgs(filters.Arg("label", docker.LabelInstance+"="+r.id), filters.Arg("label", docker.LabelFunction+"="+name))
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		cs, err := r.functionContainers(ctx, name)
		if err != nil {
			return err
		}
		nws, err := r.docker.NetworkList(ctx, network.ListOptions{Filters: f})
		if err != nil {
			return err
		}
		if len(cs) == 0 && len(nws) == 0 {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("function %s: containers or network still there 60s after the delete", name)
}

// heal measures (1) a replica force-removed behind the daemon's back →
// the replacement serving through the daemon, and (2) scaling 1 → 10
// replicas → availableReplicas = 10, against the cold-start floor and
// against 9 floor containers started at once.
func (r *runner) heal(ctx context.Context) error {
	if r.coldFloor == 0 {
		return errors.New("needs the cold section's floor (do not skip cold)")
	}
	const fn = "heal"
	if err := r.d.deploy(ctx, fn, r.image); err != nil {
		return err
	}
	invoke := r.d.base + "/function/" + fn
	if _, err := firstOK(ctx, invoke, r.d.authHeader(), nil, 10*time.Millisecond, 60*time.Second); err != nil {
		return err
	}
	var heals, outs, floors9 []time.Duration
	for i := range r.s.HealRuns {
		if err := r.waitReplicas(ctx, fn, 1, 60*time.Second); err != nil {
			return err
		}
		cs, err := r.functionContainers(ctx, fn)
		if err != nil {
			return err
		}
		if len(cs) != 1 {
			return fmt.Errorf("want 1 container of %s, found %d", fn, len(cs))
		}
		old := cs[0].ID[:12] // fn-hostname answers with its hostname, the short ID
		if err := removeContainer(ctx, r.docker, cs[0].ID); err != nil {
			return err
		}
		t0 := time.Now()
		at, err := firstOK(ctx, invoke, r.d.authHeader(), func(b []byte) bool { return string(b) != old },
			5*time.Millisecond, 60*time.Second)
		if err != nil {
			return err
		}
		heals = append(heals, at.Sub(t0))

		if err := r.waitReplicas(ctx, fn, 1, 60*time.Second); err != nil {
			return err
		}
		t0 = time.Now()
		if err := r.d.scaleTo(ctx, fn, 10); err != nil {
			return err
		}
		if err := r.waitAvailable(ctx, fn, 10, 120*time.Second); err != nil {
			return err
		}
		outs = append(outs, time.Since(t0))
		if err := r.d.scaleTo(ctx, fn, 1); err != nil {
			return err
		}
		f9, err := r.floorParallel(ctx, i, 9)
		if err != nil {
			return err
		}
		floors9 = append(floors9, f9)
		logf("heal %d: %s; scale-out 1→10: %s; floor for 9 at once: %s", i+1, heals[i], outs[i], f9)
	}
	h, o, f9 := median(heals), median(outs), median(floors9)
	var b strings.Builder
	fmt.Fprintf(&b, "Median of %d runs. Heal: `docker rm -f` of the only replica → first 200 through the daemon from its replacement "+
		"(polls every 5 ms). Scale-out: `POST /system/scale-function` 1 → 10 → `availableReplicas` = 10 (polled every 10 ms).\n\n", r.s.HealRuns)
	b.WriteString("| what | median | runs |\n|---|---:|---|\n")
	fmt.Fprintf(&b, "| heal | %s | %s |\n", fmtDur(h), fmtDurs(heals))
	fmt.Fprintf(&b, "| scale-out 1 → 10 | %s | %s |\n", fmtDur(o), fmtDurs(outs))
	fmt.Fprintf(&b, "| Docker floor: 9 containers created and started at once → all answer 200 | %s | %s |\n", fmtDur(f9), fmtDurs(floors9))
	b.WriteString("\n| ratio | value |\n|---|---:|\n")
	fmt.Fprintf(&b, "| heal / cold-start floor (one container) | %s |\n", fmtRatio(ratio(h.Seconds(), r.coldFloor.Seconds())))
	fmt.Fprintf(&b, "| scale-out / cold-start floor (one container) | %s |\n", fmtRatio(ratio(o.Seconds(), r.coldFloor.Seconds())))
	fmt.Fprintf(&b, "| scale-out / floor for 9 at once | %s |\n", fmtRatio(ratio(o.Seconds(), f9.Seconds())))
	r.rep.add("heal", b.String())
	return r.removeFunction(ctx, fn)
}

// floorParallel creates and starts n floor containers at once on the
// driver's network and returns the time until all of them answered 200.
func (r *runner) floorParallel(ctx context.Context, run, n int) (time.Duration, error) {
	if err := r.ensureFloorContainer(ctx); err != nil {
		return 0, err
	}
	t0 := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var last time.Time
	var errs []error
	var ids []string
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, ip, err := r.runFloor(ctx, fmt.Sprintf("%s-par%d-%d", r.floorNet, run, i), r.floorNet)
			var at time.Time
			if err == nil {
				at, err = firstOK(ctx, "http://"+ip+":8080/", "", nil, 5*time.Millisecond, 60*time.Second)
			}
			mu.Lock()
			defer mu.Unlock()
			if id != "" {
				ids = append(ids, id)
			}
			if err != nil {
				errs = append(errs, err)
			}
			if at.After(last) {
				last = at
			}
		}()
	}
	wg.Wait()
	for _, id := range ids {
		_ = removeContainer(context.WithoutCancel(ctx), r.docker, id)
	}
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	return last.Sub(t0), nil
}

// waitAvailable polls the function every 10 ms until availableReplicas = n.
func (r *runner) waitAvailable(ctx context.Context, name string, n uint64, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last uint64
	for time.Now().Before(deadline) {
		st, err := r.d.function(ctx, name)
		if err != nil {
			return err
		}
		if last = st.AvailableReplicas; last == n {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s: availableReplicas %d, want %d after %s", name, last, n, limit)
}

// waitReplicas waits until the function has exactly n containers, all
// running, and n available replicas: a settled state to measure from.
func (r *runner) waitReplicas(ctx context.Context, name string, n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		cs, err := r.functionContainers(ctx, name)
		if err != nil {
			return err
		}
		running := 0
		for _, c := range cs {
			if c.State == "running" {
				running++
			}
		}
		if len(cs) == n && running == n {
			if st, err := r.d.function(ctx, name); err == nil && st.AvailableReplicas == uint64(n) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s: not settled at %d replicas after %s", name, n, limit)
}
