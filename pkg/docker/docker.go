// Package docker is the controller's narrow view of the Docker Engine: a few
// plain types, the labels that mark what dockerfaasd owns, an adapter over the
// official client, and (in package fake) an in-memory engine for tests.
package docker

import (
	"context"
	"errors"
	"io"
	"time"
)

// Labels put on everything dockerfaasd creates. Ownership is decided by
// label, never by name.
const (
	LabelManaged   = "io.dockerfaas.managed"
	LabelInstance  = "io.dockerfaas.instance"
	LabelFunction  = "io.dockerfaas.function"
	LabelNamespace = "io.dockerfaas.namespace"
	LabelSpecHash  = "io.dockerfaas.spec-hash"
	LabelSlot      = "io.dockerfaas.slot"
)

// Sentinel errors, so callers need not know Docker's error types.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	// ErrAddressPoolsExhausted: Docker has no address range left for
	// another network.
	ErrAddressPoolsExhausted = errors.New("docker has no address pool left for a new network")
	// ErrNetworkLeaked: Docker refuses to remove a network for "active
	// endpoints" while nothing is attached to it. Engine 20.10 miscounts a
	// network's endpoints when containers join and leave it side by side
	// (measured; its code suggests why: the count is updated through a
	// cache that shares the object being changed), and only an engine
	// restart recounts them.
	ErrNetworkLeaked = errors.New("docker counts an endpoint on this network that no container holds (an Engine 20.10 miscount after containers joined and left it side by side; it is recounted when the engine restarts)")
)

// Container states as Docker reports them.
const (
	StateCreated    = "created"
	StateRunning    = "running"
	StateRestarting = "restarting"
	StatePaused     = "paused"
	StateExited     = "exited"
	StateDead       = "dead"
	StateRemoving   = "removing"
)

// Container is what the controller needs to know about a container.
type Container struct {
	ID      string
	Name    string
	Labels  map[string]string
	State   string
	Created time.Time
	// Networks maps network name to the container's IP address on it.
	Networks map[string]string
}

// ContainerSpec describes a container to create.
type ContainerSpec struct {
	Name    string
	Image   string
	Env     []string
	Labels  map[string]string
	Network string
	// Memory is the hard limit in bytes (0 = none); MemoryReservation the soft one.
	Memory            int64
	MemoryReservation int64
	// NanoCPUs is the CPU limit in billionths of a CPU (0 = none); CPUShares the relative weight.
	NanoCPUs  int64
	CPUShares int64
	PidsLimit int64
	// ReadOnlyRootfs mounts / read-only; Tmpfs then keeps /tmp writable.
	ReadOnlyRootfs bool
	Tmpfs          map[string]string
	// Mounts are read-only bind mounts, target → source.
	Mounts map[string]string
	// VolumeMounts mount named volumes (a pre-started job's binary).
	VolumeMounts []VolumeMount
	// Volumes are the targets of anonymous volumes, removed with the
	// container. Files can be copied into one before the container starts
	// even when the root filesystem is read-only (see CopyToContainer).
	Volumes []string
	// Entrypoint, when not empty, replaces the image's entrypoint and its
	// cmd (a job's fprocess).
	Entrypoint []string
	// Stdin opens the container's stdin for one attached client, closed
	// when that client closes it (a job: see JobEngine.AttachContainer).
	Stdin bool
	// NoLogs turns Docker's log driver off: a job's output goes to the
	// attached client only, not to disk too.
	NoLogs bool
}

// Stats is one sample of a container's resource use.
type Stats struct {
	// CPUTotal is the CPU time used since the container started.
	CPUTotal time.Duration
	// Memory is the memory in use, page cache excluded (as `docker stats` shows it).
	Memory uint64
	// Read is when the sample was taken.
	Read time.Time
}

// Network is a Docker network.
type Network struct {
	ID     string
	Name   string
	Labels map[string]string
	// Containers holds the IDs of attached containers.
	Containers []string
}

// Event is a Docker event, reduced to what is needed to find the key it concerns.
type Event struct {
	Type   string // "container" or "network"
	Action string
	ID     string
	// Attributes are the actor attributes: labels for containers, name and
	// container for networks.
	Attributes map[string]string
}

// Engine is the subset of the Docker Engine API the Docker runtime uses.
type Engine interface {
	Ping(ctx context.Context) error
	// ListContainers lists containers in any state whose labels include all of labels.
	ListContainers(ctx context.Context, labels map[string]string) ([]Container, error)
	CreateContainer(ctx context.Context, spec ContainerSpec) (string, error)
	StartContainer(ctx context.Context, id string) error
	// StopContainer sends SIGTERM and kills after timeout.
	StopContainer(ctx context.Context, id string, timeout time.Duration) error
	// RemoveContainer force-removes a container; a missing one is ErrNotFound.
	// A paused container is removed too (Docker thaws it to kill it).
	RemoveContainer(ctx context.Context, id string) error
	// PauseContainer freezes a running container (docker pause: the
	// cgroup freezer): its processes get no CPU but keep their memory, its
	// address and its network attachments, so UnpauseContainer resumes it
	// in milliseconds where a new container takes a cold start. A container
	// that is not running or already paused is ErrConflict, as Docker
	// answers.
	PauseContainer(ctx context.Context, id string) error
	// UnpauseContainer thaws a paused container; one that is not paused is
	// ErrConflict.
	UnpauseContainer(ctx context.Context, id string) error
	ListNetworks(ctx context.Context, labels map[string]string) ([]Network, error)
	// CreateNetwork creates a bridge network; ErrConflict when the name exists.
	CreateNetwork(ctx context.Context, name string, labels map[string]string) (string, error)
	// RemoveNetwork removes a network; ErrNetworkLeaked when Docker refuses
	// for endpoints no container holds.
	RemoveNetwork(ctx context.Context, id string) error
	ConnectNetwork(ctx context.Context, network, container string) error
	// DisconnectNetwork detaches a container from a network; one not
	// attached is ErrNotFound.
	DisconnectNetwork(ctx context.Context, network, container string) error
	// CopyToContainer extracts a tar archive into dir, a directory that
	// exists in the container, keeping the modes and owners in the archive.
	// It works on a created container that has not started yet. Like
	// Docker, it refuses a dir on a read-only root filesystem unless dir is
	// in one of the container's volumes.
	CopyToContainer(ctx context.Context, id, dir string, archive io.Reader) error
	ImageExists(ctx context.Context, ref string) (bool, error)
	PullImage(ctx context.Context, ref string) error
	// Events streams events of the given types whose labels include labels
	// (labels apply to containers only). It returns once the stream is open
	// or failed, so a list made after it returns leaves no gap.
	Events(ctx context.Context, types []string, labels map[string]string) (<-chan Event, <-chan error)
	// ContainerLogs returns a container's multiplexed, timestamped log
	// stream (see Client.ContainerLogs).
	ContainerLogs(ctx context.Context, id string, opts LogOptions) (io.ReadCloser, error)
	// ContainerStats takes one sample of a container's resource use.
	ContainerStats(ctx context.Context, id string) (Stats, error)
}
