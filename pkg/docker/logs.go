package docker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
)

// LogOptions selects the log lines ContainerLogs returns.
type LogOptions struct {
	// Since drops lines written before it; zero keeps all. Like Docker's
	// own filter it is inclusive: a line stamped exactly Since is kept.
	Since time.Time
	// Tail keeps only the last Tail lines of the history; <= 0 keeps all.
	Tail int
	// Follow keeps the stream open for new lines for as long as the
	// container runs. On a container that is not running the stream ends
	// after the history, as with `docker logs -f`.
	Follow bool
	// Streams selects stdout, stderr or (the zero value) both. Like
	// Docker, the tail is taken before this filter: Tail N of one stream
	// is that stream's lines among the last N of both.
	Streams LogStreams
}

// LogStreams selects which of a container's output streams a log read
// returns.
type LogStreams int

const (
	// BothStreams is stdout and stderr, in the order Docker recorded them.
	// That order is not always time order: Docker stamps each stream's
	// lines in a goroutine of its own, so a stdout line can be recorded
	// after a stderr line stamped a few microseconds later. Each stream on
	// its own is in time order.
	BothStreams LogStreams = iota
	// StdoutOnly is the container's stdout.
	StdoutOnly
	// StderrOnly is the container's stderr.
	StderrOnly
)

// ContainerLogs returns a container's stdout and stderr as Docker sends
// them: the multiplexed stream (demultiplex it with pkg/stdcopy; one frame
// per log message) with every message prefixed by its RFC 3339 timestamp
// with nanoseconds and a space. The raw stream is returned rather than lines
// so that stdout and stderr stay in the order Docker recorded them. The
// stream ends after the history (or, with Follow, when the container stops)
// or when ctx is done; the caller closes it. A missing container is
// ErrNotFound.
func (d *Client) ContainerLogs(ctx context.Context, id string, opts LogOptions) (io.ReadCloser, error) {
	if err := d.ready(ctx); err != nil {
		return nil, err
	}
	rc, err := d.c.ContainerLogs(ctx, id, opts.api(false))
	if err != nil {
		return nil, wrap("logs of container "+ShortID(id), err)
	}
	return rc, nil
}

// api is opts as the Docker API takes them, always timestamped (ReadLogs needs the timestamps; the runtimes merge by them).
func (opts LogOptions) api(details bool) container.LogsOptions {
	o := container.LogsOptions{ShowStdout: opts.Streams != StderrOnly, ShowStderr: opts.Streams != StdoutOnly, Timestamps: true, Details: details, Follow: opts.Follow, Tail: "all"}
	if !opts.Since.IsZero() {
		// The client turns RFC 3339 into Docker's "seconds.nanoseconds",
		// keeping nanosecond precision.
		o.Since = opts.Since.UTC().Format(time.RFC3339Nano)
	}
	if opts.Tail > 0 {
		o.Tail = strconv.Itoa(opts.Tail)
	}
	return o
}

// ErrLogsIncomplete is wrapped by the error of ReadLogs when Docker said,
// inside the stream, that it could not deliver every log (for service logs:
// a node that is not available, a task not scheduled yet). The lines read
// are good; some are missing.
var ErrLogsIncomplete = errors.New("docker could not deliver every log")

// maxPartial bounds how much of one over-long line (which Docker records in
// 16 KiB pieces) is joined before it is sent as a line anyway.
const maxPartial = 1 << 20

// maxFrame bounds one frame of a multiplexed stream: a log message is at
// most a 16 KiB piece plus its timestamp and details, so anything near this
// is a corrupt stream rather than something to allocate for.
const maxFrame = 8 << 20

// Details Docker gives every message of a service log (LogFormat.Details).
const (
	detailTask = "com.docker.swarm.task.id"
	detailNode = "com.docker.swarm.node.id"
)

// LogLine is one line of a log, as ReadLogs parses it.
type LogLine struct {
	Stderr bool
	// Time is when Docker read the line from the process, in UTC.
	Time time.Time
	// Text is the line without its line ending.
	Text string
	// Task and Node are the swarm task that wrote the line and the node
	// it ran on (service logs only: "" in a container's log).
	Task, Node string
}

// LogFormat says how a log stream from ContainerLogs or ServiceLogs is
// encoded.
type LogFormat struct {
	// TTY: the container (or the service's tasks) has a TTY, so Docker
	// sends its output raw, one message per line, without multiplexing:
	// stdout and stderr are one stream, and pieces of over-long lines
	// cannot be told apart.
	TTY bool
	// Details: every message carries Docker's details between its
	// timestamp and its text (ServiceLogs asks for them: they name the
	// task and node).
	Details bool
}

// ReadLogs parses a log stream (ContainerLogs, ServiceLogs) into lines for
// emit, in the order of the stream. Docker records a line longer than 16 KiB
// in pieces, each its own message without the newline; ReadLogs joins the
// pieces of each stream of each task under the first piece's timestamp. It
// returns when r ends (nil) or fails, or emit fails; an error Docker wrote
// into the stream does not end the reading but is returned at the end,
// wrapping ErrLogsIncomplete.
func ReadLogs(r io.Reader, f LogFormat, emit func(LogLine) error) error {
	p := &logParser{details: f.Details, emit: emit, pending: map[pieceKey]*piece{}}
	var err error
	if f.TTY {
		err = p.readRaw(r)
	} else {
		err = p.readFrames(r)
	}
	if err == nil {
		err = p.flush()
	}
	if err != nil {
		return err
	}
	if len(p.daemonErrs) > 0 {
		return fmt.Errorf("%w: %s", ErrLogsIncomplete, strings.Join(p.daemonErrs, "; "))
	}
	return nil
}

// Stream types of a multiplexed stream (pkg/stdcopy's StdType).
const (
	frameStdin     = 0
	frameStdout    = 1
	frameStderr    = 2
	frameSystemErr = 3
)

// logParser is one ReadLogs.
type logParser struct {
	details    bool
	emit       func(LogLine) error
	pending    map[pieceKey]*piece
	daemonErrs []string
}

// pieceKey is where pieces of one line come from: the pieces of different
// tasks (and of stdout and stderr) interleave in a service log.
type pieceKey struct {
	stderr bool
	task   string
}

// piece is the start of a line whose end has not come yet.
type piece struct {
	line LogLine
	text []byte
}

// readFrames reads a multiplexed stream: each message is one frame, an
// 8-byte header (stream type, 3 zero bytes, big-endian length) and the
// message. (pkg/stdcopy does the same but ends at Docker's first error.)
func (p *logParser) readFrames(r io.Reader) error {
	br := bufio.NewReaderSize(r, 32<<10)
	var hdr [8]byte
	var buf []byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read log frame: %w", err)
		}
		n := binary.BigEndian.Uint32(hdr[4:])
		if n > maxFrame {
			return fmt.Errorf("read log frame: %d bytes is not a log message (corrupt stream?)", n)
		}
		if cap(buf) < int(n) {
			buf = make([]byte, n)
		}
		frame := buf[:n]
		if _, err := io.ReadFull(br, frame); err != nil {
			return fmt.Errorf("read log frame: %w", err)
		}
		switch hdr[0] {
		case frameStdin, frameStdout, frameStderr:
			if err := p.message(hdr[0] == frameStderr, frame); err != nil {
				return err
			}
		case frameSystemErr:
			p.daemonErrs = append(p.daemonErrs, strings.TrimSpace(string(frame)))
		default:
			return fmt.Errorf("read log frame: unknown stream type %d", hdr[0])
		}
	}
}

// readRaw reads the stream of a TTY: messages end at newlines.
func (p *logParser) readRaw(r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var line []byte
	var head LogLine
	cont := false // line goes on with a line cut at maxPartial: no prefix
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) && len(line) < maxPartial {
			continue
		}
		if len(line) > 0 {
			l := head
			if cont {
				l.Text = string(line)
			} else {
				l = p.parse(false, line)
			}
			head, cont = l, !bytes.HasSuffix(line, []byte{'\n'})
			l.Text = trimEOL(l.Text)
			if err := p.emit(l); err != nil {
				return err
			}
			line = line[:0]
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			return nil
		default:
			return fmt.Errorf("read log: %w", err)
		}
	}
}

// parse splits one message into its timestamp, details and text (with
// its line ending, if it has one).
func (p *logParser) parse(stderr bool, msg []byte) LogLine {
	ts, rest := splitTimestamp(msg)
	l := LogLine{Stderr: stderr, Time: ts}
	if p.details {
		l.Task, l.Node, rest = splitDetails(rest)
	}
	l.Text = string(rest)
	return l
}

// message takes one message of a multiplexed stream: a whole line, or a
// piece of one (no newline at its end).
func (p *logParser) message(stderr bool, frame []byte) error {
	l := p.parse(stderr, frame)
	k := pieceKey{stderr: stderr, task: l.Task}
	pc := p.pending[k]
	if pc == nil {
		pc = &piece{line: l}
	}
	pc.text = append(pc.text, l.Text...)
	if !strings.HasSuffix(l.Text, "\n") && len(pc.text) < maxPartial {
		p.pending[k] = pc
		return nil
	}
	delete(p.pending, k)
	return p.send(pc)
}

// flush sends the pieces left at the end of the stream, oldest first.
func (p *logParser) flush() error {
	left := make([]*piece, 0, len(p.pending))
	for _, pc := range p.pending {
		left = append(left, pc)
	}
	sort.Slice(left, func(i, j int) bool { return left[i].line.Time.Before(left[j].line.Time) })
	clear(p.pending)
	for _, pc := range left {
		if err := p.send(pc); err != nil {
			return err
		}
	}
	return nil
}

func (p *logParser) send(pc *piece) error {
	l := pc.line
	l.Text = trimEOL(string(pc.text))
	return p.emit(l)
}

// trimEOL drops a line ending, "\n" or a TTY's "\r\n".
func trimEOL(s string) string {
	s = strings.TrimSuffix(s, "\n")
	return strings.TrimSuffix(s, "\r")
}

// splitTimestamp separates Docker's timestamp prefix from a message. A
// message without one (which Docker does not send when asked for
// timestamps) is all text, stamped now.
func splitTimestamp(msg []byte) (time.Time, []byte) {
	if i := bytes.IndexByte(msg, ' '); i > 0 {
		if ts, err := time.Parse(time.RFC3339Nano, string(msg[:i])); err == nil {
			return ts.UTC(), msg[i+1:]
		}
	}
	return time.Now().UTC(), msg
}

// splitDetails separates Docker's details from a message's text: sorted,
// query-escaped key=value pairs joined by commas, then a space (an empty
// string when there are none). Something that does not look like details
// is left as text.
func splitDetails(msg []byte) (task, node string, text []byte) {
	i := bytes.IndexByte(msg, ' ')
	if i < 0 {
		return "", "", msg
	}
	if i == 0 {
		return "", "", msg[1:]
	}
	for _, kv := range strings.Split(string(msg[:i]), ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return "", "", msg
		}
		k, kerr := url.QueryUnescape(k)
		v, verr := url.QueryUnescape(v)
		if kerr != nil || verr != nil {
			return "", "", msg
		}
		switch k {
		case detailTask:
			task = v
		case detailNode:
			node = v
		}
	}
	return task, node, msg[i+1:]
}
