package fake

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/dockerfaasd/dockerfaasd/pkg/docker"
)

// The rules of swarm the state journal relies on, as the fake keeps them.
func TestSwarmConfigs(t *testing.T) {
	ctx := context.Background()
	s := NewSwarm()
	labels := map[string]string{"k": "v"}
	id, err := s.CreateConfig(ctx, "c1", labels, []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		data     []byte
		conflict bool
	}{
		{"c1", []byte("again"), true},
		{"empty", nil, false},
		{"big", make([]byte, docker.MaxConfigSize+1), false},
		{"-bad", []byte("x"), false},
		{strings.Repeat("n", 65), []byte("x"), false},
	} {
		_, err := s.CreateConfig(ctx, tc.name, nil, tc.data)
		if err == nil || errors.Is(err, docker.ErrConflict) != tc.conflict {
			t.Errorf("create %.10s (%d bytes): %v, want an error (conflict %v)", tc.name, len(tc.data), err, tc.conflict)
		}
	}
	if _, err := s.CreateConfig(ctx, "max", nil, make([]byte, docker.MaxConfigSize)); err != nil {
		t.Errorf("create of MaxConfigSize bytes: %v", err)
	}
	list, err := s.ListConfigs(ctx, labels)
	if err != nil || len(list) != 1 || string(list[0].Data) != "one" {
		t.Fatalf("list = %+v, %v", list, err)
	}
	c, err := s.InspectConfig(ctx, "c1")
	if err != nil || c.ID != id {
		t.Fatalf("inspect by name = %+v, %v", c, err)
	}
	// Labels change only at the version read: a compare-and-swap.
	if err := s.UpdateConfigLabels(ctx, c, map[string]string{"k": "w"}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateConfigLabels(ctx, c, map[string]string{"k": "x"}); !errors.Is(err, docker.ErrConflict) {
		t.Fatalf("update at a stale version: %v, want ErrConflict", err)
	}
	c2, _ := s.InspectConfig(ctx, id)
	if c2.Labels["k"] != "w" || c2.Version == c.Version {
		t.Fatalf("after the update: %+v", c2)
	}
	c2.Data = []byte("changed")
	if err := s.UpdateConfigLabels(ctx, c2, nil); err == nil {
		t.Fatal("data changed")
	}
	s.ListConfigsWithoutData(true)
	if list, _ := s.ListConfigs(ctx, nil); list[0].Data != nil {
		t.Fatal("list has data")
	}
	if err := s.RemoveConfig(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveConfig(ctx, id); !errors.Is(err, docker.ErrNotFound) {
		t.Fatalf("remove again: %v, want ErrNotFound", err)
	}
	if _, err := s.InspectConfig(ctx, "c1"); !errors.Is(err, docker.ErrNotFound) {
		t.Fatalf("inspect removed: %v, want ErrNotFound", err)
	}
}
