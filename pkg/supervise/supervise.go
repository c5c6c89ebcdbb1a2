// Package supervise runs dockerfaasd as a swarm service that survives the
// loss of its manager.
//
// Why a supervisor: the swarm runtime reaches function replicas at their
// task addresses on per-function overlay networks, so the daemon's
// container must join each of those networks as functions come and go. A
// swarm service's task cannot be attached to a network after it started
// (the engine refuses), and changing the service's networks would restart
// it. So the service's task is only a supervisor: it starts the real
// daemon (the "gateway") as a plain container on its own node, which can
// join networks, and stays with it: it forwards the gateway's output to
// its own (docker service logs), ends when the gateway ends (swarm then
// starts the task again), and stops the gateway when swarm stops the task.
// When the manager dies, swarm starts the task on another manager, whose
// supervisor starts a gateway there; that gateway rebuilds the state from
// the journal kept in the swarm (store.Journal, STATE_JOURNAL=swarm).
//
// What must be the same on every manager travels as swarm secrets the
// service mounts: the secrets key (values in the journal are sealed with
// it) and the basic auth password. The first supervisor creates them when
// they do not exist and adds them to its own service, which makes swarm
// restart it once with them mounted.
package supervise

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
)

// Labels Docker puts on a swarm task's container.
const (
	labelTaskID    = "com.docker.swarm.task.id"
	labelServiceID = "com.docker.swarm.service.id"
)

// Labels the supervisor puts on the gateway container.
const (
	labelInstance = "io.dockerfaas.instance"
	labelManaged  = "io.dockerfaas.managed"
	labelRole     = "io.dockerfaas.role"
	labelTask     = "io.dockerfaas.supervisor-task"
	roleGateway   = "gateway"
)

// Engine is the part of the Docker API the supervisor uses; the Docker
// client satisfies it.
type Engine interface {
	ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error)
	ContainerCreate(ctx context.Context, cfg *container.Config, host *container.HostConfig, net *network.NetworkingConfig, platform *ocispec.Platform, name string) (container.CreateResponse, error)
	ContainerStart(ctx context.Context, id string, opts container.StartOptions) error
	ContainerWait(ctx context.Context, id string, cond container.WaitCondition) (<-chan container.WaitResponse, <-chan error)
	ContainerLogs(ctx context.Context, id string, opts container.LogsOptions) (io.ReadCloser, error)
	ContainerStop(ctx context.Context, id string, opts container.StopOptions) error
	ContainerRemove(ctx context.Context, id string, opts container.RemoveOptions) error
	ContainerList(ctx context.Context, opts container.ListOptions) ([]container.Summary, error)
	CopyToContainer(ctx context.Context, id, path string, content io.Reader, opts container.CopyToContainerOptions) error
	ServiceInspectWithRaw(ctx context.Context, id string, opts swarm.ServiceInspectOptions) (swarm.Service, []byte, error)
	ServiceUpdate(ctx context.Context, id string, version swarm.Version, spec swarm.ServiceSpec, opts swarm.ServiceUpdateOptions) (swarm.ServiceUpdateResponse, error)
	SecretList(ctx context.Context, opts swarm.SecretListOptions) ([]swarm.Secret, error)
	SecretCreate(ctx context.Context, spec swarm.SecretSpec) (swarm.SecretCreateResponse, error)
}

// Config is what the supervisor needs from the daemon's settings.
type Config struct {
	// Instance names the gateway container, volume and secrets.
	Instance string
	// StateDir is where, in the gateway, the state file, key and password
	// live (a volume local to the node: a cache of the journal).
	StateDir string
	// Port is the gateway port, published on the node.
	Port int
	// KeyFile and PasswordFile are the names the gateway reads the
	// secrets key and the password from, inside StateDir.
	KeyFile, PasswordFile string
	// KeySize is the size of a generated secrets key.
	KeySize int
	// SecretsDir is where swarm mounts the service's secrets.
	SecretsDir string
	// StopTimeout bounds the gateway's graceful stop.
	StopTimeout time.Duration
	Log         logrus.FieldLogger
}

// Task is the swarm task this process runs in.
type Task struct {
	Container container.InspectResponse
	TaskID    string
	ServiceID string
}

// InSwarmTask tells whether this process runs in a swarm service's task
// of eng, and which: its container is found by the hostname (Docker's
// default hostname is the short container ID).
func InSwarmTask(ctx context.Context, eng Engine) (Task, bool) {
	if _, err := os.Stat("/.dockerenv"); err != nil {
		return Task{}, false
	}
	host, err := os.Hostname()
	if err != nil {
		return Task{}, false
	}
	c, err := eng.ContainerInspect(ctx, host)
	if err != nil || c.Config == nil {
		return Task{}, false
	}
	task, svc := c.Config.Labels[labelTaskID], c.Config.Labels[labelServiceID]
	if task == "" || svc == "" {
		return Task{}, false
	}
	return Task{Container: c, TaskID: task, ServiceID: svc}, true
}

// Run supervises one gateway until ctx ends (swarm stops the task: the
// gateway is stopped and removed) or the gateway exits (its status is
// returned as an error, so swarm starts the task again).
func Run(ctx context.Context, eng Engine, cfg Config, self Task) error {
	log := cfg.Log.WithFields(logrus.Fields{"task": self.TaskID, "instance": cfg.Instance})
	secrets, restart, err := ensureSecrets(ctx, eng, cfg, self)
	if err != nil {
		return err
	}
	if restart {
		log.Info("supervisor: the service now mounts the secrets key and password; swarm restarts this task with them")
		<-ctx.Done()
		return nil
	}
	id, err := startGateway(ctx, eng, cfg, self, secrets)
	if err != nil {
		return err
	}
	log = log.WithField("gateway", id[:12])
	log.Info("supervisor: gateway started on this node")

	waitC, waitErrC := eng.ContainerWait(context.WithoutCancel(ctx), id, container.WaitConditionNotRunning)
	go follow(context.WithoutCancel(ctx), eng, id, log)
	select {
	case <-ctx.Done():
		log.Info("supervisor: stopping the gateway")
		stopCtx, cancel := context.WithTimeout(context.Background(), cfg.StopTimeout+10*time.Second)
		defer cancel()
		secs := int(cfg.StopTimeout / time.Second)
		if err := eng.ContainerStop(stopCtx, id, container.StopOptions{Timeout: &secs}); err != nil && !cerrdefs.IsNotFound(err) {
			log.WithError(err).Warn("supervisor: stop the gateway")
		}
		removeGateway(stopCtx, eng, id, log)
		return nil
	case res := <-waitC:
		removeGateway(context.WithoutCancel(ctx), eng, id, log)
		if res.Error != nil {
			return fmt.Errorf("gateway ended: %s", res.Error.Message)
		}
		return fmt.Errorf("gateway exited with status %d", res.StatusCode)
	case err := <-waitErrC:
		removeGateway(context.WithoutCancel(ctx), eng, id, log)
		return fmt.Errorf("wait for the gateway: %w", err)
	}
}

// secretNames are the swarm secrets every gateway of the instance shares.
func secretNames(instance string) (key, password string) {
	return instance + "-secrets-key", instance + "-auth-password"
}

// sharedSecrets are the values the gateway needs from the swarm.
type sharedSecrets struct{ key, password []byte }

// ensureSecrets reads the shared secrets from the mounts; when the service
// does not mount them yet, it creates the missing ones and adds them to
// the service (restart: swarm replaces this task).
func ensureSecrets(ctx context.Context, eng Engine, cfg Config, self Task) (sharedSecrets, bool, error) {
	keyName, pwName := secretNames(cfg.Instance)
	key, kerr := os.ReadFile(filepath.Join(cfg.SecretsDir, keyName))
	pw, perr := os.ReadFile(filepath.Join(cfg.SecretsDir, pwName))
	if kerr == nil && perr == nil {
		if len(key) != cfg.KeySize {
			return sharedSecrets{}, false, fmt.Errorf("swarm secret %s holds %d bytes, want a %d-byte key", keyName, len(key), cfg.KeySize)
		}
		return sharedSecrets{key: key, password: bytes.TrimSpace(pw)}, false, nil
	}
	svc, _, err := eng.ServiceInspectWithRaw(ctx, self.ServiceID, swarm.ServiceInspectOptions{})
	if err != nil {
		return sharedSecrets{}, false, fmt.Errorf("inspect own service: %w", err)
	}
	spec := svc.Spec
	if spec.TaskTemplate.ContainerSpec == nil {
		return sharedSecrets{}, false, errors.New("own service has no container spec")
	}
	for _, s := range []struct {
		name string
		gen  func() ([]byte, error)
	}{
		{keyName, func() ([]byte, error) { return random(cfg.KeySize) }},
		{pwName, func() ([]byte, error) {
			b, err := random(24)
			return []byte(base64.RawURLEncoding.EncodeToString(b)), err
		}},
	} {
		id, err := ensureSecret(ctx, eng, cfg.Instance, s.name, s.gen)
		if err != nil {
			return sharedSecrets{}, false, err
		}
		mounted := false
		for _, ref := range spec.TaskTemplate.ContainerSpec.Secrets {
			if ref.SecretName == s.name {
				mounted = true
			}
		}
		if !mounted {
			spec.TaskTemplate.ContainerSpec.Secrets = append(spec.TaskTemplate.ContainerSpec.Secrets, &swarm.SecretReference{
				SecretID: id, SecretName: s.name,
				File: &swarm.SecretReferenceFileTarget{Name: s.name, UID: "0", GID: "0", Mode: 0o400},
			})
		}
	}
	if _, err := eng.ServiceUpdate(ctx, svc.ID, svc.Version, spec, swarm.ServiceUpdateOptions{}); err != nil {
		return sharedSecrets{}, false, fmt.Errorf("mount the shared secrets into own service: %w", err)
	}
	return sharedSecrets{}, true, nil
}

// ensureSecret returns the ID of the named swarm secret, created with a
// generated value when it does not exist (a value set by the operator
// beforehand, e.g. the password, is kept).
func ensureSecret(ctx context.Context, eng Engine, instance, name string, gen func() ([]byte, error)) (string, error) {
	list, err := eng.SecretList(ctx, swarm.SecretListOptions{Filters: filters.NewArgs(filters.Arg("name", name))})
	if err != nil {
		return "", fmt.Errorf("list swarm secrets: %w", err)
	}
	for _, s := range list {
		if s.Spec.Name == name {
			return s.ID, nil
		}
	}
	value, err := gen()
	if err != nil {
		return "", err
	}
	res, err := eng.SecretCreate(ctx, swarm.SecretSpec{
		Annotations: swarm.Annotations{Name: name, Labels: map[string]string{labelManaged: "true", labelInstance: instance}},
		Data:        value,
	})
	if err != nil {
		return "", fmt.Errorf("create swarm secret %s: %w", name, err)
	}
	return res.ID, nil
}

func random(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("generate a secret: %w", err)
	}
	return b, nil
}

// gatewayName is the gateway container's name on every node.
func gatewayName(instance string) string { return instance + "-gateway" }

// startGateway replaces a gateway left on this node (by a task that died
// with its supervisor) with a new one: this task's image and environment,
// the Docker socket it was given, a local state volume holding the shared
// key and password, the gateway port published on the node.
func startGateway(ctx context.Context, eng Engine, cfg Config, self Task, s sharedSecrets) (string, error) {
	left, err := eng.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", labelInstance+"="+cfg.Instance), filters.Arg("label", labelRole+"="+roleGateway))})
	if err != nil {
		return "", fmt.Errorf("list gateways: %w", err)
	}
	for _, c := range left {
		cfg.Log.WithField("container", c.ID[:12]).Info("supervisor: removing the gateway an earlier task left")
		if err := eng.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return "", fmt.Errorf("remove old gateway %s: %w", c.ID[:12], err)
		}
	}
	var mounts []mount.Mount
	for _, m := range self.Container.Mounts {
		// The Docker socket (and whatever else the operator bound in),
		// but not the task's own secrets: the gateway gets copies.
		if m.Type == mount.TypeBind && !strings.HasPrefix(m.Destination, cfg.SecretsDir) {
			mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: m.Source, Target: m.Destination, ReadOnly: !m.RW})
		}
	}
	mounts = append(mounts, mount.Mount{Type: mount.TypeVolume, Source: cfg.Instance + "-state", Target: cfg.StateDir})
	env := append(withoutEnv(self.Container.Config.Env, "HOSTNAME", "STATE_JOURNAL", "SELF_CONTAINER"),
		"STATE_JOURNAL=swarm", "SELF_CONTAINER=auto")
	port := nat.Port(fmt.Sprintf("%d/tcp", cfg.Port))
	created, err := eng.ContainerCreate(ctx,
		&container.Config{
			Image: self.Container.Image, Env: env, ExposedPorts: nat.PortSet{port: {}},
			Entrypoint: self.Container.Config.Entrypoint, Cmd: self.Container.Config.Cmd,
			Labels: map[string]string{labelManaged: "true", labelInstance: cfg.Instance, labelRole: roleGateway, labelTask: self.TaskID},
		},
		&container.HostConfig{
			Mounts:       mounts,
			PortBindings: nat.PortMap{port: {{HostPort: fmt.Sprint(cfg.Port)}}},
			// The supervisor owns its life: a node that comes back must
			// not start a second gateway on its own.
			RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
		}, nil, nil, gatewayName(cfg.Instance))
	if err != nil {
		return "", fmt.Errorf("create gateway container: %w", err)
	}
	if err := eng.CopyToContainer(ctx, created.ID, cfg.StateDir, stateFiles(cfg, s), container.CopyToContainerOptions{}); err != nil {
		removeGateway(ctx, eng, created.ID, cfg.Log)
		return "", fmt.Errorf("copy the shared key and password into the gateway: %w", err)
	}
	if err := eng.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		removeGateway(ctx, eng, created.ID, cfg.Log)
		return "", fmt.Errorf("start gateway container: %w", err)
	}
	return created.ID, nil
}

// stateFiles is a tar of the key and password files, mode 0600.
func stateFiles(cfg Config, s sharedSecrets) io.Reader {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		data []byte
	}{{cfg.KeyFile, s.key}, {cfg.PasswordFile, append(s.password, '\n')}} {
		_ = tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o600, Size: int64(len(f.data)), ModTime: time.Now()})
		_, _ = tw.Write(f.data)
	}
	_ = tw.Close()
	return &buf
}

// withoutEnv drops the named variables from env.
func withoutEnv(env []string, names ...string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		keep := true
		for _, n := range names {
			if name == n {
				keep = false
			}
		}
		if keep {
			out = append(out, kv)
		}
	}
	return out
}

// follow copies the gateway's output to the supervisor's, so `docker
// service logs` shows the daemon.
func follow(ctx context.Context, eng Engine, id string, log logrus.FieldLogger) {
	rc, err := eng.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: true})
	if err != nil {
		log.WithError(err).Warn("supervisor: follow the gateway's log")
		return
	}
	defer rc.Close()
	_, _ = stdcopy.StdCopy(os.Stdout, os.Stderr, rc)
}

func removeGateway(ctx context.Context, eng Engine, id string, log logrus.FieldLogger) {
	if err := eng.ContainerRemove(ctx, id, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		log.WithError(err).Warn("supervisor: remove the gateway")
	}
}

var _ Engine = (*client.Client)(nil)
