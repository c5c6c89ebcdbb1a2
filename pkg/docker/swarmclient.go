package docker

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
)

var _ SwarmEngine = (*Client)(nil)

// wrapSwarm maps the swarm API's errors onto the sentinels: the answers
// that have no fitting error class by their text, the rest through wrap.
func wrapSwarm(op string, err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "not a swarm manager"), strings.Contains(msg, "not part of a swarm"),
		strings.Contains(msg, "swarm is not initialized"):
		return fmt.Errorf("%s: %w: %v", op, ErrNotManager, err)
	// A write at a stale service version, and a secret a service still
	// uses, are answered as invalid parameters.
	case strings.Contains(msg, "update out of sequence"), strings.Contains(msg, "is in use by"):
		return fmt.Errorf("%s: %w: %v", op, ErrConflict, err)
	}
	return wrap(op, err)
}

// taskImageMissing reads a task's error message: the image could not be
// found locally nor pulled.
func taskImageMissing(msg string) bool {
	msg = strings.ToLower(msg)
	for _, s := range []string{"no such image", "pull access denied", "manifest unknown", "not found: manifest", "repository does not exist"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// SwarmInfo implements SwarmEngine.
func (d *Client) SwarmInfo(ctx context.Context) (SwarmInfo, error) {
	if err := d.ready(ctx); err != nil {
		return SwarmInfo{}, err
	}
	info, err := d.c.Info(ctx)
	if err != nil {
		return SwarmInfo{}, wrapSwarm("info", err)
	}
	s := info.Swarm
	return SwarmInfo{
		NodeID: s.NodeID, LocalNodeState: string(s.LocalNodeState), ControlAvailable: s.ControlAvailable,
		Nodes: s.Nodes, Managers: s.Managers,
	}, nil
}

// CreateService implements SwarmEngine.
func (d *Client) CreateService(ctx context.Context, spec swarm.ServiceSpec) (string, error) {
	if err := d.ready(ctx); err != nil {
		return "", err
	}
	resp, err := d.c.ServiceCreate(ctx, spec, swarm.ServiceCreateOptions{})
	if err != nil {
		return "", wrapSwarm("create service "+spec.Name, err)
	}
	return resp.ID, nil
}

// UpdateService implements SwarmEngine.
func (d *Client) UpdateService(ctx context.Context, id string, version uint64, spec swarm.ServiceSpec) error {
	if err := d.ready(ctx); err != nil {
		return err
	}
	_, err := d.c.ServiceUpdate(ctx, id, swarm.Version{Index: version}, spec, swarm.ServiceUpdateOptions{})
	return wrapSwarm("update service "+spec.Name, err)
}

// InspectService implements SwarmEngine.
func (d *Client) InspectService(ctx context.Context, id string) (swarm.Service, error) {
	if err := d.ready(ctx); err != nil {
		return swarm.Service{}, err
	}
	s, _, err := d.c.ServiceInspectWithRaw(ctx, id, swarm.ServiceInspectOptions{})
	return s, wrapSwarm("inspect service "+ShortID(id), err)
}

// ListServices implements SwarmEngine.
func (d *Client) ListServices(ctx context.Context, labels map[string]string) ([]swarm.Service, error) {
	if err := d.ready(ctx); err != nil {
		return nil, err
	}
	list, err := d.c.ServiceList(ctx, swarm.ServiceListOptions{Filters: labelFilter(labels)})
	return list, wrapSwarm("list services", err)
}

// RemoveService implements SwarmEngine.
func (d *Client) RemoveService(ctx context.Context, id string) error {
	if err := d.ready(ctx); err != nil {
		return err
	}
	return wrapSwarm("remove service "+ShortID(id), d.c.ServiceRemove(ctx, id))
}

// ListTasks implements SwarmEngine.
func (d *Client) ListTasks(ctx context.Context, serviceIDs ...string) ([]Task, error) {
	if err := d.ready(ctx); err != nil {
		return nil, err
	}
	f := filters.NewArgs()
	for _, id := range serviceIDs {
		f.Add("service", id)
	}
	list, err := d.c.TaskList(ctx, swarm.TaskListOptions{Filters: f})
	if err != nil {
		return nil, wrapSwarm("list tasks", err)
	}
	out := make([]Task, 0, len(list))
	for _, t := range list {
		out = append(out, taskOf(t))
	}
	return out, nil
}

// ServiceLogs implements SwarmEngine. It always asks for the details:
// without them the lines of different tasks cannot be told apart.
func (d *Client) ServiceLogs(ctx context.Context, id string, opts LogOptions) (io.ReadCloser, error) {
	if err := d.ready(ctx); err != nil {
		return nil, err
	}
	rc, err := d.c.ServiceLogs(ctx, id, opts.api(true))
	if err != nil {
		return nil, wrapSwarm("logs of service "+ShortID(id), err)
	}
	return rc, nil
}

// taskOf reduces a swarm task.
func taskOf(t swarm.Task) Task {
	out := Task{
		ID: t.ID, ServiceID: t.ServiceID, NodeID: t.NodeID, Slot: t.Slot,
		State: string(t.Status.State), DesiredState: string(t.DesiredState),
		Err: t.Status.Err, ImageMissing: taskImageMissing(t.Status.Err),
		Addrs: map[string]string{}, Created: t.CreatedAt, Updated: t.UpdatedAt,
	}
	if cs := t.Spec.ContainerSpec; cs != nil {
		out.Labels = cs.Labels
	}
	if c := t.Status.ContainerStatus; c != nil {
		out.ContainerID = c.ContainerID
	}
	for _, na := range t.NetworksAttachments {
		if len(na.Addresses) == 0 {
			continue
		}
		ip, _, err := net.ParseCIDR(na.Addresses[0])
		if err != nil {
			continue
		}
		out.Addrs[na.Network.Spec.Name] = ip.String()
	}
	return out
}

// CreateOverlayNetwork implements SwarmEngine.
func (d *Client) CreateOverlayNetwork(ctx context.Context, name string, labels map[string]string, encrypted bool) (string, error) {
	if err := d.ready(ctx); err != nil {
		return "", err
	}
	opts := network.CreateOptions{Driver: "overlay", Scope: "swarm", Attachable: true, Labels: labels}
	if encrypted {
		opts.Options = map[string]string{"encrypted": ""}
	}
	resp, err := d.c.NetworkCreate(ctx, name, opts)
	if err != nil {
		return "", wrapSwarm("create network "+name, err)
	}
	return resp.ID, nil
}

// InspectNetwork implements SwarmEngine: the containers listed are those
// attached on this node.
func (d *Client) InspectNetwork(ctx context.Context, id string) (Network, error) {
	if err := d.ready(ctx); err != nil {
		return Network{}, err
	}
	n, err := d.c.NetworkInspect(ctx, id, network.InspectOptions{})
	if err != nil {
		return Network{}, wrapSwarm("inspect network "+ShortID(id), err)
	}
	out := Network{ID: n.ID, Name: n.Name, Labels: n.Labels}
	for cid := range n.Containers {
		out.Containers = append(out.Containers, cid)
	}
	return out, nil
}

// CreateSecret implements SwarmEngine.
func (d *Client) CreateSecret(ctx context.Context, name string, labels map[string]string, value []byte) (string, error) {
	if err := d.ready(ctx); err != nil {
		return "", err
	}
	resp, err := d.c.SecretCreate(ctx, swarm.SecretSpec{Annotations: swarm.Annotations{Name: name, Labels: labels}, Data: value})
	if err != nil {
		return "", wrapSwarm("create secret "+name, err)
	}
	return resp.ID, nil
}

// ListSecrets implements SwarmEngine.
func (d *Client) ListSecrets(ctx context.Context, labels map[string]string) ([]SwarmSecret, error) {
	if err := d.ready(ctx); err != nil {
		return nil, err
	}
	list, err := d.c.SecretList(ctx, swarm.SecretListOptions{Filters: labelFilter(labels)})
	if err != nil {
		return nil, wrapSwarm("list secrets", err)
	}
	out := make([]SwarmSecret, 0, len(list))
	for _, s := range list {
		out = append(out, SwarmSecret{ID: s.ID, Name: s.Spec.Name, Labels: s.Spec.Labels, Created: s.CreatedAt})
	}
	return out, nil
}

// RemoveSecret implements SwarmEngine.
func (d *Client) RemoveSecret(ctx context.Context, id string) error {
	if err := d.ready(ctx); err != nil {
		return err
	}
	return wrapSwarm("remove secret "+ShortID(id), d.c.SecretRemove(ctx, id))
}

// ListNodes implements SwarmEngine.
func (d *Client) ListNodes(ctx context.Context) ([]Node, error) {
	if err := d.ready(ctx); err != nil {
		return nil, err
	}
	list, err := d.c.NodeList(ctx, swarm.NodeListOptions{})
	if err != nil {
		return nil, wrapSwarm("list nodes", err)
	}
	out := make([]Node, 0, len(list))
	for _, n := range list {
		out = append(out, Node{
			ID: n.ID, Hostname: n.Description.Hostname, Role: string(n.Spec.Role),
			Availability: string(n.Spec.Availability), State: string(n.Status.State),
			Addr: n.Status.Addr, Labels: n.Spec.Labels,
		})
	}
	return out, nil
}
