package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/openfaas/faas-provider/logs"
	"github.com/sirupsen/logrus"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
)

// LogEngine is what the log service needs from Docker; every
// engine.Engine has it.
type LogEngine interface {
	// ListContainers lists containers in any state carrying all of labels.
	ListContainers(ctx context.Context, labels map[string]string) ([]engine.Container, error)
	// ContainerLogs returns the multiplexed, timestamped log stream of a
	// container; it ends after the history (or when a followed container
	// stops) or when ctx is done.
	ContainerLogs(ctx context.Context, id string, opts engine.LogOptions) (io.ReadCloser, error)
}

var _ LogEngine = (engine.Engine)(nil)

// Stream implements runtime.LogStreamer (see Logs.Stream).
func (r *Runtime) Stream(ctx context.Context, req logs.Request, emit func(logs.Message) error) error {
	return r.logs.Stream(ctx, req, emit)
}

// LogsConfig tunes the log service. Zero values get defaults.
type LogsConfig struct {
	// Instance is the daemon's INSTANCE: only containers carrying it are read.
	Instance string
	// Poll is how often a follow stream looks for replicas that started
	// after it began (default 1s).
	Poll time.Duration
	Log  logrus.FieldLogger
}

// Logs reads function logs from Docker: the stdout and stderr of every
// replica container of a function, as OpenFaaS log messages. It is the
// runtime side of GET /system/logs; the API consumes it through an
// interface of its own and never talks to Docker.
//
// Each message's Instance is the container's short ID (12 hex digits): the
// replica's hostname, and what `docker ps` shows. A request's Instance
// matches that, the full ID or the container name.
type Logs struct {
	engine LogEngine
	cfg    LogsConfig
	stops  *runtime.LogStops
	// jobs holds the stderr lines of job runs, whose containers are gone
	// (joblogs.go); nil when there are none.
	jobs *jobLogs
}

// NewLogs returns a log service reading through engine.
func NewLogs(engine LogEngine, cfg LogsConfig) *Logs {
	if cfg.Instance == "" {
		cfg.Instance = runtime.DefaultInstance
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Log == nil {
		cfg.Log = logrus.StandardLogger()
	}
	return &Logs{engine: engine, cfg: cfg, stops: runtime.NewLogStops()}
}

// Stop ends every stream, running or future. Register it with
// http.Server.RegisterOnShutdown.
func (l *Logs) Stop() { l.stops.Stop() }

// Stream sends the logs of the function req.Name in req.Namespace
// (faas.DefaultNamespace when empty) to emit, one message per line, and
// returns when the stream is over:
//
//   - The history comes first: lines at or after req.Since from every
//     replica (only req.Instance when set, in any state, so a crashed
//     replica's last words are included), merged by timestamp. With
//     req.Tail > 0 only the last Tail lines of the merged history are sent:
//     the tail applies to the function, not to each replica. (Docker
//     counts each 16 KiB piece of a longer line as a line for the tail, so
//     such lines can leave fewer than Tail lines.)
//   - Without req.Follow, Stream returns nil once the history is sent.
//   - With req.Follow, it then sends new lines as the replicas write them
//     (in arrival order across replicas), picks up replicas that start
//     later (polling every LogsConfig.Poll), and returns nil when ctx is
//     done or Stop is called. No line is sent twice or skipped between the
//     history and the live part.
//
// An error from emit ends the stream and is returned; so is a Docker error
// that prevents reading the history. emit is called from one goroutine at a
// time.
func (l *Logs) Stream(ctx context.Context, req logs.Request, emit func(logs.Message) error) error {
	ctx, release := l.stops.Bind(ctx)
	defer release()

	s := &logStream{Logs: l, req: req, ns: req.Namespace, emit: emit}
	if s.ns == "" {
		s.ns = faas.DefaultNamespace
	}
	if req.Since != nil {
		s.since = *req.Since
	}
	s.log = l.cfg.Log.WithFields(logrus.Fields{"function": req.Name, "namespace": s.ns})

	// Job runs' lines are taken with their subscription at once, so the
	// history and the follow neither miss nor repeat one.
	var jobLines []logs.Message
	var jobFollow <-chan logs.Message
	if l.jobs != nil {
		var unsubscribe func()
		jobLines, jobFollow, unsubscribe = l.jobs.history(faas.Key(s.ns, req.Name), req.Follow)
		defer unsubscribe()
		jobLines = s.matching(jobLines)
	}
	list, err := s.replicas(ctx)
	if err != nil {
		return runtime.LogStreamEnd(ctx, err)
	}
	marks, err := s.history(ctx, list, jobLines)
	if err != nil || !req.Follow {
		return runtime.LogStreamEnd(ctx, err)
	}
	return runtime.LogStreamEnd(ctx, s.follow(ctx, list, marks, jobFollow))
}

// matching keeps the job lines the request asks for: at or after since,
// of the instance asked for (a run's container short ID).
func (s *logStream) matching(lines []logs.Message) []logs.Message {
	out := lines[:0]
	for _, m := range lines {
		if s.wants(m) {
			out = append(out, m)
		}
	}
	return out
}

func (s *logStream) wants(m logs.Message) bool {
	return (s.since.IsZero() || !m.Timestamp.Before(s.since)) && (s.req.Instance == "" || s.req.Instance == m.Instance)
}

// logStream is one request being served.
type logStream struct {
	*Logs
	req   logs.Request
	ns    string
	since time.Time
	emit  func(logs.Message) error
	log   logrus.FieldLogger
}

// replicas lists the function's containers (matching req.Instance), sorted
// by name for a stable merge order.
func (s *logStream) replicas(ctx context.Context) ([]engine.Container, error) {
	list, err := s.engine.ListContainers(ctx, functionLabels(s.cfg.Instance, s.ns, s.req.Name))
	if err != nil {
		return nil, fmt.Errorf("list replicas of %s.%s: %w", s.req.Name, s.ns, err)
	}
	out := list[:0]
	for _, c := range list {
		if s.req.Instance == "" || s.req.Instance == engine.ShortID(c.ID) || s.req.Instance == c.ID || s.req.Instance == c.Name {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// source is one stream of a replica's log (or the job runs' lines) being
// read by its own goroutine.
type source struct {
	key  streamKey // the container's ID ("jobs" for job runs) and stream
	msgs chan logs.Message
	err  error // set before msgs is closed
}

// streamKey is one output stream of one container: how far a log was read
// is kept per stream. Docker stamps each stream's lines in a goroutine of
// its own, so a stderr line can be stamped after a stdout line that
// reaches the log file later; a mark shared by both streams would then
// skip that stdout line for good.
type streamKey struct {
	id      string
	streams engine.LogStreams
}

// followedStreams are the streams a replica is followed by, each from its
// own mark.
var followedStreams = [...]engine.LogStreams{engine.StdoutOnly, engine.StderrOnly}

// streamMarks are how far the history read each stream of each replica,
// and the oldest line it read of each replica.
type streamMarks struct {
	marks  map[streamKey]runtime.LogMark
	oldest map[string]time.Time
}

// history sends the merged history of list and returns how far each
// stream of each replica was read (lines dropped by the tail count as read).
func (s *logStream) history(ctx context.Context, list []engine.Container, jobLines []logs.Message) (streamMarks, error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	var srcs []*source
	if len(jobLines) > 0 {
		// The job runs' lines are one more source of the merge, in time
		// order already.
		src := &source{key: streamKey{id: "jobs"}, msgs: make(chan logs.Message, len(jobLines))}
		for _, m := range jobLines {
			src.msgs <- m
		}
		close(src.msgs)
		srcs = append(srcs, src)
	}
	// Each replica's stdout and stderr are read apart: each is in time
	// order, while the two together, as Docker recorded them, need not be
	// (see engine.BothStreams).
	for _, c := range list {
		for _, streams := range followedStreams {
			rc, err := s.engine.ContainerLogs(ctx, c.ID, engine.LogOptions{Since: s.since, Tail: s.req.Tail, Streams: streams})
			if errors.Is(err, engine.ErrNotFound) {
				break // removed since it was listed: nothing to read
			}
			if err != nil {
				return streamMarks{}, fmt.Errorf("read logs of %s: %w", engine.ShortID(c.ID), err)
			}
			src := &source{key: streamKey{c.ID, streams}, msgs: make(chan logs.Message, 64)}
			srcs = append(srcs, src)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer close(src.msgs)
				src.err = s.read(ctx, c, rc, func(m logs.Message) error {
					select {
					case src.msgs <- m:
						return nil
					case <-ctx.Done():
						return ctx.Err()
					}
				})
			}()
		}
	}

	// A k-way merge: each stream is in time order already, so only the
	// head of each is held, and memory stays bounded without a tail.
	heads := make([]*logs.Message, len(srcs))
	next := func(i int) error {
		heads[i] = nil
		select {
		case m, ok := <-srcs[i].msgs:
			if ok {
				heads[i] = &m
				return nil
			}
			if err := srcs[i].err; err != nil {
				return fmt.Errorf("read logs of %s: %w", engine.ShortID(srcs[i].key.id), err)
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for i := range srcs {
		if err := next(i); err != nil {
			return streamMarks{}, err
		}
	}
	sm := streamMarks{marks: map[streamKey]runtime.LogMark{}, oldest: map[string]time.Time{}}
	ring := runtime.LogTail{Max: s.req.Tail}
	for {
		best := -1
		for i, h := range heads {
			if h != nil && (best < 0 || h.Timestamp.Before(heads[best].Timestamp)) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		m := *heads[best]
		key := srcs[best].key
		mk := sm.marks[key]
		mk.Advance(m.Timestamp)
		sm.marks[key] = mk
		if _, ok := sm.oldest[key.id]; !ok {
			sm.oldest[key.id] = m.Timestamp // merged in time order: the first is the oldest
		}
		if ring.Max > 0 {
			ring.Push(m)
		} else if err := s.emit(m); err != nil {
			return streamMarks{}, err
		}
		if err := next(best); err != nil {
			return streamMarks{}, err
		}
	}
	for _, m := range ring.Lines() {
		if err := s.emit(m); err != nil {
			return streamMarks{}, err
		}
	}
	return sm, nil
}

// follow streams new lines of the known replicas (starting after their
// marks) and of replicas that appear later, until ctx is done.
func (s *logStream) follow(ctx context.Context, known []engine.Container, sm streamMarks, jobLines <-chan logs.Message) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	out := make(chan logs.Message, 64)
	started := map[string]bool{}
	start := func(c engine.Container) {
		// A container that never ran has no log yet, and Docker would end
		// a follow on it at once: look again when it runs.
		if started[c.ID] || c.State == engine.StateCreated {
			return
		}
		started[c.ID] = true
		for _, streams := range followedStreams {
			mk := sm.from(streamKey{c.ID, streams}, s.since, s.req.Tail > 0)
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.followOne(ctx, c, streams, mk, out)
			}()
		}
	}
	for _, c := range known {
		start(c)
	}

	tick := time.NewTicker(s.cfg.Poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-out:
			if err := s.emit(m); err != nil {
				return err
			}
		case m := <-jobLines: // nil without job lines: never ready
			if !s.wants(m) {
				continue
			}
			if err := s.emit(m); err != nil {
				return err
			}
		case <-tick.C:
			list, err := s.replicas(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				s.log.WithError(err).Warn("log stream: listing replicas failed; trying again")
				continue
			}
			present := make(map[string]bool, len(list))
			for _, c := range list {
				present[c.ID] = true
				start(c)
			}
			// Forget removed replicas, so a long stream does not grow.
			for id := range started {
				if !present[id] {
					delete(started, id)
				}
			}
		}
	}
}

// from is where the follow of one stream starts: after the lines the
// history read of it. A stream it read nothing of starts at since; with a
// tail, at the oldest line it read of the replica, since Docker's tail
// (of both streams together) may have left that stream's older lines out.
func (sm streamMarks) from(key streamKey, since time.Time, tail bool) runtime.LogMark {
	if mk, ok := sm.marks[key]; ok {
		return mk
	}
	if oldest, ok := sm.oldest[key.id]; ok && tail {
		return runtime.MarkAt(oldest)
	}
	return runtime.MarkAt(since)
}

// followOne streams one stream of one replica's log from mk on; it returns
// when the replica stops or ctx is done. Errors are logged: the other
// replicas' lines keep coming.
func (s *logStream) followOne(ctx context.Context, c engine.Container, streams engine.LogStreams, mk runtime.LogMark, out chan<- logs.Message) {
	log := s.log.WithField("container", engine.ShortID(c.ID))
	rc, err := s.engine.ContainerLogs(ctx, c.ID, engine.LogOptions{Since: mk.Time(), Follow: true, Streams: streams})
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, engine.ErrNotFound) {
			log.WithError(err).Warn("log stream: following replica failed")
		}
		return
	}
	mk.Replay()
	err = s.read(ctx, c, rc, func(m logs.Message) error {
		if mk.Seen(m.Timestamp) {
			return nil // sent with the history already
		}
		select {
		case out <- m:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	if err != nil && ctx.Err() == nil {
		log.WithError(err).Warn("log stream: reading replica failed")
	}
}

// read parses the log stream rc of container c into messages for send,
// which sees them in the order Docker recorded them. It closes rc.
func (s *logStream) read(ctx context.Context, c engine.Container, rc io.ReadCloser, send func(logs.Message) error) error {
	defer rc.Close()
	instance := engine.ShortID(c.ID)
	return engine.ReadLogs(rc, engine.LogFormat{}, func(l engine.LogLine) error {
		if !s.since.IsZero() && l.Time.Before(s.since) {
			return nil
		}
		return send(logs.Message{Name: s.req.Name, Namespace: s.ns, Instance: instance, Timestamp: l.Time, Text: l.Text})
	})
}
