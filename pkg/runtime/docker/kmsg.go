package docker

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"syscall"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
)

// Why the kernel's log: Docker 20.10 reports a job's OOM kill only when
// containerd's OOM event reaches it before the exit event, and the shim
// sends the two apart and may exit before the OOM event is out. Under
// container churn a few percent of OOM kills then read as a plain SIGKILL
// (measured: 2 of 90). The kernel logs every memory-cgroup OOM kill with
// the victim's cgroup, which names the container, as it kills.

// DefaultKernelLog is where the kernel's log is read from.
const DefaultKernelLog = "/dev/kmsg"

// followKernelOOMs reads the kernel's log from its end until ctx ends and
// marks the job run of every container it sees OOM-killed (jobOOM). It
// returns at once with an error when the log cannot be read (not Linux,
// or a daemon in a container without the device): OOM kills are then
// known from Docker alone.
func (r *Runtime) followKernelOOMs(ctx context.Context, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("open the kernel log: %w", err)
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil { // only what comes from now on
		_ = f.Close()
		return fmt.Errorf("seek to the kernel log's end: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = f.Close() })
	defer func() {
		if stop() {
			_ = f.Close()
		}
	}()
	r.cfg.Log.Debug("jobs: following the kernel log for OOM kills")
	return followOOMs(ctx, f, func(id string) {
		r.cfg.Log.WithField("container", engine.ShortID(id)).Debug("kernel: OOM kill")
		r.jobOOM(id)
	})
}

// followOOMs reads kernel log records (one per line; a record's
// continuation lines start with a space) and calls killed with the ID of
// every container named as the victim's memory cgroup of an OOM kill.
func followOOMs(ctx context.Context, rd io.Reader, killed func(id string)) error {
	br := bufio.NewReaderSize(rd, 16<<10)
	for {
		line, err := br.ReadSlice('\n')
		if id := oomKilledContainer(line); id != "" {
			killed(id)
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, syscall.EPIPE):
			// Records were overwritten before they were read: go on
			// with the oldest one left.
		case ctx.Err() != nil:
			return nil
		default:
			return fmt.Errorf("read the kernel log: %w", err)
		}
	}
}

// oomKilledContainer returns the container ID in a kernel log line
// reporting an OOM kill ("oom-kill:constraint=…,task_memcg=/docker/ID,…",
// or …/docker-ID.scope with the systemd cgroup driver), else "".
func oomKilledContainer(line []byte) string {
	i := bytes.Index(line, []byte("oom-kill:"))
	if i < 0 {
		return ""
	}
	_, rest, ok := strings.Cut(string(line[i:]), "task_memcg=")
	if !ok {
		return ""
	}
	memcg, _, _ := strings.Cut(rest, ",")
	id := path.Base(strings.TrimSpace(memcg))
	id = strings.TrimSuffix(strings.TrimPrefix(id, "docker-"), ".scope")
	if len(id) != 64 || strings.Trim(id, "0123456789abcdef") != "" {
		return ""
	}
	return id
}
