package docker

import (
	"context"
	"errors"
	"sync"
)

// NetworkAttacher attaches containers to networks and detaches them:
// Engine and SwarmEngine both are one.
type NetworkAttacher interface {
	ConnectNetwork(ctx context.Context, network, container string) error
	DisconnectNetwork(ctx context.Context, network, container string) error
}

// SelfNetworks attaches the daemon's own container (self: its full ID,
// "" when the daemon runs in none, and then there is nothing to do) to
// function networks, so that it reaches replicas at their address on
// them, and remembers the ones joined. The engines' network lists do not
// say which containers are attached, so they are remembered by ID (a
// network made again under the same name is joined again), and an
// "already attached" answer (ErrConflict) counts as joined after a daemon
// restart. The zero value is ready; it is safe for concurrent use.
type SelfNetworks struct {
	mu     sync.Mutex
	joined map[string]bool
}

// Joined tells whether self joined the network of ID id (always true when
// self is "").
func (s *SelfNetworks) Joined(self, id string) bool {
	if self == "" {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.joined[id]
}

// Join attaches self to the network of ID id, which eng knows as ref,
// unless it joined it already. joined reports whether it joined it now;
// err is the engine's.
func (s *SelfNetworks) Join(ctx context.Context, eng NetworkAttacher, self, id, ref string) (joined bool, err error) {
	if s.Joined(self, id) {
		return false, nil
	}
	if err := eng.ConnectNetwork(ctx, ref, self); err != nil && !errors.Is(err, ErrConflict) {
		return false, err
	}
	s.mu.Lock()
	if s.joined == nil {
		s.joined = map[string]bool{}
	}
	s.joined[id] = true
	s.mu.Unlock()
	return true, nil
}

// Leave detaches self from the network of ID id, which eng knows as ref
// (one not attached, ErrNotFound, counts as detached), and forgets it.
func (s *SelfNetworks) Leave(ctx context.Context, eng NetworkAttacher, self, id, ref string) error {
	if self == "" {
		return nil
	}
	if err := eng.DisconnectNetwork(ctx, ref, self); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	s.mu.Lock()
	delete(s.joined, id)
	s.mu.Unlock()
	return nil
}
