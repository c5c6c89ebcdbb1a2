package docker

import (
	"context"
	"io"
	"strconv"
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
}

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
	o := container.LogsOptions{ShowStdout: true, ShowStderr: true, Timestamps: true, Follow: opts.Follow, Tail: "all"}
	if !opts.Since.IsZero() {
		// The client turns RFC 3339 into Docker's "seconds.nanoseconds",
		// keeping nanosecond precision.
		o.Since = opts.Since.UTC().Format(time.RFC3339Nano)
	}
	if opts.Tail > 0 {
		o.Tail = strconv.Itoa(opts.Tail)
	}
	rc, err := d.c.ContainerLogs(ctx, id, o)
	if err != nil {
		return nil, wrap("logs of container "+ShortID(id), err)
	}
	return rc, nil
}
