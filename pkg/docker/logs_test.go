package docker

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/pkg/stdcopy"
)

// frame is one message of a test stream.
type frame struct {
	stream stdcopy.StdType
	msg    string
}

func muxed(frames ...frame) *bytes.Buffer {
	var b bytes.Buffer
	for _, f := range frames {
		if _, err := stdcopy.NewStdWriter(&b, f.stream).Write([]byte(f.msg)); err != nil {
			panic(err)
		}
	}
	return &b
}

func out(msg string) frame  { return frame{stdcopy.Stdout, msg} }
func errf(msg string) frame { return frame{stdcopy.Stderr, msg} }

// details is what Docker puts between the timestamp and the text of a
// service log message.
func details(node, task string) string {
	return "com.docker.swarm.node.id=" + node + ",com.docker.swarm.service.id=svc1,com.docker.swarm.task.id=" + task
}

func TestReadLogs(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC)
	show := func(l LogLine) string {
		s := fmt.Sprintf("%s %q", l.Time.Sub(t0), l.Text)
		if l.Stderr {
			s += " stderr"
		}
		if l.Task != "" || l.Node != "" {
			s += " " + l.Task + "@" + l.Node
		}
		return s
	}
	for _, tc := range []struct {
		name   string
		format LogFormat
		stream *bytes.Buffer
		want   []string
	}{
		{"one line", LogFormat{}, muxed(out("2026-11-23T07:00:00.000000001Z hello\n")),
			[]string{`1ns "hello"`}},
		{"offset timestamp", LogFormat{}, muxed(out("2026-11-23T12:30:00.5+05:30 x\n")),
			[]string{`500ms "x"`}},
		{"empty line", LogFormat{}, muxed(out("2026-11-23T07:00:00Z \n")),
			[]string{`0s ""`}},
		{"stderr and a CRLF", LogFormat{}, muxed(errf("2026-11-23T07:00:00Z oops\r\n")),
			[]string{`0s "oops" stderr`}},
		{"pieces joined under the first timestamp", LogFormat{},
			muxed(out("2026-11-23T07:00:00Z ab"), out("2026-11-23T07:00:01Z cd"), out("2026-11-23T07:00:02Z ef\n")),
			[]string{`0s "abcdef"`}},
		{"pieces of stdout and stderr apart", LogFormat{},
			muxed(out("2026-11-23T07:00:00Z out "), errf("2026-11-23T07:00:01Z err\n"), out("2026-11-23T07:00:02Z end\n")),
			[]string{`1s "err" stderr`, `0s "out end"`}},
		{"piece left at the end", LogFormat{},
			muxed(out("2026-11-23T07:00:00Z a\n"), out("2026-11-23T07:00:01Z tail")),
			[]string{`0s "a"`, `1s "tail"`}},
		{"spaces kept", LogFormat{}, muxed(out("2026-11-23T07:00:00Z  two  spaces \n")),
			[]string{`0s " two  spaces "`}},
		{"details name task and node", LogFormat{Details: true},
			muxed(out("2026-11-23T07:00:00Z " + details("n1", "t1") + " hello world\n")),
			[]string{`0s "hello world" t1@n1`}},
		{"escaped details", LogFormat{Details: true},
			muxed(out("2026-11-23T07:00:00Z com.docker.swarm.node.id=n%2C1,com.docker.swarm.task.id=t+1,x=y hi\n")),
			[]string{`0s "hi" t 1@n,1`}},
		{"no details", LogFormat{Details: true}, muxed(out("2026-11-23T07:00:00Z  hi\n")),
			[]string{`0s "hi"`}},
		{"pieces of tasks interleaved", LogFormat{Details: true},
			muxed(out("2026-11-23T07:00:00Z "+details("n1", "t1")+" one "),
				out("2026-11-23T07:00:01Z "+details("n2", "t2")+" two "),
				out("2026-11-23T07:00:02Z "+details("n1", "t1")+" end\n"),
				out("2026-11-23T07:00:03Z "+details("n2", "t2")+" end\n")),
			[]string{`0s "one end" t1@n1`, `1s "two end" t2@n2`}},
		{"tty", LogFormat{TTY: true, Details: true},
			bytes.NewBufferString("2026-11-23T07:00:00Z " + details("n1", "t1") + " a\r\n2026-11-23T07:00:01Z " + details("n1", "t1") + " b"),
			[]string{`0s "a" t1@n1`, `1s "b" t1@n1`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			err := ReadLogs(tc.stream, tc.format, func(l LogLine) error {
				if l.Time.Location() != time.UTC {
					t.Errorf("%v not in UTC", l.Time)
				}
				got = append(got, show(l))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}

	t.Run("no timestamp", func(t *testing.T) {
		var got []LogLine
		err := ReadLogs(muxed(out("plain text\n")), LogFormat{}, func(l LogLine) error { got = append(got, l); return nil })
		if err != nil || len(got) != 1 || got[0].Text != "plain text" || time.Since(got[0].Time) > time.Minute {
			t.Fatalf("got %+v, %v", got, err)
		}
	})
	t.Run("an error in the stream keeps the lines", func(t *testing.T) {
		var got []string
		err := ReadLogs(muxed(out("2026-11-23T07:00:00Z a\n"), frame{stdcopy.Systemerr, "Error grabbing logs: node n3 is not available\n"}, out("2026-11-23T07:00:01Z b\n")),
			LogFormat{}, func(l LogLine) error { got = append(got, l.Text); return nil })
		if !errors.Is(err, ErrLogsIncomplete) || !strings.Contains(err.Error(), "node n3 is not available") {
			t.Errorf("err = %v, want ErrLogsIncomplete with Docker's reason", err)
		}
		if strings.Join(got, ",") != "a,b" {
			t.Errorf("got %v", got)
		}
	})
	t.Run("emit error ends the reading", func(t *testing.T) {
		boom := errors.New("client gone")
		n := 0
		err := ReadLogs(muxed(out("2026-11-23T07:00:00Z a\n"), out("2026-11-23T07:00:01Z b\n")), LogFormat{}, func(LogLine) error { n++; return boom })
		if !errors.Is(err, boom) || n != 1 {
			t.Errorf("got %v after %d lines", err, n)
		}
	})
	t.Run("truncated frame", func(t *testing.T) {
		b := muxed(out("2026-11-23T07:00:00Z a\n"))
		b.Truncate(b.Len() - 3)
		if err := ReadLogs(b, LogFormat{}, func(LogLine) error { return nil }); err == nil {
			t.Error("a truncated stream read without error")
		}
	})
	t.Run("over-long piece sent anyway", func(t *testing.T) {
		big := strings.Repeat("x", 16<<10)
		var frames []frame
		for range maxPartial/len(big) + 1 {
			frames = append(frames, out("2026-11-23T07:00:00Z "+big))
		}
		frames = append(frames, out("2026-11-23T07:00:01Z end\n"))
		var lens []int
		if err := ReadLogs(muxed(frames...), LogFormat{}, func(l LogLine) error { lens = append(lens, len(l.Text)); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(lens) != 2 || lens[0] != maxPartial || lens[1] != len(big)+3 {
			t.Errorf("line lengths %v, want [%d %d]", lens, maxPartial, len(big)+3)
		}
	})
}
