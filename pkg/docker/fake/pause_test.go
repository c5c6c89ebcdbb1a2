package fake

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/docker"
)

// TestPauseUnpause: the fake pauses and thaws like Docker: only a running
// container can be paused and only a paused one unpaused (ErrConflict
// otherwise), each emits its event and is recorded.
func TestPauseUnpause(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := New("img")
	if _, err := e.CreateNetwork(ctx, "net", nil); err != nil {
		t.Fatal(err)
	}
	id, err := e.CreateContainer(ctx, docker.ContainerSpec{Name: "c", Image: "img", Network: "net", Labels: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	evs, _ := e.Events(ctx, []string{"container"}, map[string]string{"k": "v"})

	state := func() string {
		list, _ := e.ListContainers(ctx, nil)
		return list[0].State
	}
	if err := e.PauseContainer(ctx, id); !errors.Is(err, docker.ErrConflict) {
		t.Errorf("pause of a created container: %v, want ErrConflict", err)
	}
	if err := e.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := e.UnpauseContainer(ctx, id); !errors.Is(err, docker.ErrConflict) {
		t.Errorf("unpause of a running container: %v, want ErrConflict", err)
	}
	if err := e.PauseContainer(ctx, id); err != nil || state() != docker.StatePaused {
		t.Fatalf("pause: %v, state %s", err, state())
	}
	if err := e.PauseContainer(ctx, id); !errors.Is(err, docker.ErrConflict) {
		t.Errorf("pause of a paused container: %v, want ErrConflict", err)
	}
	if err := e.UnpauseContainer(ctx, id); err != nil || state() != docker.StateRunning {
		t.Fatalf("unpause: %v, state %s", err, state())
	}
	if err := e.PauseContainer(ctx, "nope"); !errors.Is(err, docker.ErrNotFound) {
		t.Errorf("pause of a missing container: %v, want ErrNotFound", err)
	}
	if err := e.UnpauseContainer(ctx, "nope"); !errors.Is(err, docker.ErrNotFound) {
		t.Errorf("unpause of a missing container: %v, want ErrNotFound", err)
	}

	if got, want := e.Actions(), []string{"create-network net", "create c", "start c", "pause c", "unpause c"}; !slices.Equal(got, want) {
		t.Errorf("actions %v, want %v", got, want)
	}
	var got []string
	for len(got) < 3 {
		select {
		case ev := <-evs:
			got = append(got, ev.Action)
		case <-time.After(time.Second):
			t.Fatalf("events %v, want start, pause, unpause", got)
		}
	}
	if want := []string{"start", "pause", "unpause"}; !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
}
