package jobinit

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// TestMain lets a test run Main in a child process (it execs).
func TestMain(m *testing.M) {
	if os.Getenv("JOBINIT_TEST_MAIN") == "1" {
		os.Exit(Main(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func TestFrameRoundTripReadsNoFurther(t *testing.T) {
	frame, err := Encode(Frame{Env: []string{"Http_Method=POST", "Http_Query=a=b&c"}})
	if err != nil {
		t.Fatal(err)
	}
	in := bytes.NewReader(append(frame, "the body"...))
	// A byte at a time, as a pipe may deliver it.
	f, err := Decode(iotest.OneByteReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.Env, []string{"Http_Method=POST", "Http_Query=a=b&c"}) {
		t.Errorf("env %q", f.Env)
	}
	rest, _ := io.ReadAll(in)
	if string(rest) != "the body" {
		t.Errorf("left %q after the frame, want the body", rest)
	}
}

func TestDecodeRefuses(t *testing.T) {
	long := []byte(Magic + "\xff\xff\xff\xff")
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "header"},
		{"not a frame", []byte("GET / HTTP/1.1\r\n"), "not a job frame"},
		{"over the limit", long, "limit"},
		{"truncated", []byte(Magic + "\x00\x00\x00\x10{}"), "read the frame"},
		{"bad json", []byte(Magic + "\x00\x00\x00\x02{x"), "decode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(bytes.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one with %q", err, tc.want)
			}
		})
	}
}

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"PATH=/bin", "A=1", "B=2"}, []string{"A=x", "C=3"})
	if want := []string{"PATH=/bin", "A=x", "B=2", "C=3"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/tool", []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/data", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cmd, path, want string
		err             error
	}{
		{"tool", "/nowhere:" + dir, dir + "/tool", nil},
		{"/abs/cmd", "", "/abs/cmd", nil},
		{"data", dir, "", exec.ErrNotFound},
		{"tool", "", "", exec.ErrNotFound},
	} {
		env := []string{"A=1"}
		if tc.path != "" {
			env = append(env, "PATH="+tc.path)
		}
		got, err := lookPath(tc.cmd, env)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("lookPath(%q, PATH=%q) = %q, %v; want %q, %v", tc.cmd, tc.path, got, err, tc.want, tc.err)
		}
	}
}

// runMain runs Main in a child process with stdin and returns its stdout,
// stderr and exit code.
func runMain(t *testing.T, stdin []byte, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "JOBINIT_TEST_MAIN=1", "STATIC=kept", "Http_Method=stale")
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

func TestMainExecsWithTheFrame(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Fatal("no sh on this machine:", err)
	}
	frame, err := Encode(Frame{Env: []string{"Http_Method=PUT", "Http_X_Thing=a b"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		stdin    []byte
		args     []string
		out      string
		errHas   string
		exitCode int
	}{
		{"runs the command with the frame's env and the rest of stdin",
			append(frame, "body bytes"...),
			[]string{"--", "sh", "-c", `printf '%s|%s|%s|' "$Http_Method" "$Http_X_Thing" "$STATIC"; cat; exit 3`},
			string(Ack) + "PUT|a b|kept|body bytes", "", 3},
		{"a missing command is 127 after the ack",
			frame, []string{"--", "no-such-command-here"}, string(Ack), "no-such-command-here", 127},
		{"no frame: no ack, no exec",
			[]byte("plain body"), []string{"--", "sh", "-c", "echo ran"}, "", "not a job frame", 1},
		{"no command", frame, []string{"--"}, "", "no command", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runMain(t, tc.stdin, tc.args...)
			if out != tc.out || code != tc.exitCode || !strings.Contains(errOut, tc.errHas) {
				t.Fatalf("stdout %q exit %d stderr %q; want %q, %d, stderr with %q", out, code, errOut, tc.out, tc.exitCode, tc.errHas)
			}
		})
	}
}
