package fake

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/docker/docker/pkg/stdcopy"

	"github.com/dockerfaasd/dockerfaasd/pkg/docker"
)

// taskLogLine is one message a task wrote.
type taskLogLine struct {
	task, service, node string
	logLine
}

// WriteTaskLog appends text to the log of task taskID as if its process
// wrote it at ts, on stderr when stderr is true and on stdout otherwise. End
// text with "\n" for a complete line; text without one is a piece of a
// longer line. Readers following the task's service see it at once. An
// unknown task is docker.ErrNotFound.
func (s *Swarm) WriteTaskLog(taskID string, stderr bool, ts time.Time, text string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[taskID]
	if !ok {
		return fmt.Errorf("write log of task %s: %w", taskID, docker.ErrNotFound)
	}
	// As Docker writes them: sorted keys, query-escaped values.
	details := "com.docker.swarm.node.id=" + url.QueryEscape(t.NodeID) +
		",com.docker.swarm.service.id=" + url.QueryEscape(t.ServiceID) +
		",com.docker.swarm.task.id=" + url.QueryEscape(t.ID)
	s.taskLogs = append(s.taskLogs, taskLogLine{
		task: t.ID, service: t.ServiceID, node: t.NodeID,
		logLine: logLine{stderr: stderr, ts: ts, text: text, details: details},
	})
	s.logWake.notifyLocked()
	return nil
}

// SetNodeState sets a node's state as swarm reports it ("ready", "down"): a
// node that is not ready takes no new task, and the logs of its tasks
// cannot be read.
func (s *Swarm) SetNodeState(id, state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.nodes {
		if s.nodes[i].ID == id {
			s.nodes[i].State = state
		}
	}
}

// EndLogStreams ends every ServiceLogs stream being followed, as a manager
// that restarts or loses its leadership does.
func (s *Swarm) EndLogStreams() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logEpoch++
	s.logWake.notifyLocked()
}

// ServiceLogs implements docker.SwarmEngine as a manager does. The history
// comes task by task (in task ID order, so not in time order across tasks,
// as the nodes deliver them), each task's lines filtered by Since
// (inclusive) and cut to its last Tail. The lines of tasks on a node that
// is not ready are left out, and the history then ends with Docker's error
// frame. With Follow, the stream goes on with the lines the service's tasks
// write (tasks that start later included) in the order written, until ctx
// is done (or EndLogStreams is called): like swarm's, it stays open when the
// service is removed. It is multiplexed unless the service's spec has a TTY.
func (s *Swarm) ServiceLogs(ctx context.Context, id string, opts docker.LogOptions) (io.ReadCloser, error) {
	s.mu.Lock()
	if err := s.fail("service-logs", id); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	svc := s.lookupService(id)
	if svc == nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("logs of service %s: %w", id, docker.ErrNotFound)
	}
	svcID := svc.ID
	cs := svc.Spec.TaskTemplate.ContainerSpec
	tty := cs != nil && cs.TTY
	readable := func(l taskLogLine) bool {
		for _, n := range s.nodes {
			if n.ID == l.node {
				return n.State == "ready"
			}
		}
		return true
	}
	byTask := map[string][]logLine{}
	unavailable := map[string]bool{}
	for _, l := range s.taskLogs {
		switch {
		case l.service != svcID:
		case !readable(l):
			unavailable[l.node] = true
		default:
			byTask[l.task] = append(byTask[l.task], l.logLine)
		}
	}
	var history []logLine
	for _, task := range sortedKeys(byTask) {
		lines := sinceFilter(byTask[task], opts.Since)
		if opts.Tail > 0 && len(lines) > opts.Tail {
			lines = lines[len(lines)-opts.Tail:]
		}
		history = append(history, lines...)
	}
	next, epoch := len(s.taskLogs), s.logEpoch
	s.mu.Unlock()

	pr, pw := io.Pipe()
	go func() {
		stop := context.AfterFunc(ctx, func() { pw.CloseWithError(ctx.Err()) })
		defer stop()
		err := writeFrames(pw, history, tty)
		if err == nil && !opts.Follow && len(unavailable) > 0 {
			var why []string
			for _, n := range sortedKeys(unavailable) {
				why = append(why, "node "+n+" is not available")
			}
			_, err = fmt.Fprintf(stdcopy.NewStdWriter(pw, stdcopy.Systemerr),
				"Error grabbing logs: rpc error: code = Unknown desc = warning: incomplete log stream. some logs could not be retrieved for the following reasons: %s\n",
				strings.Join(why, ", "))
		}
		for opts.Follow && err == nil {
			s.mu.Lock()
			var fresh []logLine
			for _, l := range s.taskLogs[next:] {
				if l.service == svcID && readable(l) {
					fresh = append(fresh, l.logLine)
				}
			}
			fresh = sinceFilter(fresh, opts.Since)
			next = len(s.taskLogs)
			wake := s.logWake.waitLocked()
			ended := s.logEpoch != epoch
			s.mu.Unlock()
			if len(fresh) > 0 {
				err = writeFrames(pw, fresh, tty)
			}
			if ended {
				break
			}
			if len(fresh) > 0 {
				continue
			}
			select {
			case <-wake:
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		pw.CloseWithError(err) // nil: the reader sees io.EOF
	}()
	return pr, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
