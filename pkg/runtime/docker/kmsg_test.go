package docker

import (
	"context"
	"io"
	"slices"
	"syscall"
	"testing"
)

const oomID = "758004f33ba0b726ad07e38dbab49ac3f2790aa5a36335969c3410cc8fb921a6"

func TestOOMKilledContainer(t *testing.T) {
	tests := []struct {
		name, line, want string
	}{
		{"cgroupfs driver", "4,315402,24166087305,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=" + oomID +
			",mems_allowed=0,oom_memcg=/docker/" + oomID + ",task_memcg=/docker/" + oomID + ",task=fn,pid=13546,uid=0\n", oomID},
		{"systemd driver", "4,9,1,-;oom-kill:constraint=CONSTRAINT_MEMCG,oom_memcg=/system.slice/docker-" + oomID +
			".scope,task_memcg=/system.slice/docker-" + oomID + ".scope,task=fn,pid=1,uid=0\n", oomID},
		{"last field", "4,9,1,-;oom-kill:constraint=CONSTRAINT_MEMCG,task_memcg=/docker/" + oomID + "\n", oomID},
		{"the kill line names no cgroup", "3,315403,24166087340,-;Memory cgroup out of memory: Killed process 13546 (fn)\n", ""},
		{"not a container", "4,9,1,-;oom-kill:constraint=CONSTRAINT_MEMCG,task_memcg=/user.slice/user-0.slice,task=sh\n", ""},
		{"host OOM", "4,9,1,-;oom-kill:constraint=CONSTRAINT_NONE,task_memcg=/,task=java,pid=1\n", ""},
		{"other line", "6,315394,24144500327,-;vethe53b2d5: entered promiscuous mode\n", ""},
		{"short ID", "4,9,1,-;oom-kill:task_memcg=/docker/758004f33ba0,task=fn\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := oomKilledContainer([]byte(tt.line)); got != tt.want {
				t.Errorf("oomKilledContainer(%q) = %q, want %q", tt.line, got, tt.want)
			}
		})
	}
}

// records is a kernel log device: each Read returns the next record (or
// error), then io.EOF.
type records struct {
	next []struct {
		rec string
		err error
	}
}

func (r *records) Read(p []byte) (int, error) {
	if len(r.next) == 0 {
		return 0, io.EOF
	}
	n := r.next[0]
	r.next = r.next[1:]
	return copy(p, n.rec), n.err
}

func TestFollowOOMsGoesOnAfterOverwrittenRecords(t *testing.T) {
	other := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	rd := &records{next: []struct {
		rec string
		err error
	}{
		{rec: "6,1,1,-;eth0: renamed from veth1\n"},
		{rec: "4,2,2,-;oom-kill:constraint=CONSTRAINT_MEMCG,task_memcg=/docker/" + oomID + ",task=fn,pid=9,uid=0\n SUBSYSTEM=memory\n"},
		{err: syscall.EPIPE}, // records lost while nobody read
		{rec: "4,9,9,-;oom-kill:constraint=CONSTRAINT_MEMCG,task_memcg=/docker/" + other + ",task=fn,pid=10,uid=0\n"},
	}}
	var got []string
	err := followOOMs(context.Background(), rd, func(id string) { got = append(got, id) })
	if !slices.Equal(got, []string{oomID, other}) {
		t.Errorf("OOM-killed containers %v, want %s then %s", got, oomID, other)
	}
	if err == nil {
		t.Error("the end of the log is not reported")
	}
}

// The kernel's word marks the job run of the container it names, as
// Docker's oom event does: TestRunOnceOOMKilledFromALateOOMEvent covers
// how a run reads it.
func TestFollowKernelOOMsUnreadableLog(t *testing.T) {
	f := newFixture(t)
	if err := f.rt.followKernelOOMs(context.Background(), t.TempDir()+"/no-such-device"); err == nil {
		t.Error("an unreadable kernel log is not reported")
	}
}
