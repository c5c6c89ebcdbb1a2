package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
)

// Client adapts the official Docker client to Engine.
type Client struct {
	c *client.Client

	// The client negotiates its API version lazily on first use and that
	// write races with concurrent calls (moby/moby#43729), so it is done
	// once, under mu, before any call goes out.
	mu         sync.Mutex
	negotiated bool
}

var _ Engine = (*Client)(nil)

// New connects to the Docker Engine at host ("" = DOCKER_HOST or the local
// socket), negotiating the API version so older engines (e.g. Debian's 20.10)
// work.
func New(host string) (*Client, error) {
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	c, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return &Client{c: c}, nil
}

// ready negotiates the API version once; until it succeeds every call
// fails with the reason, as it would against an unreachable engine anyway.
func (d *Client) ready(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.negotiated {
		return nil
	}
	ping, err := d.c.Ping(ctx)
	if err != nil {
		return wrap("connect to docker", err)
	}
	d.c.NegotiateAPIVersionPing(ping)
	d.negotiated = true
	return nil
}

// Close releases the client's connections.
func (d *Client) Close() error { return d.c.Close() }

// wrap maps Docker's errors onto our sentinels: by error class, and for
// the few answers Docker gives without a fitting class, by their text. This
// is the only place that reads Docker's error text.
func wrap(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case cerrdefs.IsNotFound(err), strings.Contains(err.Error(), "is not connected"):
		return fmt.Errorf("%s: %w: %v", op, ErrNotFound, err)
	// Docker answers an unpause of a container that is not paused without
	// an error class (a pause of one that is not running is a conflict).
	case cerrdefs.IsConflict(err) || cerrdefs.IsAlreadyExists(err), strings.Contains(err.Error(), "already exists"),
		strings.Contains(err.Error(), "is not paused"):
		return fmt.Errorf("%s: %w: %v", op, ErrConflict, err)
	case strings.Contains(err.Error(), "non-overlapping IPv4 address pool"):
		return fmt.Errorf("%s: %w: %v", op, ErrAddressPoolsExhausted, err)
	default:
		return fmt.Errorf("%s: %w", op, err)
	}
}

func labelFilter(labels map[string]string) filters.Args {
	f := filters.NewArgs()
	for k, v := range labels {
		f.Add("label", k+"="+v)
	}
	return f
}

// Ping checks the engine answers.
func (d *Client) Ping(ctx context.Context) error {
	if err := d.ready(ctx); err != nil {
		return err
	}
	_, err := d.c.Ping(ctx)
	return wrap("ping", err)
}

// ListContainers implements Engine.
func (d *Client) ListContainers(ctx context.Context, labels map[string]string) ([]Container, error) {
	if err := d.ready(ctx); err != nil {
		return nil, err
	}
	list, err := d.c.ContainerList(ctx, container.ListOptions{All: true, Filters: labelFilter(labels)})
	if err != nil {
		return nil, wrap("list containers", err)
	}
	out := make([]Container, 0, len(list))
	for _, s := range list {
		c := Container{
			ID:       s.ID,
			Labels:   s.Labels,
			State:    string(s.State),
			Created:  time.Unix(s.Created, 0),
			Networks: map[string]string{},
		}
		if len(s.Names) > 0 {
			c.Name = strings.TrimPrefix(s.Names[0], "/")
		}
		if s.NetworkSettings != nil {
			for name, ep := range s.NetworkSettings.Networks {
				if ep != nil && ep.IPAddress != "" {
					c.Networks[name] = ep.IPAddress
				}
			}
		}
		out = append(out, c)
	}
	return out, nil
}

// CreateContainer implements Engine.
func (d *Client) CreateContainer(ctx context.Context, s ContainerSpec) (string, error) {
	if err := d.ready(ctx); err != nil {
		return "", err
	}
	cfg := &container.Config{
		Image:  s.Image,
		Env:    s.Env,
		Labels: s.Labels,
	}
	applyJobConfig(cfg, s)
	pids := s.PidsLimit
	host := &container.HostConfig{
		NetworkMode:    container.NetworkMode(s.Network),
		RestartPolicy:  container.RestartPolicy{Name: container.RestartPolicyDisabled},
		ReadonlyRootfs: s.ReadOnlyRootfs,
		Tmpfs:          s.Tmpfs,
		SecurityOpt:    []string{"no-new-privileges"},
		Resources: container.Resources{
			Memory:            s.Memory,
			MemoryReservation: s.MemoryReservation,
			NanoCPUs:          s.NanoCPUs,
			CPUShares:         s.CPUShares,
		},
	}
	if pids > 0 {
		host.Resources.PidsLimit = &pids
	}
	if s.NoLogs {
		host.LogConfig = container.LogConfig{Type: "none"}
	}
	if len(s.Volumes) > 0 {
		// Config.Volumes, not a Mounts entry: Docker 20.10 removes only
		// these anonymous volumes with the container (RemoveVolumes).
		cfg.Volumes = make(map[string]struct{}, len(s.Volumes))
		for _, v := range s.Volumes {
			cfg.Volumes[v] = struct{}{}
		}
	}
	for target, source := range s.Mounts {
		host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeBind, Source: source, Target: target, ReadOnly: true})
	}
	for _, v := range s.VolumeMounts {
		host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeVolume, Source: v.Volume, Target: v.Target, ReadOnly: v.ReadOnly})
	}
	netCfg := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{s.Network: {}}}
	resp, err := d.c.ContainerCreate(ctx, cfg, host, netCfg, nil, s.Name)
	if err != nil {
		return "", wrap("create container "+s.Name, err)
	}
	return resp.ID, nil
}

// StartContainer implements Engine.
func (d *Client) StartContainer(ctx context.Context, id string) error {
	if err := d.ready(ctx); err != nil {
		return err
	}
	return wrap("start container "+ShortID(id), d.c.ContainerStart(ctx, id, container.StartOptions{}))
}

// StopContainer implements Engine.
func (d *Client) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	if err := d.ready(ctx); err != nil {
		return err
	}
	secs := int(timeout / time.Second)
	return wrap("stop container "+ShortID(id), d.c.ContainerStop(ctx, id, container.StopOptions{Timeout: &secs}))
}

// RemoveContainer implements Engine.
func (d *Client) RemoveContainer(ctx context.Context, id string) error {
	if err := d.ready(ctx); err != nil {
		return err
	}
	return wrap("remove container "+ShortID(id), d.c.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true}))
}

// PauseContainer implements Engine.
func (d *Client) PauseContainer(ctx context.Context, id string) error {
	if err := d.ready(ctx); err != nil {
		return err
	}
	return wrap("pause container "+ShortID(id), d.c.ContainerPause(ctx, id))
}

// UnpauseContainer implements Engine.
func (d *Client) UnpauseContainer(ctx context.Context, id string) error {
	if err := d.ready(ctx); err != nil {
		return err
	}
	return wrap("unpause container "+ShortID(id), d.c.ContainerUnpause(ctx, id))
}

// ListNetworks implements Engine.
func (d *Client) ListNetworks(ctx context.Context, labels map[string]string) ([]Network, error) {
	if err := d.ready(ctx); err != nil {
		return nil, err
	}
	list, err := d.c.NetworkList(ctx, network.ListOptions{Filters: labelFilter(labels)})
	if err != nil {
		return nil, wrap("list networks", err)
	}
	out := make([]Network, 0, len(list))
	for _, n := range list {
		nw := Network{ID: n.ID, Name: n.Name, Labels: n.Labels}
		for id := range n.Containers {
			nw.Containers = append(nw.Containers, id)
		}
		out = append(out, nw)
	}
	return out, nil
}

// CreateNetwork implements Engine.
func (d *Client) CreateNetwork(ctx context.Context, name string, labels map[string]string) (string, error) {
	if err := d.ready(ctx); err != nil {
		return "", err
	}
	resp, err := d.c.NetworkCreate(ctx, name, network.CreateOptions{Driver: "bridge", Labels: labels})
	if err != nil {
		return "", wrap("create network "+name, err)
	}
	return resp.ID, nil
}

// RemoveNetwork implements Engine.
func (d *Client) RemoveNetwork(ctx context.Context, id string) error {
	if err := d.ready(ctx); err != nil {
		return err
	}
	err := d.c.NetworkRemove(ctx, id)
	if err != nil && strings.Contains(err.Error(), "active endpoints") {
		err = d.removeBusyNetwork(ctx, id, err)
	}
	return wrap("remove network "+ShortID(id), err)
}

// removeBusyNetwork handles a removal Docker refused for active endpoints
// (refused, the error it got). Endpoints whose container is gone are listed
// as "ep-<id>": they are disconnected by force and the removal tried again.
// A network with nothing listed at all has a miscounted endpoint
// (ErrNetworkLeaked). One with containers attached is in use: refused.
func (d *Client) removeBusyNetwork(ctx context.Context, id string, refused error) error {
	in, err := d.c.NetworkInspect(ctx, id, network.InspectOptions{})
	if err != nil {
		return refused
	}
	stale := 0
	for key, ep := range in.Containers {
		if !strings.HasPrefix(key, "ep-") {
			return refused // a container holds it
		}
		if d.c.NetworkDisconnect(ctx, id, ep.Name, true) == nil {
			stale++
		}
	}
	if stale > 0 {
		if err := d.c.NetworkRemove(ctx, id); err == nil || !strings.Contains(err.Error(), "active endpoints") {
			return err
		}
		if in, err = d.c.NetworkInspect(ctx, id, network.InspectOptions{}); err != nil || len(in.Containers) > 0 {
			return refused
		}
	}
	if len(in.Containers) > 0 {
		return refused
	}
	return fmt.Errorf("%w: %v", ErrNetworkLeaked, refused)
}

// ConnectNetwork implements Engine.
func (d *Client) ConnectNetwork(ctx context.Context, nw, id string) error {
	if err := d.ready(ctx); err != nil {
		return err
	}
	return wrap("connect "+ShortID(id)+" to "+nw, d.c.NetworkConnect(ctx, nw, id, nil))
}

// ImageExists implements Engine.
func (d *Client) ImageExists(ctx context.Context, ref string) (bool, error) {
	if err := d.ready(ctx); err != nil {
		return false, err
	}
	_, err := d.c.ImageInspect(ctx, ref)
	if cerrdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, wrap("inspect image "+ref, err)
	}
	return true, nil
}

// PullImage implements Engine. It reads the progress stream to the end,
// because the pull is only complete then.
func (d *Client) PullImage(ctx context.Context, ref string) error {
	if err := d.ready(ctx); err != nil {
		return err
	}
	rc, err := d.c.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return wrap("pull image "+ref, err)
	}
	defer rc.Close()
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return wrap("pull image "+ref, err)
	}
	return nil
}

// Events implements Engine.
func (d *Client) Events(ctx context.Context, types []string, labels map[string]string) (<-chan Event, <-chan error) {
	out := make(chan Event, 64)
	outErr := make(chan error, 1)
	if err := d.ready(ctx); err != nil {
		close(out)
		outErr <- err
		return out, outErr
	}
	f := labelFilter(labels)
	for _, t := range types {
		f.Add("type", t)
	}
	msgs, errs := d.c.Events(ctx, events.ListOptions{Filters: f})
	go func() {
		defer close(out)
		for {
			select {
			case m := <-msgs:
				ev := Event{Type: string(m.Type), Action: string(m.Action), ID: m.Actor.ID, Attributes: m.Actor.Attributes}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			case err := <-errs:
				if err == nil {
					err = io.EOF
				}
				outErr <- wrap("events", err)
				return
			case <-ctx.Done():
				outErr <- ctx.Err()
				return
			}
		}
	}()
	return out, outErr
}

// ShortID is the 12-digit form of a Docker object ID (a container, task,
// node, service), as `docker ps` shows it and as Docker sets a container's
// hostname.
func ShortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// ContainerStats takes one sample of a container's resource use without
// waiting for a second one (Docker's one-shot mode).
func (d *Client) ContainerStats(ctx context.Context, id string) (Stats, error) {
	if err := d.ready(ctx); err != nil {
		return Stats{}, err
	}
	r, err := d.c.ContainerStatsOneShot(ctx, id)
	if err != nil {
		return Stats{}, wrap("stats "+ShortID(id), err)
	}
	defer r.Body.Close()
	var v container.StatsResponse
	if err := json.NewDecoder(r.Body).Decode(&v); err != nil {
		return Stats{}, wrap("stats "+ShortID(id), err)
	}
	mem := v.MemoryStats.Usage
	// Page cache is reclaimable; docker stats leaves it out too (cgroup v2
	// calls it inactive_file, v1 total_inactive_file).
	for _, k := range []string{"inactive_file", "total_inactive_file"} {
		if c, ok := v.MemoryStats.Stats[k]; ok && c <= mem {
			mem -= c
			break
		}
	}
	return Stats{CPUTotal: time.Duration(v.CPUStats.CPUUsage.TotalUsage), Memory: mem, Read: v.Read}, nil
}
