package supervise

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
)

// fakeEngine records what the supervisor asks of Docker.
type fakeEngine struct {
	mu        sync.Mutex
	created   []container.Config
	hosts     []container.HostConfig
	names     []string
	copied    map[string][]byte // file name → content copied into the gateway
	removed   []string
	started   []string
	left      []container.Summary
	secrets   []swarm.Secret
	newSecret []swarm.SecretSpec
	service   swarm.Service
	updated   *swarm.ServiceSpec
	exit      chan container.WaitResponse
}

func (f *fakeEngine) ContainerInspect(context.Context, string) (container.InspectResponse, error) {
	return container.InspectResponse{}, errors.New("not used")
}

func (f *fakeEngine) ContainerCreate(_ context.Context, cfg *container.Config, host *container.HostConfig, _ *network.NetworkingConfig, _ *ocispec.Platform, name string) (container.CreateResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.created, f.hosts, f.names = append(f.created, *cfg), append(f.hosts, *host), append(f.names, name)
	return container.CreateResponse{ID: "gateway0123456789"}, nil
}

func (f *fakeEngine) ContainerStart(_ context.Context, id string, _ container.StartOptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.started = append(f.started, id)
	return nil
}

func (f *fakeEngine) ContainerWait(context.Context, string, container.WaitCondition) (<-chan container.WaitResponse, <-chan error) {
	return f.exit, make(chan error)
}

func (f *fakeEngine) ContainerLogs(context.Context, string, container.LogsOptions) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader("")), nil
}

func (f *fakeEngine) ContainerStop(context.Context, string, container.StopOptions) error { return nil }

func (f *fakeEngine) ContainerRemove(_ context.Context, id string, _ container.RemoveOptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, id)
	return nil
}

func (f *fakeEngine) ContainerList(context.Context, container.ListOptions) ([]container.Summary, error) {
	return f.left, nil
}

func (f *fakeEngine) CopyToContainer(_ context.Context, _, _ string, content io.Reader, _ container.CopyToContainerOptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.copied = map[string][]byte{}
	tr := tar.NewReader(content)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if h.Mode != 0o600 {
			return errors.New("a shared file is not mode 0600")
		}
		b, _ := io.ReadAll(tr)
		f.copied[h.Name] = b
	}
}

func (f *fakeEngine) ServiceInspectWithRaw(context.Context, string, swarm.ServiceInspectOptions) (swarm.Service, []byte, error) {
	return f.service, nil, nil
}

func (f *fakeEngine) ServiceUpdate(_ context.Context, _ string, _ swarm.Version, spec swarm.ServiceSpec, _ swarm.ServiceUpdateOptions) (swarm.ServiceUpdateResponse, error) {
	f.updated = &spec
	return swarm.ServiceUpdateResponse{}, nil
}

func (f *fakeEngine) SecretList(context.Context, swarm.SecretListOptions) ([]swarm.Secret, error) {
	return f.secrets, nil
}

func (f *fakeEngine) SecretCreate(_ context.Context, spec swarm.SecretSpec) (swarm.SecretCreateResponse, error) {
	f.newSecret = append(f.newSecret, spec)
	return swarm.SecretCreateResponse{ID: "id-" + spec.Name}, nil
}

func quiet() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func testConfig(secretsDir string) Config {
	return Config{Instance: "dfd", StateDir: "/var/lib/dockerfaasd", Port: 8080, KeyFile: "secrets.key",
		PasswordFile: "basic-auth-password", KeySize: 32, SecretsDir: secretsDir, StopTimeout: time.Second, Log: quiet()}
}

func selfTask() Task {
	return Task{TaskID: "task1", ServiceID: "svc1", Container: container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{Image: "sha256:img"},
		Config: &container.Config{
			Env:        []string{"RUNTIME=swarm", "HOSTNAME=abc", "INSTANCE=dfd", "STATE_JOURNAL=none"},
			Entrypoint: []string{"/dockerfaasd"},
		},
		Mounts: []container.MountPoint{
			{Type: mount.TypeBind, Source: "/var/run/docker.sock", Destination: "/var/run/docker.sock", RW: true},
			{Type: mount.TypeBind, Source: "/secrets/x", Destination: "/run/secrets/dfd-secrets-key"},
		},
	}}
}

// TestFirstStartCreatesAndMountsTheSharedSecrets: without the secrets
// mounted, the supervisor creates the missing ones (keeping one the
// operator made) and adds both to its service, then waits to be replaced.
func TestFirstStartCreatesAndMountsTheSharedSecrets(t *testing.T) {
	eng := &fakeEngine{
		secrets: []swarm.Secret{{ID: "pw1", Spec: swarm.SecretSpec{Annotations: swarm.Annotations{Name: "dfd-auth-password"}}}},
		service: swarm.Service{ID: "svc1", Spec: swarm.ServiceSpec{TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{}}}},
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Run returns once it asked for the restart
	if err := Run(ctx, eng, testConfig(t.TempDir()), selfTask()); err != nil {
		t.Fatal(err)
	}
	if len(eng.newSecret) != 1 || eng.newSecret[0].Name != "dfd-secrets-key" || len(eng.newSecret[0].Data) != 32 {
		t.Fatalf("created secrets %+v, want only a 32-byte dfd-secrets-key", eng.newSecret)
	}
	if eng.newSecret[0].Labels[labelInstance] != "dfd" {
		t.Errorf("created secret labels %v lack the instance", eng.newSecret[0].Labels)
	}
	if eng.updated == nil {
		t.Fatal("the service was not updated to mount the secrets")
	}
	var mounted []string
	for _, ref := range eng.updated.TaskTemplate.ContainerSpec.Secrets {
		mounted = append(mounted, ref.SecretName+"="+ref.SecretID)
	}
	slices.Sort(mounted)
	if want := []string{"dfd-auth-password=pw1", "dfd-secrets-key=id-dfd-secrets-key"}; !slices.Equal(mounted, want) {
		t.Errorf("mounted %v, want %v", mounted, want)
	}
	if len(eng.created) != 0 {
		t.Error("a gateway was started before the secrets were mounted")
	}
}

// TestGatewayRunsWithTheSharedState: with the secrets mounted, a gateway
// left by an earlier task is replaced by one with this task's image and
// environment (journal on), the Docker socket but not the task's secrets,
// a local state volume holding copies of the key and password, the port
// published and no restart policy; its exit ends Run with an error.
func TestGatewayRunsWithTheSharedState(t *testing.T) {
	dir := t.TempDir()
	key := bytes.Repeat([]byte{7}, 32)
	for name, v := range map[string][]byte{"dfd-secrets-key": key, "dfd-auth-password": []byte("s3cret\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), v, 0o400); err != nil {
			t.Fatal(err)
		}
	}
	eng := &fakeEngine{exit: make(chan container.WaitResponse, 1), left: []container.Summary{{ID: "oldgateway0123456"}}}
	eng.exit <- container.WaitResponse{StatusCode: 3}
	cfg := testConfig(dir)
	cfg.SecretsDir = dir
	self := selfTask()
	self.Container.Mounts[1].Destination = dir + "/dfd-secrets-key"
	err := Run(context.Background(), eng, cfg, self)
	if err == nil || !strings.Contains(err.Error(), "status 3") {
		t.Fatalf("Run = %v, want the gateway's exit status", err)
	}
	if !slices.Contains(eng.removed, "oldgateway0123456") || !slices.Contains(eng.removed, "gateway0123456789") {
		t.Errorf("removed %v, want the old gateway and, after its exit, the new one", eng.removed)
	}
	if len(eng.created) != 1 {
		t.Fatalf("created %d gateways", len(eng.created))
	}
	c, h := eng.created[0], eng.hosts[0]
	if eng.names[0] != "dfd-gateway" || c.Image != "sha256:img" || c.Labels[labelRole] != roleGateway || c.Labels[labelTask] != "task1" {
		t.Errorf("gateway %s: image %s labels %v", eng.names[0], c.Image, c.Labels)
	}
	for _, want := range []string{"RUNTIME=swarm", "INSTANCE=dfd", "STATE_JOURNAL=swarm", "SELF_CONTAINER=auto"} {
		if !slices.Contains(c.Env, want) {
			t.Errorf("gateway env %v lacks %s", c.Env, want)
		}
	}
	for _, bad := range []string{"HOSTNAME=abc", "STATE_JOURNAL=none"} {
		if slices.Contains(c.Env, bad) {
			t.Errorf("gateway env %v keeps %s", c.Env, bad)
		}
	}
	var targets []string
	for _, m := range h.Mounts {
		targets = append(targets, string(m.Type)+":"+m.Target)
	}
	if want := []string{"bind:/var/run/docker.sock", "volume:/var/lib/dockerfaasd"}; !slices.Equal(targets, want) {
		t.Errorf("gateway mounts %v, want %v", targets, want)
	}
	if b := h.PortBindings["8080/tcp"]; len(b) != 1 || b[0].HostPort != "8080" {
		t.Errorf("port bindings %v", h.PortBindings)
	}
	if h.RestartPolicy.Name != container.RestartPolicyDisabled {
		t.Errorf("restart policy %q, want none: the supervisor owns the gateway's life", h.RestartPolicy.Name)
	}
	if !bytes.Equal(eng.copied["secrets.key"], key) || string(eng.copied["basic-auth-password"]) != "s3cret\n" {
		t.Errorf("copied %v", eng.copied)
	}
}

// TestAWrongSizeKeyIsRefused: a key secret that is not a key stops the
// supervisor with a message naming it, rather than sealing with it.
func TestAWrongSizeKeyIsRefused(t *testing.T) {
	dir := t.TempDir()
	_ = os.WriteFile(filepath.Join(dir, "dfd-secrets-key"), []byte("short"), 0o400)
	_ = os.WriteFile(filepath.Join(dir, "dfd-auth-password"), []byte("pw"), 0o400)
	err := Run(context.Background(), &fakeEngine{}, testConfig(dir), selfTask())
	if err == nil || !strings.Contains(err.Error(), "dfd-secrets-key") {
		t.Fatalf("Run = %v, want an error naming the key secret", err)
	}
}
