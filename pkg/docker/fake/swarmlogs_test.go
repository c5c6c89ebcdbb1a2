package fake

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/docker"
)

// TestFakeSwarmServiceLogs: the fake's service logs read as Docker's do
// (docker.ReadLogs with details), task by task, since and tail per task.
func TestFakeSwarmServiceLogs(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC)
	s := NewSwarm("img")
	if _, err := s.CreateOverlayNetwork(ctx, "net", nil, false); err != nil {
		t.Fatal(err)
	}
	id, err := s.CreateService(ctx, service("fn", "h1", 2))
	if err != nil {
		t.Fatal(err)
	}
	ts := s.Tasks("fn")
	if err := s.WriteTaskLog("nope", false, t0, "x\n"); !errors.Is(err, docker.ErrNotFound) {
		t.Errorf("unknown task: %v", err)
	}
	for i := range 6 {
		// Task 2 writes first: the history still comes task by task.
		tk := ts[1-i%2]
		if err := s.WriteTaskLog(tk.ID, i == 5, t0.Add(time.Duration(i)*time.Second), fmt.Sprintf("line %d\n", i)); err != nil {
			t.Fatal(err)
		}
	}
	read := func(opts docker.LogOptions) (lines []string, err error) {
		rc, err := s.ServiceLogs(ctx, id, opts)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		err = docker.ReadLogs(rc, docker.LogFormat{Details: true}, func(l docker.LogLine) error {
			for i, tk := range ts {
				if tk.ID == l.Task && tk.NodeID == l.Node {
					lines = append(lines, fmt.Sprintf("%d:%s@%d", i, l.Text, int(l.Time.Sub(t0).Seconds())))
				}
			}
			return nil
		})
		return lines, err
	}
	for _, tc := range []struct {
		name string
		opts docker.LogOptions
		want string
	}{
		{"task by task", docker.LogOptions{}, "0:line 1@1 0:line 3@3 0:line 5@5 1:line 0@0 1:line 2@2 1:line 4@4"},
		{"tail per task", docker.LogOptions{Tail: 1}, "0:line 5@5 1:line 4@4"},
		{"since inclusive", docker.LogOptions{Since: t0.Add(3 * time.Second)}, "0:line 3@3 0:line 5@5 1:line 4@4"},
	} {
		got, err := read(tc.opts)
		if err != nil || strings.Join(got, " ") != tc.want {
			t.Errorf("%s: got %v, %v; want %s", tc.name, got, err, tc.want)
		}
	}

	s.SetNodeState(ts[0].NodeID, "down")
	if got, err := read(docker.LogOptions{}); !errors.Is(err, docker.ErrLogsIncomplete) || len(got) != 3 {
		t.Errorf("a node down: got %v, %v; want task 2's lines and ErrLogsIncomplete", got, err)
	}
	s.SetNodeState(ts[0].NodeID, "ready")

	// Follow: the lines written after, of this service only, until the
	// stream is ended.
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rc, err := s.ServiceLogs(fctx, id, docker.LogOptions{Tail: 1, Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 10)
	go func() {
		defer close(lines)
		_ = docker.ReadLogs(rc, docker.LogFormat{Details: true}, func(l docker.LogLine) error {
			lines <- l.Text
			return nil
		})
	}()
	if err := s.WriteTaskLog(ts[0].ID, false, t0, "live\n"); err != nil {
		t.Fatal(err)
	}
	s.EndLogStreams()
	var got []string
	for l := range lines {
		got = append(got, l)
	}
	if strings.Join(got, ",") != "line 5,line 4,live" {
		t.Errorf("follow: got %v", got)
	}

	if _, err := s.ServiceLogs(ctx, "missing", docker.LogOptions{}); !errors.Is(err, docker.ErrNotFound) {
		t.Errorf("missing service: %v", err)
	}
}
