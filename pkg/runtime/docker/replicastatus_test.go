package docker

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/docker/fake"
)

// namedHost is the fake engine on a host with a name, counting how often it
// was asked; err makes the question fail.
type namedHost struct {
	*fake.Engine
	name  string
	err   error
	asked atomic.Int32
}

func (h *namedHost) HostName(ctx context.Context) (string, error) {
	h.asked.Add(1)
	return h.name, h.err
}

// TestReplicasNameTheEngineHost: on one Docker host every replica runs on
// the engine's host, and its status (what the console's Node column and
// /debug/reconcile show) says so. The engine is asked once, not per Sync,
// and not again at once after it could not say.
func TestReplicasNameTheEngineHost(t *testing.T) {
	tests := []struct {
		name string
		// host wraps the fixture's engine; nil: an engine that cannot
		// name its host.
		host      *namedHost
		wantNode  string
		wantAsked int32
	}{
		{name: "the engine names its host", host: &namedHost{name: "docker-host-7"}, wantNode: "docker-host-7", wantAsked: 1},
		{name: "the engine fails to say", host: &namedHost{name: "not-this", err: errors.New("info: engine gone")}, wantAsked: 1},
		{name: "an engine that cannot say", wantNode: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			var eng engine.Engine = f.eng
			if tt.host != nil {
				tt.host.Engine = f.eng
				eng = tt.host
			}
			f.wire(testConfig(f.prober), eng, nil)
			keys := []string{f.deploy(deployment("alpha"), 2), f.deploy(deployment("beta"), 1)}
			for _, key := range keys {
				if !f.work(key, 10) {
					t.Fatalf("%s did not converge", key)
				}
				// Once more: a Sync of a converged function.
				f.work(key, 1)
			}
			replicas := 0
			for _, key := range keys {
				st, ok := f.board.Get(key)
				if !ok {
					t.Fatalf("no status for %s", key)
				}
				for _, r := range st.Replicas {
					replicas++
					if r.Node != tt.wantNode {
						t.Errorf("%s replica %s: node %q, want %q", key, r.ID, r.Node, tt.wantNode)
					}
				}
			}
			if replicas != 3 {
				t.Errorf("%d replicas in the status, want 3", replicas)
			}
			if tt.host != nil {
				if got := tt.host.asked.Load(); got != tt.wantAsked {
					t.Errorf("engine asked for its host name %d times over %d functions' Syncs, want %d", got, len(keys), tt.wantAsked)
				}
			}
		})
	}
}
