// Package jobinit is the first process of a pre-started job container
// (job mode, see pkg/runtime/docker): it lets the daemon start a job's
// container before the call that will use it arrives, although the call's
// Http_* environment is only known then and Docker fixes a container's
// environment at create.
//
// The container runs `dockerfaasd job-init -- COMMAND...` (the daemon's own
// binary, mounted read-only from a volume) with its stdin attached. The
// process waits for one frame on stdin: Magic, a big-endian uint32 length,
// then that many bytes of JSON (Frame). It adds Frame.Env to its
// environment, writes the single byte Ack to stdout, and replaces itself
// (execve) with COMMAND, looked up in PATH as Docker would: the function
// runs as PID 1 of the container, with the rest of stdin (the request
// body) as its stdin, exactly as a container started for the call would.
//
// It reads stdin with exact-size reads straight from file descriptor 0,
// so not one byte of the body is consumed before the exec.
package jobinit

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
)

// Magic starts a frame.
const Magic = "DFJ1"

// Ack is what the process writes to stdout once it has read the frame,
// before the exec: the daemon strips it, and knows the container took the
// call (a container that died while it waited never acks).
const Ack byte = 0x06

// MaxFrame bounds a frame: request headers are bounded well below it.
const MaxFrame = 4 << 20

// Frame is what the daemon sends for one call.
type Frame struct {
	// Env is added to the environment ("KEY=value").
	Env []string `json:"env"`
}

// Encode is f as a frame, ready to write to the container's stdin.
func Encode(f Frame) ([]byte, error) {
	body, err := json.Marshal(f)
	if err != nil {
		return nil, err
	}
	if len(body) > MaxFrame {
		return nil, fmt.Errorf("job frame of %d bytes: over the %d byte limit", len(body), MaxFrame)
	}
	out := make([]byte, 0, len(Magic)+4+len(body))
	out = append(out, Magic...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(body)))
	return append(out, body...), nil
}

// Decode reads one frame from r, never reading past its end.
func Decode(r io.Reader) (Frame, error) {
	var f Frame
	head := make([]byte, len(Magic)+4)
	if _, err := io.ReadFull(r, head); err != nil {
		return f, fmt.Errorf("read the frame's header: %w", err)
	}
	if string(head[:len(Magic)]) != Magic {
		return f, errors.New("not a job frame")
	}
	n := binary.BigEndian.Uint32(head[len(Magic):])
	if n > MaxFrame {
		return f, fmt.Errorf("job frame of %d bytes: over the %d byte limit", n, MaxFrame)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return f, fmt.Errorf("read the frame: %w", err)
	}
	if err := json.Unmarshal(body, &f); err != nil {
		return f, fmt.Errorf("decode the frame: %w", err)
	}
	return f, nil
}

// fdReader reads a file descriptor with plain read(2): os.Stdin could be
// put in non-blocking mode by Go's poller, which the exec'd process would
// inherit.
type fdReader int

func (fd fdReader) Read(p []byte) (int, error) {
	for {
		n, err := syscall.Read(int(fd), p)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 && len(p) > 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

// Main runs the job-init process: args are "--" then the command. It
// returns only on failure, with the exit status to use (127 for a command
// that cannot be run, as a shell would; 1 otherwise).
func Main(args []string) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "dockerfaasd job-init: no command")
		return 1
	}
	f, err := Decode(fdReader(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "dockerfaasd job-init:", err)
		return 1
	}
	env := mergeEnv(os.Environ(), f.Env)
	path, err := lookPath(args[0], env)
	if _, werr := syscall.Write(1, []byte{Ack}); werr != nil {
		return 1 // the daemon is gone
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "dockerfaasd job-init: %s: %v\n", args[0], err)
		return 127
	}
	err = syscall.Exec(path, args, env)
	fmt.Fprintf(os.Stderr, "dockerfaasd job-init: exec %s: %v\n", path, err)
	return 127
}

// mergeEnv is base with add applied: a key in add replaces the one in base.
func mergeEnv(base, add []string) []string {
	out := make([]string, 0, len(base)+len(add))
	index := make(map[string]int, len(base)+len(add))
	for _, kv := range slices.Concat(base, add) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := index[k]; ok {
			out[i] = kv
			continue
		}
		index[k] = len(out)
		out = append(out, kv)
	}
	return out
}

// lookPath finds cmd as Docker would: a name with a slash as it is, else
// the first executable of that name in env's PATH.
func lookPath(cmd string, env []string) (string, error) {
	if strings.Contains(cmd, "/") {
		return cmd, nil
	}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			for _, dir := range strings.Split(v, ":") {
				if dir == "" {
					dir = "."
				}
				p := dir + "/" + cmd
				if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
					return p, nil
				}
			}
			return "", exec.ErrNotFound
		}
	}
	return "", exec.ErrNotFound
}
