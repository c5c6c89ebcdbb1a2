package fake

import (
	"context"
	"errors"
	"testing"

	"github.com/docker/docker/api/types/swarm"

	"github.com/dockerfaasd/dockerfaasd/pkg/docker"
)

func service(name, hash string, replicas uint64, constraints ...string) swarm.ServiceSpec {
	s := swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: name, Labels: map[string]string{"k": "v"}},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{Image: "img", Labels: map[string]string{docker.LabelSpecHash: hash}},
			Networks:      []swarm.NetworkAttachmentConfig{{Target: "net"}},
		},
		Mode:         swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
		UpdateConfig: &swarm.UpdateConfig{Parallelism: 1, Order: swarm.UpdateOrderStartFirst},
	}
	if len(constraints) > 0 {
		s.TaskTemplate.Placement = &swarm.Placement{Constraints: constraints}
	}
	return s
}

func live(ts []docker.Task) (running, starting int, hashes map[string]int) {
	hashes = map[string]int{}
	for _, t := range ts {
		if t.DesiredState != docker.TaskRunning {
			continue
		}
		switch t.State {
		case docker.TaskRunning:
			running++
			hashes[t.Labels[docker.LabelSpecHash]]++
		case docker.TaskStarting:
			starting++
		}
	}
	return running, starting, hashes
}

func TestFakeSwarmServiceLifecycle(t *testing.T) {
	ctx := context.Background()
	s := NewSwarm("img")
	if _, err := s.CreateService(ctx, service("fn", "h1", 3)); !errors.Is(err, docker.ErrNotFound) {
		t.Fatalf("a service on a missing network: %v", err)
	}
	if _, err := s.CreateOverlayNetwork(ctx, "net", nil, true); err != nil || !s.Encrypted("net") {
		t.Fatal(err)
	}
	id, err := s.CreateService(ctx, service("fn", "h1", 3))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateService(ctx, service("fn", "h1", 1)); !errors.Is(err, docker.ErrConflict) {
		t.Errorf("duplicate name: %v", err)
	}
	ts := s.Tasks("fn")
	nodes := map[string]bool{}
	for _, tk := range ts {
		nodes[tk.NodeID] = true
		if tk.Addrs["net"] == "" {
			t.Errorf("task %s has no address on its network", tk.ID)
		}
	}
	if r, _, _ := live(ts); r != 3 || len(nodes) != 3 {
		t.Fatalf("tasks %+v, want 3 running on 3 nodes", ts)
	}

	// A roll with parallelism 1, start-first: one new task at a time,
	// the old one shut down once the new one runs.
	s.Hold = true
	svc, _ := s.InspectService(ctx, id)
	if err := s.UpdateService(ctx, id, svc.Version.Index-1, service("fn", "h2", 3)); !errors.Is(err, docker.ErrConflict) {
		t.Errorf("stale version: %v", err)
	}
	if err := s.UpdateService(ctx, id, svc.Version.Index, service("fn", "h2", 3)); err != nil {
		t.Fatal(err)
	}
	if r, st, h := live(s.Tasks("fn")); r != 3 || st != 1 || h["h1"] != 3 {
		t.Fatalf("roll step 1: running %d starting %d %v", r, st, h)
	}
	for i := 0; i < 3; i++ {
		for _, tk := range s.Tasks("fn") {
			if tk.State == docker.TaskStarting {
				s.Start(tk.ID)
			}
		}
	}
	if r, st, h := live(s.Tasks("fn")); r != 3 || st != 0 || h["h2"] != 3 {
		t.Fatalf("rolled: running %d starting %d %v", r, st, h)
	}
	s.Hold = false

	// Scale down, a crash, a scale by hand.
	svc, _ = s.InspectService(ctx, id)
	if err := s.UpdateService(ctx, id, svc.Version.Index, service("fn", "h2", 1)); err != nil {
		t.Fatal(err)
	}
	if r, _, _ := live(s.Tasks("fn")); r != 1 {
		t.Fatalf("scale down: %d running", r)
	}
	var first string
	for _, tk := range s.Tasks("fn") {
		if tk.DesiredState == docker.TaskRunning {
			first = tk.ID
		}
	}
	s.KillTask(first)
	if r, _, _ := live(s.Tasks("fn")); r != 1 {
		t.Fatalf("after a crash: %d running, want a replacement", r)
	}
	s.ScaleBehindBack("fn", 2)
	if r, _, _ := live(s.Tasks("fn")); r != 2 {
		t.Fatalf("scaled by hand: %d running", r)
	}
	if err := s.RemoveNetwork(ctx, "net"); !errors.Is(err, docker.ErrConflict) {
		t.Errorf("network in use: %v", err)
	}
	if err := s.RemoveService(ctx, id); err != nil || len(s.Tasks("fn")) != 0 {
		t.Fatalf("remove: %v", err)
	}
}

func TestFakeSwarmPlacementAndImages(t *testing.T) {
	ctx := context.Background()
	s := NewSwarm()
	s.CreateOverlayNetwork(ctx, "net", nil, false)
	s.CreateService(ctx, service("a", "h", 2, "node.role==worker", "node.labels.zone==a"))
	for _, tk := range s.Tasks("a") {
		if tk.NodeID != "node2" || tk.State != docker.TaskRejected || !tk.ImageMissing {
			t.Errorf("task %+v: want rejected on node2 for its image", tk)
		}
	}
	s.AddImage("img")
	if r, _, _ := live(s.Tasks("a")); r != 2 {
		t.Errorf("after the image came: %d running", r)
	}
	s.CreateService(ctx, service("b", "h", 1, "node.hostname==nowhere"))
	if ts := s.Tasks("b"); len(ts) != 1 || ts[0].State != docker.TaskPending {
		t.Errorf("unsatisfiable constraint: %+v", ts)
	}
}

func TestFakeSwarmSecrets(t *testing.T) {
	ctx := context.Background()
	s := NewSwarm("img")
	id, err := s.CreateSecret(ctx, "s1", map[string]string{"l": "1"}, []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateSecret(ctx, "s1", nil, nil); !errors.Is(err, docker.ErrConflict) {
		t.Errorf("duplicate secret: %v", err)
	}
	s.CreateOverlayNetwork(ctx, "net", nil, false)
	spec := service("fn", "h", 1)
	spec.TaskTemplate.ContainerSpec.Secrets = []*swarm.SecretReference{{SecretID: id, SecretName: "s1"}}
	if _, err := s.CreateService(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveSecret(ctx, id); !errors.Is(err, docker.ErrConflict) {
		t.Errorf("secret in use: %v", err)
	}
	if l, _ := s.ListSecrets(ctx, map[string]string{"l": "1"}); len(l) != 1 {
		t.Errorf("list by label: %v", l)
	}
}
