package swarm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"

	"github.com/docker/docker/api/types/swarm"
	"github.com/openfaas/faas-provider/logs"
	"github.com/sirupsen/logrus"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
)

var _ runtime.LogStreamer = (*Runtime)(nil)

// followOverlap is how long before its history was read a follow stream
// asks swarm for lines again. One since filter serves the tasks of every
// node, whose clocks are not the daemon's: the live part starts a little
// early, and the lines the history sent are recognised by their marks and
// skipped. (A node whose clock is behind by more loses the lines it writes
// in that lag at the start of a follow.)
const followOverlap = 10 * time.Second

// historyBudget bounds the text of a history without a tail held for
// sorting (see sortedHistory).
const historyBudget = 16 << 20

// Stream implements runtime.LogStreamer from the function's service logs,
// which the manager gathers from the tasks of every node, with the
// semantics of the Docker runtime's:
//
//   - The history comes first: lines at or after req.Since from every task
//     of the service (old ones of swarm's task history included, so a
//     crashed task's last words are there), merged by timestamp. With
//     req.Tail > 0 only the last Tail lines of the merged history are sent:
//     the tail applies to the function, not to each task.
//   - Without req.Follow, Stream returns nil once the history is sent.
//   - With req.Follow, it then sends new lines as the tasks write them (in
//     arrival order across tasks), including tasks that start later (swarm
//     follows those itself), picks the service up when the function is
//     deployed again (polling every Config.LogPoll), and returns nil when
//     ctx is done or StopLogs is called. No line is sent twice or skipped
//     between the history and the live part (but see followOverlap).
//
// Each message's Instance names its task as /debug/reconcile does,
// SERVICE.SLOT@NODE (the node's hostname). A request's Instance matches
// that, the task ID or its first 12 characters.
//
// An error from emit ends the stream and is returned; so is a Docker error
// that prevents reading the history. When swarm cannot reach some node, the
// lines of the others are sent and the gap is logged. emit is called from
// one goroutine at a time.
func (r *Runtime) Stream(ctx context.Context, req logs.Request, emit func(logs.Message) error) error {
	ctx, release := r.logStops.Bind(ctx)
	defer release()

	s := &logStream{Runtime: r, req: req, ns: req.Namespace, tasks: map[string]taskName{}, marks: map[taskStream]*runtime.LogMark{}}
	// The consumer's errors end the stream as they are, whatever they
	// pass through.
	s.emit = func(m logs.Message) error {
		if err := emit(m); err != nil {
			return &emitError{err}
		}
		return nil
	}
	if s.ns == "" {
		s.ns = faas.DefaultNamespace
	}
	if req.Since != nil {
		s.since = *req.Since
	}
	s.log = r.cfg.Log.WithFields(logrus.Fields{"function": req.Name, "namespace": s.ns})

	svc, err := s.service(ctx)
	if err != nil {
		return streamEnd(ctx, err)
	}
	from := s.since
	if svc != nil {
		read := r.now()
		if err := s.history(ctx, *svc); err != nil || !req.Follow {
			return streamEnd(ctx, err)
		}
		from = s.overlap(read)
	}
	if !req.Follow {
		return nil
	}
	return streamEnd(ctx, s.follow(ctx, svc, from))
}

// streamEnd is the error a stream ends with: the consumer's as it gave it.
func streamEnd(ctx context.Context, err error) error {
	var ee *emitError
	if errors.As(err, &ee) {
		err = ee.err
	}
	return runtime.LogStreamEnd(ctx, err)
}

// StopLogs ends every log stream, running or future. Register it with
// http.Server.RegisterOnShutdown.
func (r *Runtime) StopLogs() { r.logStops.Stop() }

// logStream is one request being served.
type logStream struct {
	*Runtime
	req   logs.Request
	ns    string
	since time.Time
	emit  func(logs.Message) error
	log   logrus.FieldLogger
	// tasks names the tasks of the service seen so far; marks are how far
	// each stream of each task's log has been sent. Both are used by one
	// goroutine at a time.
	tasks map[string]taskName
	marks map[taskStream]*runtime.LogMark
}

// taskStream is one output stream of one task. Docker stamps a task's
// stdout and stderr lines in goroutines of their own, so a stderr line can
// be stamped after a stdout line that reaches the log later; a mark shared
// by both streams would then skip that stdout line for good.
type taskStream struct {
	task   string
	stderr bool
}

// taskName is how a task's lines are named, and whether req.Instance
// wants them.
type taskName struct {
	name   string
	wanted bool
}

// overlap is where a follow opened at t starts (see followOverlap).
func (s *logStream) overlap(t time.Time) time.Time {
	from := t.Add(-followOverlap)
	if from.Before(s.since) {
		return s.since
	}
	return from
}

// service finds the function's service of this instance; nil when there is
// none (not deployed yet, or being created again).
func (s *logStream) service(ctx context.Context) (*swarm.Service, error) {
	list, err := s.eng.ListServices(ctx, s.keyLabels(s.ns, s.req.Name))
	if err != nil {
		return nil, fmt.Errorf("find the service of %s.%s: %w", s.req.Name, s.ns, s.metrics.count("list-services", err))
	}
	want := s.serviceName(s.ns, s.req.Name)
	for i := range list {
		if list[i].Spec.Name == want {
			return &list[i], nil
		}
	}
	return nil, nil
}

// open opens the log stream of svc.
func (s *logStream) open(ctx context.Context, svc swarm.Service, opts engine.LogOptions) (io.ReadCloser, error) {
	rc, err := s.eng.ServiceLogs(ctx, svc.ID, opts)
	if err != nil && ctx.Err() == nil && !errors.Is(err, engine.ErrNotFound) {
		_ = s.metrics.count("service-logs", err)
	}
	return rc, err
}

// history sends the log of svc up to now, merged by time, and marks how far
// each stream of each task's log was read (lines dropped by the tail count
// as read).
func (s *logStream) history(ctx context.Context, svc swarm.Service) error {
	s.learnTasks(ctx, svc)
	rc, err := s.open(ctx, svc, engine.LogOptions{Since: s.since, Tail: s.req.Tail})
	if errors.Is(err, engine.ErrNotFound) {
		return nil // removed since it was listed: nothing to read
	}
	if err != nil {
		return fmt.Errorf("read logs of service %s: %w", svc.Spec.Name, err)
	}
	h := sortedHistory{tail: s.req.Tail, budget: historyBudget, emit: s.emit}
	err = s.read(ctx, svc, rc, func(ts taskStream, m logs.Message) error {
		s.mark(ts).Advance(m.Timestamp)
		return h.push(m)
	})
	if err != nil {
		return fmt.Errorf("read logs of service %s: %w", svc.Spec.Name, err)
	}
	return h.flush()
}

// mark is how far one stream of a task's log has been sent.
func (s *logStream) mark(ts taskStream) *runtime.LogMark {
	mk := s.marks[ts]
	if mk == nil {
		mk = &runtime.LogMark{}
		s.marks[ts] = mk
	}
	return mk
}

// sortedHistory puts a service's history in time order. Swarm sends the
// tasks' logs interleaved as the nodes deliver them, each task's in its own
// order but not in time order across tasks, so the history is held and
// sorted before it is sent. With a tail, only the newest 2×tail lines are
// held. Without one, a history of more than budget bytes of text is sent
// in sorted chunks, so memory stays bounded: each chunk in time order, but
// a later chunk can hold lines older than the end of an earlier one.
type sortedHistory struct {
	tail   int
	budget int
	emit   func(logs.Message) error
	buf    []logs.Message
	bytes  int
}

func (h *sortedHistory) push(m logs.Message) error {
	h.buf = append(h.buf, m)
	h.bytes += len(m.Text)
	switch {
	case h.tail > 0 && len(h.buf) >= 2*h.tail:
		h.sort()
		h.buf = append(h.buf[:0], h.buf[len(h.buf)-h.tail:]...)
	case h.tail <= 0 && h.bytes > h.budget:
		h.sort()
		half := len(h.buf) / 2
		if err := h.send(h.buf[:half]); err != nil {
			return err
		}
		h.buf = append(h.buf[:0], h.buf[half:]...)
		h.bytes = 0
		for _, m := range h.buf {
			h.bytes += len(m.Text)
		}
	}
	return nil
}

// flush sends what is held: the last tail lines, or all.
func (h *sortedHistory) flush() error {
	h.sort()
	if h.tail > 0 && len(h.buf) > h.tail {
		h.buf = h.buf[len(h.buf)-h.tail:]
	}
	return h.send(h.buf)
}

// sort is stable: lines stamped alike stay in the order swarm sent them.
func (h *sortedHistory) sort() {
	sort.SliceStable(h.buf, func(i, j int) bool { return h.buf[i].Timestamp.Before(h.buf[j].Timestamp) })
}

func (h *sortedHistory) send(msgs []logs.Message) error {
	for _, m := range msgs {
		if err := h.emit(m); err != nil {
			return err
		}
	}
	return nil
}

// emitError is an error of the consumer: it ends the stream (a follow
// stream does not open the service's log again) and is returned as it is.
type emitError struct{ err error }

func (e *emitError) Error() string { return e.err.Error() }
func (e *emitError) Unwrap() error { return e.err }

// follow streams the lines of svc (nil: none yet) from "from" on, skipping
// those the marks say were sent, until ctx is done. It opens the service's
// log again when the stream ends, and the new service's when the function
// is deployed again.
func (s *logStream) follow(ctx context.Context, svc *swarm.Service, from time.Time) error {
	for {
		if svc == nil {
			var found bool
			if svc, found = s.awaitService(ctx, ""); !found {
				return nil
			}
			// A new service: all its lines are new.
			clear(s.marks)
			clear(s.tasks)
			from = s.since
		}
		// Watch the service while its log is read: swarm keeps the stream
		// open when the service is removed, and a function deployed again
		// is another service.
		rctx, cancel := context.WithCancel(ctx)
		watched := make(chan struct{})
		var next *swarm.Service
		var changed bool
		go func() {
			defer close(watched)
			if next, changed = s.awaitService(rctx, svc.ID); changed {
				cancel()
			}
		}()
		err := s.followService(rctx, *svc, from)
		ended := s.now()
		cancel()
		<-watched
		var ee *emitError
		switch {
		case errors.As(err, &ee):
			return err
		case ctx.Err() != nil:
			return nil
		case changed:
			svc = next // nil when it was removed
			continue
		case err != nil:
			s.log.WithError(err).Warn("log stream: reading the service's log failed; opening it again")
		default:
			s.log.Debug("log stream: swarm ended the service's log; opening it again")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(s.cfg.LogPoll):
		}
		from = s.overlap(ended)
	}
}

// awaitService polls, every LogPoll, until the function's service is other
// than the one with ID cur ("" for none) and returns it (nil when it is
// gone) and true, or false when ctx is done first. Failures are logged and
// polled again.
func (s *logStream) awaitService(ctx context.Context, cur string) (*swarm.Service, bool) {
	tick := time.NewTicker(s.cfg.LogPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, false
		case <-tick.C:
		}
		svc, err := s.service(ctx)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				s.log.WithError(err).Warn("log stream: looking for the function's service failed; trying again")
			}
		case svc == nil && cur != "":
			return nil, true
		case svc != nil && svc.ID != cur:
			return svc, true
		}
	}
}

// followService streams the lines of svc from "from" on until ctx is done
// or swarm ends the stream.
func (s *logStream) followService(ctx context.Context, svc swarm.Service, from time.Time) error {
	rc, err := s.open(ctx, svc, engine.LogOptions{Since: from, Follow: true})
	if err != nil {
		return fmt.Errorf("follow logs of service %s: %w", svc.Spec.Name, err)
	}
	for _, mk := range s.marks {
		mk.Replay()
	}
	return s.read(ctx, svc, rc, func(ts taskStream, m logs.Message) error {
		if s.mark(ts).Seen(m.Timestamp) {
			return nil
		}
		return s.emit(m)
	})
}

// read parses one log stream of svc into messages for send, with the
// task and stream each came from, dropping those of other instances than
// req.Instance. It closes rc. When swarm says in the stream that it could
// not read some node, that is logged: the lines of the others are good.
func (s *logStream) read(ctx context.Context, svc swarm.Service, rc io.ReadCloser, send func(ts taskStream, m logs.Message) error) error {
	defer rc.Close()
	f := engine.LogFormat{Details: true, TTY: svc.Spec.TaskTemplate.ContainerSpec != nil && svc.Spec.TaskTemplate.ContainerSpec.TTY}
	err := engine.ReadLogs(rc, f, func(l engine.LogLine) error {
		if !s.since.IsZero() && l.Time.Before(s.since) {
			return nil
		}
		tn := s.taskName(ctx, svc, l.Task, l.Node)
		if !tn.wanted {
			return nil
		}
		return send(taskStream{l.Task, l.Stderr}, logs.Message{Name: s.req.Name, Namespace: s.ns, Instance: tn.name, Timestamp: l.Time, Text: l.Text})
	})
	if errors.Is(err, engine.ErrLogsIncomplete) {
		s.log.WithError(err).Warn("log stream: swarm could not deliver the logs of every task")
		return nil
	}
	return err
}

// taskName names a task of svc, learning the service's tasks again for
// one not seen yet (it started since).
func (s *logStream) taskName(ctx context.Context, svc swarm.Service, task, node string) taskName {
	if tn, ok := s.tasks[task]; ok {
		return tn
	}
	s.learnTasks(ctx, svc)
	if tn, ok := s.tasks[task]; ok {
		return tn
	}
	// Not listed (listing failed, or swarm forgot the task already):
	// named the way `docker service logs` names a task without a slot.
	tn := s.named(task, svc.Spec.Name+"."+engine.ShortID(task)+"@"+s.nodeName(node))
	s.tasks[task] = tn
	return tn
}

// learnTasks names the tasks of svc as /debug/reconcile does, and forgets
// the names and marks of tasks swarm no longer keeps, so a long follow of
// a crash-looping function does not grow. Best effort: a failure is
// logged.
func (s *logStream) learnTasks(ctx context.Context, svc swarm.Service) {
	list, err := s.eng.ListTasks(ctx, svc.ID)
	if err != nil {
		if ctx.Err() == nil {
			s.log.WithError(s.metrics.count("list-tasks", err)).Warn("log stream: listing the service's tasks failed; naming them by ID")
		}
		return
	}
	s.rememberNodes(ctx, list)
	keep := make(map[string]bool, len(list))
	for _, t := range list {
		keep[t.ID] = true
		s.tasks[t.ID] = s.named(t.ID, svc.Spec.Name+"."+strconv.Itoa(t.Slot)+"@"+s.nodeName(t.NodeID))
	}
	for id := range s.tasks {
		if !keep[id] {
			delete(s.tasks, id)
			delete(s.marks, taskStream{id, false})
			delete(s.marks, taskStream{id, true})
		}
	}
}

// rememberNodes learns the hostnames of the nodes of tasks, when one is
// not known yet.
func (s *logStream) rememberNodes(ctx context.Context, tasks []engine.Task) {
	s.mu.Lock()
	unknown := false
	for _, t := range tasks {
		if _, ok := s.nodes[t.NodeID]; t.NodeID != "" && !ok {
			unknown = true
		}
	}
	s.mu.Unlock()
	if unknown {
		s.refreshNodes(ctx)
	}
}

// named is the name of a task and whether req.Instance wants it.
func (s *logStream) named(task, name string) taskName {
	want := s.req.Instance
	return taskName{name: name, wanted: want == "" || want == name || want == task || want == engine.ShortID(task)}
}
