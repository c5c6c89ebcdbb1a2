package docker

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/docker/docker/api/types/swarm"
)

// Labels the swarm runtime adds to what the Docker runtime's labels say.
const (
	// LabelGeneration is the desired-state generation a service was last
	// written at (service labels only: changing it never restarts tasks).
	LabelGeneration = "io.dockerfaas.generation"
	// LabelSecret names the function secret a swarm secret holds a
	// version of (swarm secrets are per namespace, like function secrets).
	LabelSecret = "io.dockerfaas.secret"
)

// ErrNotManager: the engine is not a manager of an active swarm, so it
// cannot run services.
var ErrNotManager = errors.New("docker engine is not a swarm manager")

// Swarm task states, as swarm reports them, in their order of progress.
const (
	TaskNew       = string(swarm.TaskStateNew)
	TaskPending   = string(swarm.TaskStatePending)
	TaskAssigned  = string(swarm.TaskStateAssigned)
	TaskAccepted  = string(swarm.TaskStateAccepted)
	TaskPreparing = string(swarm.TaskStatePreparing)
	TaskReady     = string(swarm.TaskStateReady)
	TaskStarting  = string(swarm.TaskStateStarting)
	TaskRunning   = string(swarm.TaskStateRunning)
	TaskComplete  = string(swarm.TaskStateComplete)
	TaskShutdown  = string(swarm.TaskStateShutdown)
	TaskFailed    = string(swarm.TaskStateFailed)
	TaskRejected  = string(swarm.TaskStateRejected)
	TaskRemove    = string(swarm.TaskStateRemove)
	TaskOrphaned  = string(swarm.TaskStateOrphaned)
)

// SwarmInfo is what an engine says of its swarm membership.
type SwarmInfo struct {
	NodeID string
	// LocalNodeState is "active" on a swarm node ("inactive", "pending",
	// "error", "locked" otherwise).
	LocalNodeState string
	// ControlAvailable: the node is a manager.
	ControlAvailable bool
	Nodes, Managers  int
}

// Task is one swarm task, reduced to what a runtime needs.
type Task struct {
	ID, ServiceID, NodeID string
	Slot                  int
	// State is the observed state, DesiredState what the orchestrator
	// wants of it (running, or shutdown/remove for a task it retires).
	State, DesiredState string
	// Err is the task's error message; ImageMissing is set when it says
	// the image could not be found or pulled (mapped here, the only place
	// that reads Docker's text).
	Err          string
	ImageMissing bool
	// Labels are the container labels of the task's spec (the spec hash
	// tells which spec the task runs).
	Labels map[string]string
	// Addrs maps network name to the task's IP on it (no prefix length).
	Addrs       map[string]string
	ContainerID string
	Created     time.Time
	Updated     time.Time
}

// Node is one swarm node.
type Node struct {
	ID, Hostname string
	Role         string // "manager" or "worker"
	Availability string // "active", "pause", "drain"
	State        string // "ready", "down", ...
	Addr         string
	Labels       map[string]string
}

// SwarmSecret is one swarm secret (its value is never readable back).
type SwarmSecret struct {
	ID, Name string
	Labels   map[string]string
	Created  time.Time
}

// SwarmEngine is the subset of the Docker Engine API the swarm runtime
// uses; every call goes to a manager. Errors are mapped onto the sentinels
// (ErrNotFound, ErrConflict, ErrNotManager).
type SwarmEngine interface {
	Ping(ctx context.Context) error
	SwarmInfo(ctx context.Context) (SwarmInfo, error)
	// CreateService creates a service; ErrConflict when the name exists.
	CreateService(ctx context.Context, spec swarm.ServiceSpec) (string, error)
	// UpdateService replaces a service's spec at version (the service's
	// Version.Index when it was read); ErrConflict when it changed since.
	UpdateService(ctx context.Context, id string, version uint64, spec swarm.ServiceSpec) error
	InspectService(ctx context.Context, id string) (swarm.Service, error)
	// ListServices lists services whose labels include all of labels.
	ListServices(ctx context.Context, labels map[string]string) ([]swarm.Service, error)
	RemoveService(ctx context.Context, id string) error
	// ListTasks lists the tasks of the given services (all tasks when
	// none is given), old ones of the task history included.
	ListTasks(ctx context.Context, serviceIDs ...string) ([]Task, error)
	// ServiceLogs returns the stdout and stderr of every task of a service
	// (old ones of the task history included), which the manager gathers
	// from every node: each message prefixed by its RFC 3339 timestamp and
	// Docker's details, which name its task and node (parse the stream
	// with ReadLogs, Details set; it is multiplexed unless the service has
	// a TTY). Since is inclusive and Tail applies to each task's log. The
	// messages of one task come in its order, those of different tasks
	// interleaved as the nodes deliver them. Without Follow the stream ends
	// after the history (with an error in the stream, ErrLogsIncomplete,
	// when a node could not be read or a task is not scheduled); with it,
	// it stays open and includes tasks that start later, until ctx is done.
	// A missing service is ErrNotFound.
	ServiceLogs(ctx context.Context, id string, opts LogOptions) (io.ReadCloser, error)
	// CreateOverlayNetwork creates an attachable overlay network,
	// encrypted (IPsec) when asked; ErrConflict when the name exists.
	CreateOverlayNetwork(ctx context.Context, name string, labels map[string]string, encrypted bool) (string, error)
	InspectNetwork(ctx context.Context, id string) (Network, error)
	ListNetworks(ctx context.Context, labels map[string]string) ([]Network, error)
	RemoveNetwork(ctx context.Context, id string) error
	// ConnectNetwork attaches a container of this node (the daemon's own)
	// to an attachable network; an attached one is ErrConflict.
	ConnectNetwork(ctx context.Context, network, container string) error
	DisconnectNetwork(ctx context.Context, network, container string) error
	// CreateSecret stores a secret in the swarm (encrypted in the Raft
	// log); ErrConflict when the name exists.
	CreateSecret(ctx context.Context, name string, labels map[string]string, value []byte) (string, error)
	ListSecrets(ctx context.Context, labels map[string]string) ([]SwarmSecret, error)
	// RemoveSecret removes a secret; one a service still uses is ErrConflict.
	RemoveSecret(ctx context.Context, id string) error
	ListNodes(ctx context.Context) ([]Node, error)
	// Events streams events of the given types (service, network, node,
	// container); labels apply to containers only.
	Events(ctx context.Context, types []string, labels map[string]string) (<-chan Event, <-chan error)

	// Swarm configs (the state journal): see swarmconfig.go.
	SwarmConfigs
}
