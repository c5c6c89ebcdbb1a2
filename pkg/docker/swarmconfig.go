package docker

import (
	"context"
	"time"

	"github.com/docker/docker/api/types/swarm"
)

// Swarm configs: small blobs kept in the swarm's Raft log, replicated to
// every manager. The swarm runtime keeps its state journal in them
// (pkg/runtime/swarm/journal.go), so a daemon started on another manager
// finds the state there.

// MaxConfigSize is the largest config data swarm accepts: swarmkit refuses
// data that is empty or not "less than 1024000 bytes" (1000 KiB, measured
// on Docker 20.10.24; moby documents the same MaxConfigSize).
const MaxConfigSize = 1000*1024 - 1

// SwarmConfig is one swarm config.
type SwarmConfig struct {
	ID, Name string
	// Version is the config's version in the swarm's store (it changes
	// when the labels do): UpdateConfigLabels writes only at it.
	Version uint64
	Labels  map[string]string
	// Data is the config's content. Docker's list carries it (unlike a
	// secret's, a config's content is readable back); nil when an engine
	// leaves it out, then InspectConfig reads it.
	Data    []byte
	Created time.Time
}

// SwarmConfigs is the part of SwarmEngine that handles swarm configs.
type SwarmConfigs interface {
	// CreateConfig stores data (1 to MaxConfigSize bytes) as a config;
	// ErrConflict when the name exists (names are unique in a swarm, and a
	// config is never changed: the journal relies on both).
	CreateConfig(ctx context.Context, name string, labels map[string]string, data []byte) (string, error)
	// ListConfigs lists the configs whose labels include all of labels,
	// by name, with their data when the engine's list carries it.
	ListConfigs(ctx context.Context, labels map[string]string) ([]SwarmConfig, error)
	// InspectConfig reads one config, by ID or full name; ErrNotFound.
	InspectConfig(ctx context.Context, ref string) (SwarmConfig, error)
	// UpdateConfigLabels replaces the labels of c (as read: its ID, Name
	// and Version), the only thing swarm lets change in a config, if it is
	// still at c.Version: a compare-and-swap in the Raft log. ErrConflict
	// when the config changed since it was read, ErrNotFound when it is gone.
	UpdateConfigLabels(ctx context.Context, c SwarmConfig, labels map[string]string) error
	// RemoveConfig removes a config; ErrNotFound when it is gone, and
	// ErrConflict when a service still uses it.
	RemoveConfig(ctx context.Context, id string) error
}

var _ SwarmConfigs = (*Client)(nil)

func configOf(c swarm.Config) SwarmConfig {
	return SwarmConfig{
		ID: c.ID, Name: c.Spec.Name, Version: c.Version.Index, Labels: c.Spec.Labels, Data: c.Spec.Data, Created: c.CreatedAt,
	}
}

// CreateConfig implements SwarmEngine. A name in use is answered 409
// "config NAME already exists" (AlreadyExists), which wrap maps to
// ErrConflict; data over the limit is a plain error (InvalidArgument).
func (d *Client) CreateConfig(ctx context.Context, name string, labels map[string]string, data []byte) (string, error) {
	if err := d.ready(ctx); err != nil {
		return "", err
	}
	resp, err := d.c.ConfigCreate(ctx, swarm.ConfigSpec{Annotations: swarm.Annotations{Name: name, Labels: labels}, Data: data})
	if err != nil {
		return "", wrapSwarm("create config "+name, err)
	}
	return resp.ID, nil
}

// ListConfigs implements SwarmEngine.
func (d *Client) ListConfigs(ctx context.Context, labels map[string]string) ([]SwarmConfig, error) {
	if err := d.ready(ctx); err != nil {
		return nil, err
	}
	list, err := d.c.ConfigList(ctx, swarm.ConfigListOptions{Filters: labelFilter(labels)})
	if err != nil {
		return nil, wrapSwarm("list configs", err)
	}
	out := make([]SwarmConfig, 0, len(list))
	for _, c := range list {
		out = append(out, configOf(c))
	}
	return out, nil
}

// InspectConfig implements SwarmEngine. Docker resolves a full name too
// (a missing one is 404 "config NAME not found").
func (d *Client) InspectConfig(ctx context.Context, ref string) (SwarmConfig, error) {
	if err := d.ready(ctx); err != nil {
		return SwarmConfig{}, err
	}
	c, _, err := d.c.ConfigInspectWithRaw(ctx, ref)
	if err != nil {
		return SwarmConfig{}, wrapSwarm("inspect config "+ref, err)
	}
	return configOf(c), nil
}

// UpdateConfigLabels implements SwarmEngine. Swarm wants the spec's name
// unchanged and accepts the data left out or unchanged; a stale version is
// answered "update out of sequence", which wrapSwarm maps to ErrConflict.
func (d *Client) UpdateConfigLabels(ctx context.Context, c SwarmConfig, labels map[string]string) error {
	if err := d.ready(ctx); err != nil {
		return err
	}
	spec := swarm.ConfigSpec{Annotations: swarm.Annotations{Name: c.Name, Labels: labels}, Data: c.Data}
	return wrapSwarm("update config "+c.Name, d.c.ConfigUpdate(ctx, c.ID, swarm.Version{Index: c.Version}, spec))
}

// RemoveConfig implements SwarmEngine; "is in use by" maps to ErrConflict.
func (d *Client) RemoveConfig(ctx context.Context, id string) error {
	if err := d.ready(ctx); err != nil {
		return err
	}
	return wrapSwarm("remove config "+ShortID(id), d.c.ConfigRemove(ctx, id))
}
