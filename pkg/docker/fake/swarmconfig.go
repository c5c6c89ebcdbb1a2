package fake

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"sort"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/docker"
)

// Swarm configs of the fake swarm, with the rules of a real one that the
// state journal relies on: names are unique, a config never changes, data
// is 1 to docker.MaxConfigSize bytes, names are at most 64 characters of
// [a-zA-Z0-9-_.]. Services of the fake use no configs, so RemoveConfig
// never answers ErrConflict.

type swarmConfigs struct {
	byID map[string]*docker.SwarmConfig
	// listNoData makes ListConfigs leave the data out, as an engine may.
	listNoData bool
	// failAfter, when set, is consulted after a config call has done its
	// work: a non-nil error is returned although the call took effect (an
	// answer lost on the way back).
	failAfter func(op, arg string) error
}

func (s *Swarm) failAfter(op, arg string) error {
	if s.cfgs.failAfter == nil {
		return nil
	}
	return s.cfgs.failAfter(op, arg)
}

// configName is swarmkit's rule for config (and secret) names.
var configName = regexp.MustCompile(`^[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?$`)

func copyConfig(c *docker.SwarmConfig, data bool) docker.SwarmConfig {
	out := *c
	out.Labels = copyMap(c.Labels)
	out.Data = nil
	if data {
		out.Data = append([]byte(nil), c.Data...)
	}
	return out
}

func (s *Swarm) configByRef(ref string) *docker.SwarmConfig {
	if c, ok := s.cfgs.byID[ref]; ok {
		return c
	}
	for _, c := range s.cfgs.byID {
		if c.Name == ref {
			return c
		}
	}
	return nil
}

// CreateConfig implements docker.SwarmEngine.
func (s *Swarm) CreateConfig(ctx context.Context, name string, labels map[string]string, data []byte) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("create-config", name); err != nil {
		return "", err
	}
	if len(name) > 64 || !configName.MatchString(name) {
		return "", fmt.Errorf("create config %s: invalid name, only 64 [a-zA-Z0-9-_.] characters allowed", name)
	}
	if len(data) == 0 || len(data) > docker.MaxConfigSize {
		return "", fmt.Errorf("create config %s: config data must be larger than 0 and less than %d bytes", name, docker.MaxConfigSize+1)
	}
	for _, c := range s.cfgs.byID {
		if c.Name == name {
			return "", fmt.Errorf("create config %s: config %s already exists: %w", name, name, docker.ErrConflict)
		}
	}
	if s.cfgs.byID == nil {
		s.cfgs.byID = map[string]*docker.SwarmConfig{}
	}
	s.seq++
	id := fmt.Sprintf("cfg%022d", s.seq)
	s.cfgs.byID[id] = &docker.SwarmConfig{
		ID: id, Name: name, Version: uint64(s.seq), Labels: copyMap(labels), Data: append([]byte(nil), data...), Created: time.Now(),
	}
	s.record("create-config %s", name)
	return id, s.failAfter("create-config", name)
}

// ListConfigs implements docker.SwarmEngine.
func (s *Swarm) ListConfigs(ctx context.Context, labels map[string]string) ([]docker.SwarmConfig, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("list-configs", ""); err != nil {
		return nil, err
	}
	var out []docker.SwarmConfig
	for _, c := range s.cfgs.byID {
		if matches(c.Labels, labels) {
			out = append(out, copyConfig(c, !s.cfgs.listNoData))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// InspectConfig implements docker.SwarmEngine.
func (s *Swarm) InspectConfig(ctx context.Context, ref string) (docker.SwarmConfig, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("inspect-config", ref); err != nil {
		return docker.SwarmConfig{}, err
	}
	c := s.configByRef(ref)
	if c == nil {
		return docker.SwarmConfig{}, fmt.Errorf("inspect config %s: config %s not found: %w", ref, ref, docker.ErrNotFound)
	}
	return copyConfig(c, true), nil
}

// UpdateConfigLabels implements docker.SwarmEngine.
func (s *Swarm) UpdateConfigLabels(ctx context.Context, c docker.SwarmConfig, labels map[string]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("update-config", c.Name); err != nil {
		return err
	}
	have, ok := s.cfgs.byID[c.ID]
	switch {
	case !ok:
		return fmt.Errorf("update config %s: config %s not found: %w", c.Name, c.ID, docker.ErrNotFound)
	case have.Name != c.Name || (c.Data != nil && !bytes.Equal(have.Data, c.Data)):
		return fmt.Errorf("update config %s: only updates to Labels are allowed", c.Name)
	case have.Version != c.Version:
		return fmt.Errorf("update config %s: update out of sequence: %w", c.Name, docker.ErrConflict)
	}
	s.seq++
	have.Version = uint64(s.seq)
	have.Labels = copyMap(labels)
	s.record("update-config %s", c.Name)
	return s.failAfter("update-config", c.Name)
}

// RemoveConfig implements docker.SwarmEngine.
func (s *Swarm) RemoveConfig(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("remove-config", id); err != nil {
		return err
	}
	c, ok := s.cfgs.byID[id]
	if !ok {
		return fmt.Errorf("remove config %s: config %s not found: %w", id, id, docker.ErrNotFound)
	}
	delete(s.cfgs.byID, id)
	s.record("remove-config %s", c.Name)
	return s.failAfter("remove-config", c.Name)
}

// ListConfigsWithoutData makes ListConfigs leave the data out (InspectConfig
// still has it), as an engine that strips it from lists would.
func (s *Swarm) ListConfigsWithoutData(on bool) {
	s.mu.Lock()
	s.cfgs.listNoData = on
	s.mu.Unlock()
}

// FailConfigsAfter sets a hook consulted after each config call has done
// its work (op "create-config", "update-config", "remove-config", arg the
// config's name): a non-nil error is returned although the call took
// effect, as when the answer is lost. Nil removes it.
func (s *Swarm) FailConfigsAfter(f func(op, arg string) error) {
	s.mu.Lock()
	s.cfgs.failAfter = f
	s.mu.Unlock()
}

// ConfigNames returns the names of all configs.
func (s *Swarm) ConfigNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, c := range s.cfgs.byID {
		out = append(out, c.Name)
	}
	sort.Strings(out)
	return out
}

// RemoveConfigBehindBack removes the named config as a user would (or as
// if its creation had never happened).
func (s *Swarm) RemoveConfigBehindBack(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.configByRef(name); c != nil {
		delete(s.cfgs.byID, c.ID)
		return true
	}
	return false
}
