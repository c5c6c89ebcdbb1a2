package docker

import (
	"errors"
	"testing"

	"github.com/docker/docker/api/types/swarm"
)

func TestWrapSwarm(t *testing.T) {
	tests := []struct {
		msg  string
		want error
	}{
		{"This node is not a swarm manager. Use \"docker swarm init\"", ErrNotManager},
		{"rpc error: code = Unknown desc = update out of sequence", ErrConflict},
		{"rpc error: code = InvalidArgument desc = secret 'x' is in use by the following service: fn", ErrConflict},
		{"rpc error: code = AlreadyExists desc = secret x already exists", ErrConflict},
	}
	for _, tt := range tests {
		if err := wrapSwarm("op", errors.New(tt.msg)); !errors.Is(err, tt.want) {
			t.Errorf("%q → %v, want %v", tt.msg, err, tt.want)
		}
	}
	if wrapSwarm("op", nil) != nil {
		t.Error("nil must stay nil")
	}
}

func TestTaskOf(t *testing.T) {
	st := swarm.Task{
		ID: "t1", ServiceID: "s1", NodeID: "n1", Slot: 2, DesiredState: swarm.TaskStateRunning,
		Status: swarm.TaskStatus{
			State: swarm.TaskStateRejected, Err: "No such image: example/fn:1",
			ContainerStatus: &swarm.ContainerStatus{ContainerID: "c1"},
		},
		Spec: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Labels: map[string]string{LabelSpecHash: "h"}}},
		NetworksAttachments: []swarm.NetworkAttachment{
			{Network: swarm.Network{Spec: swarm.NetworkSpec{Annotations: swarm.Annotations{Name: "fn-net"}}}, Addresses: []string{"10.0.1.5/24"}},
			{Network: swarm.Network{Spec: swarm.NetworkSpec{Annotations: swarm.Annotations{Name: "empty"}}}},
		},
	}
	got := taskOf(st)
	if got.Addrs["fn-net"] != "10.0.1.5" || len(got.Addrs) != 1 || !got.ImageMissing || got.State != TaskRejected ||
		got.Labels[LabelSpecHash] != "h" || got.ContainerID != "c1" || got.Slot != 2 {
		t.Errorf("taskOf = %+v", got)
	}
	for msg, want := range map[string]bool{
		"pull access denied for x, repository does not exist": true,
		"manifest unknown":                  true,
		"task: non-zero exit (1)":           false,
		"no suitable node (scheduling ...)": false,
	} {
		if taskImageMissing(msg) != want {
			t.Errorf("taskImageMissing(%q) != %v", msg, want)
		}
	}
}
