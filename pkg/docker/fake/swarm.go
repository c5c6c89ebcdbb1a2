package fake

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/dockerfaasd/dockerfaasd/pkg/docker"
)

// Swarm is a fake docker.SwarmEngine: a manager of a three-node swarm
// (node-1 a manager, node-2 and node-3 workers) whose orchestrator runs
// synchronously after every change. A replicated service gets one task per
// slot, placed round-robin on the nodes its constraints allow, with an
// address on each of its networks; a task of an image the swarm does not
// have is rejected (ImageMissing); a scale down shuts the highest slots
// down; a spec change rolls slot by slot as the service's UpdateConfig
// says (parallelism, start-first: the old task is shut down once the new
// one runs). With Hold set, new tasks stay "starting" until Start.
type Swarm struct {
	recorder // its lock, Actions and Fail
	info     docker.SwarmInfo
	services map[string]*swarm.Service
	tasks    map[string]*docker.Task
	networks map[string]*swarmNet
	secrets  map[string]*swarmSecret
	nodes    []docker.Node
	images   map[string]bool
	seq      int
	place    int
	subs     []chan docker.Event
	// taskLogs holds what every task wrote, in the order written (see
	// WriteTaskLog); logWake wakes the readers following them.
	taskLogs []taskLogLine
	logWake  logWaker
	// logEpoch counts EndLogStreams calls.
	logEpoch int
	// Hold keeps new tasks "starting" until Start or StartAll.
	Hold bool
	// cfgs are the swarm configs (swarmconfig.go).
	cfgs swarmConfigs
	// strand: service IDs whose next scale-down leaves its extra tasks
	// wanted running (see StrandNextScaleDown).
	strand map[string]bool
}

type swarmNet struct {
	docker.Network
	encrypted bool
	attached  map[string]bool // containers attached on this node
	subnet    int
	next      int
}

type swarmSecret struct {
	docker.SwarmSecret
	value []byte
}

var _ docker.SwarmEngine = (*Swarm)(nil)

// NewSwarm returns a fake swarm manager that knows the given images.
func NewSwarm(images ...string) *Swarm {
	s := &Swarm{
		info:     docker.SwarmInfo{NodeID: "node1", LocalNodeState: "active", ControlAvailable: true, Nodes: 3, Managers: 1},
		services: map[string]*swarm.Service{},
		tasks:    map[string]*docker.Task{},
		networks: map[string]*swarmNet{},
		secrets:  map[string]*swarmSecret{},
		images:   map[string]bool{},
		strand:   map[string]bool{},
		nodes: []docker.Node{
			{ID: "node1", Hostname: "node-1", Role: "manager", Availability: "active", State: "ready", Labels: map[string]string{}},
			{ID: "node2", Hostname: "node-2", Role: "worker", Availability: "active", State: "ready", Labels: map[string]string{"zone": "a"}},
			{ID: "node3", Hostname: "node-3", Role: "worker", Availability: "active", State: "ready", Labels: map[string]string{"zone": "b"}},
		},
	}
	for _, img := range images {
		s.images[img] = true
	}
	return s
}

func (s *Swarm) emit(typ, action, id, name string) {
	ev := docker.Event{Type: typ, Action: action, ID: id, Attributes: map[string]string{"name": name}}
	for _, c := range s.subs {
		select {
		case c <- ev:
		default:
		}
	}
}

// SetInfo replaces what SwarmInfo answers (a worker, no swarm).
func (s *Swarm) SetInfo(info docker.SwarmInfo) {
	s.mu.Lock()
	s.info = info
	s.mu.Unlock()
}

// Ping implements docker.SwarmEngine.
func (s *Swarm) Ping(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fail("ping", "")
}

// SwarmInfo implements docker.SwarmEngine.
func (s *Swarm) SwarmInfo(ctx context.Context) (docker.SwarmInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.info, s.fail("info", "")
}

func (s *Swarm) serviceByName(name string) *swarm.Service {
	for _, svc := range s.services {
		if svc.Spec.Name == name {
			return svc
		}
	}
	return nil
}

func (s *Swarm) lookupService(ref string) *swarm.Service {
	if svc, ok := s.services[ref]; ok {
		return svc
	}
	return s.serviceByName(ref)
}

// CreateService implements docker.SwarmEngine.
func (s *Swarm) CreateService(ctx context.Context, spec swarm.ServiceSpec) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("create-service", spec.Name); err != nil {
		return "", err
	}
	if s.serviceByName(spec.Name) != nil {
		return "", fmt.Errorf("create service %s: name in use: %w", spec.Name, docker.ErrConflict)
	}
	if err := s.checkRefs(spec); err != nil {
		return "", fmt.Errorf("create service %s: %w", spec.Name, err)
	}
	s.seq++
	id := fmt.Sprintf("svc%022d", s.seq)
	s.services[id] = &swarm.Service{ID: id, Meta: swarm.Meta{Version: swarm.Version{Index: uint64(s.seq)}}, Spec: copySpec(spec)}
	s.record("create-service %s", spec.Name)
	s.emit("service", "create", id, spec.Name)
	s.converge(id)
	return id, nil
}

// checkRefs refuses a spec naming a network or secret that does not exist.
func (s *Swarm) checkRefs(spec swarm.ServiceSpec) error {
	for _, n := range spec.TaskTemplate.Networks {
		if s.lookupNet(n.Target) == nil {
			return fmt.Errorf("network %s not found: %w", n.Target, docker.ErrNotFound)
		}
	}
	if cs := spec.TaskTemplate.ContainerSpec; cs != nil {
		for _, ref := range cs.Secrets {
			if _, ok := s.secrets[ref.SecretID]; !ok {
				return fmt.Errorf("secret %s not found: %w", ref.SecretName, docker.ErrNotFound)
			}
		}
	}
	return nil
}

// UpdateService implements docker.SwarmEngine.
func (s *Swarm) UpdateService(ctx context.Context, id string, version uint64, spec swarm.ServiceSpec) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("update-service", spec.Name); err != nil {
		return err
	}
	svc := s.lookupService(id)
	if svc == nil {
		return fmt.Errorf("update service %s: %w", id, docker.ErrNotFound)
	}
	if svc.Version.Index != version {
		return fmt.Errorf("update service %s: update out of sequence: %w", id, docker.ErrConflict)
	}
	if err := s.checkRefs(spec); err != nil {
		return fmt.Errorf("update service %s: %w", spec.Name, err)
	}
	s.seq++
	prev := svc.Spec
	svc.PreviousSpec = &prev
	svc.Spec = copySpec(spec)
	svc.Version.Index = uint64(s.seq)
	s.record("update-service %s", spec.Name)
	s.emit("service", "update", svc.ID, spec.Name)
	s.converge(svc.ID)
	return nil
}

// InspectService implements docker.SwarmEngine.
func (s *Swarm) InspectService(ctx context.Context, id string) (swarm.Service, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("inspect-service", id); err != nil {
		return swarm.Service{}, err
	}
	svc := s.lookupService(id)
	if svc == nil {
		return swarm.Service{}, fmt.Errorf("inspect service %s: %w", id, docker.ErrNotFound)
	}
	out := *svc
	out.Spec = copySpec(svc.Spec)
	return out, nil
}

// ListServices implements docker.SwarmEngine.
func (s *Swarm) ListServices(ctx context.Context, labels map[string]string) ([]swarm.Service, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("list-services", ""); err != nil {
		return nil, err
	}
	var out []swarm.Service
	for _, svc := range s.services {
		if matches(svc.Spec.Labels, labels) {
			cp := *svc
			cp.Spec = copySpec(svc.Spec)
			out = append(out, cp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.Name < out[j].Spec.Name })
	return out, nil
}

// RemoveService implements docker.SwarmEngine: its tasks go with it.
func (s *Swarm) RemoveService(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("remove-service", id); err != nil {
		return err
	}
	svc := s.lookupService(id)
	if svc == nil {
		return fmt.Errorf("remove service %s: %w", id, docker.ErrNotFound)
	}
	s.removeService(svc)
	s.record("remove-service %s", svc.Spec.Name)
	return nil
}

func (s *Swarm) removeService(svc *swarm.Service) {
	for id, t := range s.tasks {
		if t.ServiceID == svc.ID {
			delete(s.tasks, id)
		}
	}
	delete(s.services, svc.ID)
	s.emit("service", "remove", svc.ID, svc.Spec.Name)
}

// ListTasks implements docker.SwarmEngine.
func (s *Swarm) ListTasks(ctx context.Context, serviceIDs ...string) ([]docker.Task, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("list-tasks", strings.Join(serviceIDs, ",")); err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, id := range serviceIDs {
		want[id] = true
	}
	var out []docker.Task
	for _, t := range s.tasks {
		if len(want) == 0 || want[t.ServiceID] {
			out = append(out, copyTask(t))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// converge is the orchestrator for one service.
func (s *Swarm) converge(id string) {
	svc := s.services[id]
	if svc == nil || svc.Spec.Mode.Replicated == nil {
		return
	}
	want := 0
	if r := svc.Spec.Mode.Replicated.Replicas; r != nil {
		want = int(*r)
	}
	cs := svc.Spec.TaskTemplate.ContainerSpec
	hash := cs.Labels[docker.LabelSpecHash]
	bySlot := map[int][]*docker.Task{}
	stranded := false
	for _, t := range s.tasks {
		if t.ServiceID != id || t.DesiredState != docker.TaskRunning {
			continue
		}
		if t.State == docker.TaskFailed || t.State == docker.TaskShutdown {
			t.DesiredState = docker.TaskShutdown // restart policy any: replaced below
			continue
		}
		if t.Slot > want {
			if s.strand[id] {
				stranded = true
			} else {
				s.shutdown(t)
			}
			continue
		}
		bySlot[t.Slot] = append(bySlot[t.Slot], t)
	}
	if stranded {
		delete(s.strand, id)
	}
	parallelism := 0
	if uc := svc.Spec.UpdateConfig; uc != nil {
		parallelism = int(uc.Parallelism)
	}
	inTransit := 0
	for slot := 1; slot <= want; slot++ {
		var cur *docker.Task
		var old []*docker.Task
		for _, t := range bySlot[slot] {
			if t.Labels[docker.LabelSpecHash] == hash && cur == nil {
				cur = t
			} else {
				old = append(old, t)
			}
		}
		if cur == nil {
			if len(old) > 0 && parallelism > 0 && inTransit >= parallelism {
				continue
			}
			cur = s.newTask(svc, slot)
		}
		if cur.State == docker.TaskRunning {
			for _, t := range old {
				s.shutdown(t)
			}
		} else if len(old) > 0 {
			inTransit++
		}
	}
}

func (s *Swarm) shutdown(t *docker.Task) {
	t.DesiredState = docker.TaskShutdown
	t.State = docker.TaskShutdown
	t.Updated = time.Now()
}

// newTask places a task of svc in slot on the next node its constraints
// allow (pending when none does), rejected when the image is missing.
func (s *Swarm) newTask(svc *swarm.Service, slot int) *docker.Task {
	s.seq++
	cs := svc.Spec.TaskTemplate.ContainerSpec
	// 25 characters like swarm's task IDs, and like them unique in their
	// first 12 (a short ID).
	t := &docker.Task{
		ID: fmt.Sprintf("task%08d%013d", s.seq, 0), ServiceID: svc.ID, Slot: slot,
		State: docker.TaskRunning, DesiredState: docker.TaskRunning,
		Labels: copyMap(cs.Labels), Addrs: map[string]string{}, Created: time.Now(), Updated: time.Now(),
	}
	s.tasks[t.ID] = t
	var constraints []string
	if p := svc.Spec.TaskTemplate.Placement; p != nil {
		constraints = p.Constraints
	}
	var fits []docker.Node
	for _, n := range s.nodes {
		if n.Availability == "active" && n.State == "ready" && nodeMatches(n, constraints) {
			fits = append(fits, n)
		}
	}
	if len(fits) == 0 {
		t.State, t.Err = docker.TaskPending, "no suitable node (scheduling constraints not satisfied on 3 nodes)"
		return t
	}
	s.place++
	t.NodeID = fits[s.place%len(fits)].ID
	if !s.images[cs.Image] {
		t.State, t.Err, t.ImageMissing = docker.TaskRejected, "No such image: "+cs.Image, true
		return t
	}
	t.ContainerID = fmt.Sprintf("%064x", s.seq)
	for _, na := range svc.Spec.TaskTemplate.Networks {
		if n := s.lookupNet(na.Target); n != nil {
			n.next++
			t.Addrs[n.Name] = fmt.Sprintf("10.0.%d.%d", n.subnet, n.next+1)
		}
	}
	if s.Hold {
		t.State = docker.TaskStarting
	}
	return t
}

// nodeMatches evaluates placement constraints the way swarm does for the
// attributes the fake knows (node.id, node.hostname, node.role, node.labels.*).
func nodeMatches(n docker.Node, constraints []string) bool {
	for _, c := range constraints {
		op, eq := "==", true
		i := strings.Index(c, "==")
		if j := strings.Index(c, "!="); j >= 0 && (i < 0 || j < i) {
			i, op, eq = j, "!=", false
		}
		if i < 0 {
			return false
		}
		key, val := strings.TrimSpace(c[:i]), strings.TrimSpace(c[i+len(op):])
		var have string
		switch {
		case key == "node.id":
			have = n.ID
		case key == "node.hostname":
			have = n.Hostname
		case key == "node.role":
			have = n.Role
		case strings.HasPrefix(key, "node.labels."):
			have = n.Labels[strings.TrimPrefix(key, "node.labels.")]
		default:
			return false
		}
		if (have == val) != eq {
			return false
		}
	}
	return true
}

// Start moves a starting task to running (and lets a roll go on).
func (s *Swarm) Start(taskID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tasks[taskID]; ok && t.State == docker.TaskStarting {
		t.State = docker.TaskRunning
		s.converge(t.ServiceID)
	}
}

// StartAll starts every starting task, as often as the rolls need.
func (s *Swarm) StartAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for again := true; again; {
		again = false
		for _, t := range s.tasks {
			if t.State == docker.TaskStarting {
				t.State = docker.TaskRunning
				again = true
			}
		}
		for id := range s.services {
			s.converge(id)
		}
	}
}

// KillTask makes a task fail, as a crash would; the orchestrator replaces it.
func (s *Swarm) KillTask(taskID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tasks[taskID]; ok {
		t.State, t.Err = docker.TaskFailed, "task: non-zero exit (137)"
		s.converge(t.ServiceID)
	}
}

// ScaleBehindBack sets a service's replicas as `docker service scale` would.
func (s *Swarm) ScaleBehindBack(name string, replicas uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if svc := s.serviceByName(name); svc != nil {
		svc.Spec.Mode.Replicated.Replicas = &replicas
		s.seq++
		svc.Version.Index = uint64(s.seq)
		s.emit("service", "update", svc.ID, name)
		s.converge(svc.ID)
	}
}

// StrandNextScaleDown makes the next scale-down of the named service leave
// the tasks beyond its replicas wanted running, as swarm's orchestrator
// does when its update of them loses a race with another writer of those
// tasks (it logs "failed to update task to REMOVE: update out of sequence"
// and does not try again until the service changes).
func (s *Swarm) StrandNextScaleDown(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if svc := s.serviceByName(name); svc != nil {
		s.strand[svc.ID] = true
	}
}

// RemoveServiceBehindBack removes a service as `docker service rm` would.
func (s *Swarm) RemoveServiceBehindBack(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if svc := s.serviceByName(name); svc != nil {
		s.removeService(svc)
	}
}

// AddImage makes ref present on every node; rejected tasks are replaced.
func (s *Swarm) AddImage(ref string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.images[ref] = true
	for _, t := range s.tasks {
		if t.State == docker.TaskRejected && t.DesiredState == docker.TaskRunning {
			t.DesiredState = docker.TaskShutdown
		}
	}
	for id := range s.services {
		s.converge(id)
	}
}

// Tasks returns the tasks of the named service, in slot order.
func (s *Swarm) Tasks(service string) []docker.Task {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc := s.serviceByName(service)
	var out []docker.Task
	for _, t := range s.tasks {
		if svc != nil && t.ServiceID == svc.ID {
			out = append(out, copyTask(t))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Slot != out[j].Slot {
			return out[i].Slot < out[j].Slot
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Service returns the named service.
func (s *Swarm) Service(name string) (swarm.Service, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc := s.serviceByName(name)
	if svc == nil {
		return swarm.Service{}, false
	}
	return *svc, true
}

// ServiceNames returns the names of all services.
func (s *Swarm) ServiceNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, svc := range s.services {
		out = append(out, svc.Spec.Name)
	}
	sort.Strings(out)
	return out
}

func (s *Swarm) lookupNet(ref string) *swarmNet {
	if n, ok := s.networks[ref]; ok {
		return n
	}
	for _, n := range s.networks {
		if n.Name == ref {
			return n
		}
	}
	return nil
}

// CreateOverlayNetwork implements docker.SwarmEngine.
func (s *Swarm) CreateOverlayNetwork(ctx context.Context, name string, labels map[string]string, encrypted bool) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("create-network", name); err != nil {
		return "", err
	}
	if s.lookupNet(name) != nil {
		return "", fmt.Errorf("create network %s: %w", name, docker.ErrConflict)
	}
	s.seq++
	id := fmt.Sprintf("net%022d", s.seq)
	s.networks[id] = &swarmNet{
		Network:   docker.Network{ID: id, Name: name, Labels: copyMap(labels)},
		encrypted: encrypted, attached: map[string]bool{}, subnet: len(s.networks) + 1,
	}
	s.record("create-network %s", name)
	s.emit("network", "create", id, name)
	return id, nil
}

// Encrypted tells whether the named network was created encrypted.
func (s *Swarm) Encrypted(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.lookupNet(name)
	return n != nil && n.encrypted
}

func (s *Swarm) netCopy(n *swarmNet) docker.Network {
	out := n.Network
	out.Labels = copyMap(n.Labels)
	out.Containers = nil
	for c := range n.attached {
		out.Containers = append(out.Containers, c)
	}
	sort.Strings(out.Containers)
	return out
}

// InspectNetwork implements docker.SwarmEngine.
func (s *Swarm) InspectNetwork(ctx context.Context, id string) (docker.Network, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("inspect-network", id); err != nil {
		return docker.Network{}, err
	}
	n := s.lookupNet(id)
	if n == nil {
		return docker.Network{}, fmt.Errorf("inspect network %s: %w", id, docker.ErrNotFound)
	}
	return s.netCopy(n), nil
}

// ListNetworks implements docker.SwarmEngine.
func (s *Swarm) ListNetworks(ctx context.Context, labels map[string]string) ([]docker.Network, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("list-networks", ""); err != nil {
		return nil, err
	}
	var out []docker.Network
	for _, n := range s.networks {
		if matches(n.Labels, labels) {
			out = append(out, s.netCopy(n))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// RemoveNetwork implements docker.SwarmEngine; like swarm, it refuses a
// network a service uses or a container is attached to.
func (s *Swarm) RemoveNetwork(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("remove-network", id); err != nil {
		return err
	}
	n := s.lookupNet(id)
	if n == nil {
		return fmt.Errorf("remove network %s: %w", id, docker.ErrNotFound)
	}
	for _, svc := range s.services {
		for _, na := range svc.Spec.TaskTemplate.Networks {
			if na.Target == n.ID || na.Target == n.Name {
				return fmt.Errorf("remove network %s: in use by service %s: %w", n.Name, svc.Spec.Name, docker.ErrConflict)
			}
		}
	}
	if len(n.attached) > 0 {
		return fmt.Errorf("remove network %s: has active endpoints: %w", n.Name, docker.ErrConflict)
	}
	delete(s.networks, n.ID)
	s.record("remove-network %s", n.Name)
	s.emit("network", "destroy", n.ID, n.Name)
	return nil
}

// RemoveNetworkBehindBack removes a network as a user would (forcing it).
func (s *Swarm) RemoveNetworkBehindBack(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.lookupNet(name); n != nil {
		delete(s.networks, n.ID)
		s.emit("network", "destroy", n.ID, n.Name)
	}
}

// ConnectNetwork implements docker.SwarmEngine.
func (s *Swarm) ConnectNetwork(ctx context.Context, network, container string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("connect", container); err != nil {
		return err
	}
	n := s.lookupNet(network)
	if n == nil {
		return fmt.Errorf("connect %s: network %s: %w", container, network, docker.ErrNotFound)
	}
	if n.attached[container] {
		return fmt.Errorf("connect %s: endpoint already exists in network %s: %w", container, network, docker.ErrConflict)
	}
	n.attached[container] = true
	s.record("connect %s %s", container, n.Name)
	return nil
}

// DisconnectNetwork implements docker.SwarmEngine.
func (s *Swarm) DisconnectNetwork(ctx context.Context, network, container string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("disconnect", container); err != nil {
		return err
	}
	n := s.lookupNet(network)
	if n == nil || !n.attached[container] {
		return fmt.Errorf("disconnect %s: not connected to %s: %w", container, network, docker.ErrNotFound)
	}
	delete(n.attached, container)
	s.record("disconnect %s %s", container, n.Name)
	return nil
}

// CreateSecret implements docker.SwarmEngine.
func (s *Swarm) CreateSecret(ctx context.Context, name string, labels map[string]string, value []byte) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("create-secret", name); err != nil {
		return "", err
	}
	for _, sec := range s.secrets {
		if sec.Name == name {
			return "", fmt.Errorf("create secret %s: %w", name, docker.ErrConflict)
		}
	}
	s.seq++
	id := fmt.Sprintf("sec%022d", s.seq)
	s.secrets[id] = &swarmSecret{
		SwarmSecret: docker.SwarmSecret{ID: id, Name: name, Labels: copyMap(labels), Created: time.Now()},
		value:       append([]byte(nil), value...),
	}
	s.record("create-secret %s", name)
	return id, nil
}

// ListSecrets implements docker.SwarmEngine.
func (s *Swarm) ListSecrets(ctx context.Context, labels map[string]string) ([]docker.SwarmSecret, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("list-secrets", ""); err != nil {
		return nil, err
	}
	var out []docker.SwarmSecret
	for _, sec := range s.secrets {
		if matches(sec.Labels, labels) {
			cp := sec.SwarmSecret
			cp.Labels = copyMap(sec.Labels)
			out = append(out, cp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// RemoveSecret implements docker.SwarmEngine; like swarm, it refuses a
// secret a service uses.
func (s *Swarm) RemoveSecret(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("remove-secret", id); err != nil {
		return err
	}
	sec, ok := s.secrets[id]
	if !ok {
		return fmt.Errorf("remove secret %s: %w", id, docker.ErrNotFound)
	}
	for _, svc := range s.services {
		if cs := svc.Spec.TaskTemplate.ContainerSpec; cs != nil {
			for _, ref := range cs.Secrets {
				if ref.SecretID == id {
					return fmt.Errorf("remove secret %s: is in use by service %s: %w", sec.Name, svc.Spec.Name, docker.ErrConflict)
				}
			}
		}
	}
	delete(s.secrets, id)
	s.record("remove-secret %s", sec.Name)
	return nil
}

// SecretNames returns the names of all secrets.
func (s *Swarm) SecretNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, sec := range s.secrets {
		out = append(out, sec.Name)
	}
	sort.Strings(out)
	return out
}

// SecretValue returns the value stored under the named secret.
func (s *Swarm) SecretValue(name string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sec := range s.secrets {
		if sec.Name == name {
			return sec.value, true
		}
	}
	return nil, false
}

// ListNodes implements docker.SwarmEngine.
func (s *Swarm) ListNodes(ctx context.Context) ([]docker.Node, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("list-nodes", ""); err != nil {
		return nil, err
	}
	out := make([]docker.Node, len(s.nodes))
	for i, n := range s.nodes {
		out[i] = n
		out[i].Labels = copyMap(n.Labels)
	}
	return out, nil
}

// Events implements docker.SwarmEngine: service, network and node events
// carry the object's name; containers are not simulated.
func (s *Swarm) Events(ctx context.Context, types []string, labels map[string]string) (<-chan docker.Event, <-chan error) {
	in := make(chan docker.Event, 256)
	out := make(chan docker.Event, 256)
	errc := make(chan error, 1)
	s.mu.Lock()
	s.subs = append(s.subs, in)
	s.mu.Unlock()
	go func() {
		defer close(out)
		for {
			select {
			case ev := <-in:
				if !contains(types, ev.Type) {
					continue
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					errc <- ctx.Err()
					return
				}
			case <-ctx.Done():
				errc <- ctx.Err()
				return
			}
		}
	}()
	return out, errc
}

func copyTask(t *docker.Task) docker.Task {
	cp := *t
	cp.Labels = copyMap(t.Labels)
	cp.Addrs = copyMap(t.Addrs)
	return cp
}

// copySpec copies what the fake or its callers may change in a spec.
func copySpec(spec swarm.ServiceSpec) swarm.ServiceSpec {
	out := spec
	out.Labels = copyMap(spec.Labels)
	if cs := spec.TaskTemplate.ContainerSpec; cs != nil {
		c := *cs
		c.Labels = copyMap(cs.Labels)
		c.Env = append([]string(nil), cs.Env...)
		c.Secrets = append([]*swarm.SecretReference(nil), cs.Secrets...)
		out.TaskTemplate.ContainerSpec = &c
	}
	out.TaskTemplate.Networks = append([]swarm.NetworkAttachmentConfig(nil), spec.TaskTemplate.Networks...)
	if r := spec.Mode.Replicated; r != nil && r.Replicas != nil {
		n := *r.Replicas
		out.Mode.Replicated = &swarm.ReplicatedService{Replicas: &n}
	}
	return out
}
