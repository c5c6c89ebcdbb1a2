// Package fake is an in-memory docker.Engine for controller unit tests. It
// keeps containers and networks in maps, returns the same sentinel errors as
// the real adapter (docker.ErrNotFound, docker.ErrConflict), emits events,
// and records every mutating call so tests can assert on actions.
package fake

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/docker"
)

// Engine is a fake docker.Engine. The zero value is not usable; call New.
type Engine struct {
	recorder   // its lock, Actions and Fail
	containers map[string]*docker.Container
	specs      map[string]docker.ContainerSpec
	networks   map[string]*docker.Network
	leaked     map[string]bool // network names miscounted (LeakNetwork)
	images     map[string]bool
	seq        int
	subs       []chan docker.Event
	stats      map[string]docker.Stats
	files      map[string]map[string]File // container ID → path → file (copy.go)
	// logs holds what each container wrote (see WriteLog); logWake wakes
	// the readers following them.
	logs    map[string][]logLine
	logWake logWaker
	// jobs holds the processes of job containers, program what they do
	// (job.go).
	jobs      map[string]*jobProc
	program   JobProgram
	holdWaits bool
	released  chan struct{} // closed when holdWaits is lifted
	// volumes and imageConfigs serve pre-started jobs (warm.go).
	volumes      map[string]*fakeVolume
	imageConfigs map[string]docker.ImageConfig
	// Now is the clock used for Created times.
	Now func() time.Time
}

var _ docker.Engine = (*Engine)(nil)

// New returns an empty fake engine that knows the given images.
func New(images ...string) *Engine {
	e := &Engine{
		containers: map[string]*docker.Container{},
		specs:      map[string]docker.ContainerSpec{},
		networks:   map[string]*docker.Network{},
		images:     map[string]bool{},
		Now:        time.Now,
	}
	for _, img := range images {
		e.images[img] = true
	}
	return e
}

// Spec returns the spec a container was created with.
func (e *Engine) Spec(id string) (docker.ContainerSpec, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.specs[id]
	return s, ok
}

// SetState changes a container's state behind the controller's back (a crash,
// a `docker stop`), emitting the matching event.
func (e *Engine) SetState(id, state string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.containers[id]; ok {
		c.State = state
		e.emit(docker.Event{Type: "container", Action: "die", ID: id, Attributes: c.Labels})
	}
}

// Disconnect removes a container from a network behind the controller's back.
func (e *Engine) Disconnect(id, network string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.containers[id]; ok {
		delete(c.Networks, network)
	}
}

// AddContainer inserts a container as if someone else created it.
func (e *Engine) AddContainer(c docker.Container) {
	e.mu.Lock()
	defer e.mu.Unlock()
	cp := c
	cp.Labels = copyMap(c.Labels)
	cp.Networks = copyMap(c.Networks)
	e.containers[c.ID] = &cp
}

func (e *Engine) emit(ev docker.Event) {
	for _, s := range e.subs {
		select {
		case s <- ev:
		default: // like Docker, a slow subscriber loses events
		}
	}
}

// Ping implements docker.Engine.
func (e *Engine) Ping(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.fail("ping", "")
}

// ListContainers implements docker.Engine.
func (e *Engine) ListContainers(ctx context.Context, labels map[string]string) ([]docker.Container, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.fail("list", ""); err != nil {
		return nil, err
	}
	var out []docker.Container
	for _, c := range e.containers {
		if matches(c.Labels, labels) {
			cp := *c
			cp.Labels = copyMap(c.Labels)
			cp.Networks = copyMap(c.Networks)
			out = append(out, cp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// CreateContainer implements docker.Engine.
func (e *Engine) CreateContainer(ctx context.Context, s docker.ContainerSpec) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.fail("create", s.Name); err != nil {
		return "", err
	}
	if !e.images[s.Image] {
		return "", fmt.Errorf("create %s: image %s: %w", s.Name, s.Image, docker.ErrNotFound)
	}
	if _, ok := e.networkByName(s.Network); !ok && s.Network != "none" {
		return "", fmt.Errorf("create %s: network %s: %w", s.Name, s.Network, docker.ErrNotFound)
	}
	for _, m := range s.VolumeMounts {
		if _, ok := e.volumes[m.Volume]; !ok {
			return "", fmt.Errorf("create %s: volume %s: %w", s.Name, m.Volume, docker.ErrNotFound)
		}
	}
	for _, c := range e.containers {
		if c.Name == s.Name {
			return "", fmt.Errorf("create %s: name in use: %w", s.Name, docker.ErrConflict)
		}
	}
	e.seq++
	id := fmt.Sprintf("%064x", e.seq)
	e.containers[id] = &docker.Container{
		ID: id, Name: s.Name, Labels: copyMap(s.Labels), State: docker.StateCreated,
		Created: e.Now(), Networks: map[string]string{},
	}
	e.specs[id] = s
	e.record("create %s", s.Name)
	return id, nil
}

// StartContainer implements docker.Engine. The container gets an address on
// its network from the documentation range 192.0.2.0/24; nothing dials it.
func (e *Engine) StartContainer(ctx context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.fail("start", id); err != nil {
		return err
	}
	c, ok := e.containers[id]
	if !ok {
		return fmt.Errorf("start %s: %w", id, docker.ErrNotFound)
	}
	c.State = docker.StateRunning
	c.Networks[e.specs[id].Network] = fmt.Sprintf("192.0.2.%d", e.seq%250+1)
	e.record("start %s", c.Name)
	e.emit(docker.Event{Type: "container", Action: "start", ID: id, Attributes: c.Labels})
	if e.specs[id].Stdin {
		e.startJobLocked(id, e.specs[id])
	}
	return nil
}

// StopContainer implements docker.Engine.
func (e *Engine) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.fail("stop", id); err != nil {
		return err
	}
	c, ok := e.containers[id]
	if !ok {
		return fmt.Errorf("stop %s: %w", id, docker.ErrNotFound)
	}
	c.State = docker.StateExited
	e.record("stop %s", c.Name)
	return nil
}

// RemoveContainer implements docker.Engine.
func (e *Engine) RemoveContainer(ctx context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.fail("remove", id); err != nil {
		return err
	}
	c, ok := e.containers[id]
	if !ok {
		return fmt.Errorf("remove %s: %w", id, docker.ErrNotFound)
	}
	e.stopJobLocked(id)
	delete(e.jobs, id)
	delete(e.containers, id)
	e.record("remove %s", c.Name)
	e.emit(docker.Event{Type: "container", Action: "destroy", ID: id, Attributes: c.Labels})
	return nil
}

// PauseContainer implements docker.Engine. Like Docker, it refuses a
// container that is not running, or already paused, with ErrConflict.
func (e *Engine) PauseContainer(ctx context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.fail("pause", id); err != nil {
		return err
	}
	c, ok := e.containers[id]
	if !ok {
		return fmt.Errorf("pause %s: %w", id, docker.ErrNotFound)
	}
	switch c.State {
	case docker.StateRunning:
	case docker.StatePaused:
		return fmt.Errorf("pause %s: container is already paused: %w", id, docker.ErrConflict)
	default:
		return fmt.Errorf("pause %s: container is not running: %w", id, docker.ErrConflict)
	}
	c.State = docker.StatePaused
	e.record("pause %s", c.Name)
	e.emit(docker.Event{Type: "container", Action: "pause", ID: id, Attributes: c.Labels})
	return nil
}

// UnpauseContainer implements docker.Engine. A container that is not
// paused is ErrConflict (Docker's answer, mapped by the real adapter).
func (e *Engine) UnpauseContainer(ctx context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.fail("unpause", id); err != nil {
		return err
	}
	c, ok := e.containers[id]
	if !ok {
		return fmt.Errorf("unpause %s: %w", id, docker.ErrNotFound)
	}
	if c.State != docker.StatePaused {
		return fmt.Errorf("unpause %s: container is not paused: %w", id, docker.ErrConflict)
	}
	c.State = docker.StateRunning
	e.record("unpause %s", c.Name)
	e.emit(docker.Event{Type: "container", Action: "unpause", ID: id, Attributes: c.Labels})
	return nil
}

// ListNetworks implements docker.Engine.
func (e *Engine) ListNetworks(ctx context.Context, labels map[string]string) ([]docker.Network, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.fail("list-networks", ""); err != nil {
		return nil, err
	}
	var out []docker.Network
	for _, n := range e.networks {
		if matches(n.Labels, labels) {
			cp := *n
			cp.Labels = copyMap(n.Labels)
			for id, c := range e.containers {
				if _, ok := c.Networks[n.Name]; ok {
					cp.Containers = append(cp.Containers, id)
				}
			}
			out = append(out, cp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (e *Engine) networkByName(name string) (*docker.Network, bool) {
	for _, n := range e.networks {
		if n.Name == name {
			return n, true
		}
	}
	return nil, false
}

// CreateNetwork implements docker.Engine.
func (e *Engine) CreateNetwork(ctx context.Context, name string, labels map[string]string) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.fail("create-network", name); err != nil {
		return "", err
	}
	if _, ok := e.networkByName(name); ok {
		return "", fmt.Errorf("create network %s: %w", name, docker.ErrConflict)
	}
	e.seq++
	id := fmt.Sprintf("net%061x", e.seq)
	e.networks[id] = &docker.Network{ID: id, Name: name, Labels: copyMap(labels)}
	e.record("create-network %s", name)
	return id, nil
}

// RemoveNetwork implements docker.Engine. Like Docker, it refuses while
// containers are attached.
func (e *Engine) RemoveNetwork(ctx context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.fail("remove-network", id); err != nil {
		return err
	}
	n, ok := e.networks[id]
	if !ok {
		if n, ok = e.networkByName(id); !ok {
			return fmt.Errorf("remove network %s: %w", id, docker.ErrNotFound)
		}
	}
	for _, c := range e.containers {
		if _, ok := c.Networks[n.Name]; ok {
			return fmt.Errorf("remove network %s: has active endpoints: %w", n.Name, docker.ErrConflict)
		}
	}
	if e.leaked[n.Name] {
		return fmt.Errorf("remove network %s: has active endpoints: %w", n.Name, docker.ErrNetworkLeaked)
	}
	delete(e.networks, n.ID)
	e.record("remove-network %s", n.Name)
	return nil
}

// LeakNetwork makes the engine count an endpoint on network name that no
// container holds, as Engine 20.10 does after containers joined and left
// it side by side: its removal fails with ErrNetworkLeaked until Recount.
func (e *Engine) LeakNetwork(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.leaked == nil {
		e.leaked = map[string]bool{}
	}
	e.leaked[name] = true
}

// Recount clears what LeakNetwork did, as an engine restart does.
func (e *Engine) Recount() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.leaked = nil
}

// RemoveNetworkBehindBack deletes a network as a user would, detaching
// containers from it.
func (e *Engine) RemoveNetworkBehindBack(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if n, ok := e.networkByName(name); ok {
		for _, c := range e.containers {
			delete(c.Networks, name)
		}
		delete(e.networks, n.ID)
	}
}

// ConnectNetwork implements docker.Engine.
func (e *Engine) ConnectNetwork(ctx context.Context, network, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.fail("connect", id); err != nil {
		return err
	}
	c, ok := e.containers[id]
	if !ok {
		return fmt.Errorf("connect %s: %w", id, docker.ErrNotFound)
	}
	if _, ok := e.networkByName(network); !ok {
		return fmt.Errorf("connect %s: network %s: %w", id, network, docker.ErrNotFound)
	}
	c.Networks[network] = "192.0.2.250"
	e.record("connect %s %s", c.Name, network)
	return nil
}

// ImageExists implements docker.Engine.
func (e *Engine) ImageExists(ctx context.Context, ref string) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.fail("image", ref); err != nil {
		return false, err
	}
	return e.images[ref], nil
}

// PullImage implements docker.Engine. Only images registered with AddImage
// after the fact can be "pulled"; others fail as an unreachable registry would.
func (e *Engine) PullImage(ctx context.Context, ref string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.record("pull %s", ref)
	if err := e.fail("pull", ref); err != nil {
		return err
	}
	return fmt.Errorf("pull %s: %w", ref, docker.ErrNotFound)
}

// AddImage makes ref present.
func (e *Engine) AddImage(ref string) {
	e.mu.Lock()
	e.images[ref] = true
	e.mu.Unlock()
}

// Events implements docker.Engine; label filtering is applied for containers.
func (e *Engine) Events(ctx context.Context, types []string, labels map[string]string) (<-chan docker.Event, <-chan error) {
	in := make(chan docker.Event, 256)
	out := make(chan docker.Event, 256)
	errc := make(chan error, 1)
	e.mu.Lock()
	e.subs = append(e.subs, in)
	e.mu.Unlock()
	go func() {
		defer close(out)
		for {
			select {
			case ev := <-in:
				if !contains(types, ev.Type) || (ev.Type == "container" && !matches(ev.Attributes, labels)) {
					continue
				}
				out <- ev
			case <-ctx.Done():
				errc <- ctx.Err()
				return
			}
		}
	}()
	return out, errc
}

// Names returns the names of containers in state (any state when "").
func (e *Engine) Names(state string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, c := range e.containers {
		if state == "" || c.State == state {
			out = append(out, c.Name)
		}
	}
	sort.Strings(out)
	return out
}

// NetworkNames returns the names of all networks.
func (e *Engine) NetworkNames() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, n := range e.networks {
		out = append(out, n.Name)
	}
	sort.Strings(out)
	return out
}

func matches(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// SetStats sets what ContainerStats reports for id.
func (e *Engine) SetStats(id string, st docker.Stats) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stats == nil {
		e.stats = map[string]docker.Stats{}
	}
	e.stats[id] = st
}

// ContainerStats returns what SetStats recorded (zero values otherwise).
func (e *Engine) ContainerStats(ctx context.Context, id string) (docker.Stats, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.fail("stats", id); err != nil {
		return docker.Stats{}, err
	}
	if _, ok := e.containers[id]; !ok {
		return docker.Stats{}, fmt.Errorf("stats %s: %w", id, docker.ErrNotFound)
	}
	return e.stats[id], nil
}
