package runtime

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/logs"
)

func TestLogMark(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	for _, tc := range []struct {
		name string
		mark LogMark
		sent []int // lines sent before Replay
		read []int // lines read again after it
		want string
	}{
		{"lines before the mark were sent", LogMark{}, []int{1, 2, 3}, []int{1, 2, 3, 4}, "4"},
		{"lines stamped alike skipped by count", LogMark{}, []int{1, 3, 3}, []int{2, 3, 3, 3, 4}, "3 4"},
		{"nothing sent", LogMark{}, nil, []int{1, 2}, "1 2"},
		{"since: older lines unwanted", MarkAt(at(2)), nil, []int{1, 2, 3}, "2 3"},
		{"a clock step back does not rewind the mark", LogMark{}, []int{5, 4}, []int{4, 5, 6}, "6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mk := tc.mark
			for _, s := range tc.sent {
				mk.Advance(at(s))
			}
			mk.Replay()
			var got []string
			for _, s := range tc.read {
				if !mk.Seen(at(s)) {
					got = append(got, fmt.Sprint(s))
				}
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("new lines %v, want %s", got, tc.want)
			}
		})
	}

	t.Run("replayed again", func(t *testing.T) {
		var mk LogMark
		mk.Advance(at(1))
		mk.Replay()
		for _, s := range []int{1, 2, 2} {
			mk.Seen(at(s))
		}
		mk.Replay() // a follow opened again: 1 and both 2s were sent
		if mk.Seen(at(1)) != true || mk.Seen(at(2)) != true || mk.Seen(at(2)) != true || mk.Seen(at(2)) != false {
			t.Error("a second replay did not recognise the lines sent in between")
		}
		if !mk.Time().Equal(at(2)) {
			t.Errorf("Time = %v", mk.Time())
		}
	})
}

func TestLogTail(t *testing.T) {
	for _, tc := range []struct {
		max, push int
		want      string
	}{
		{3, 0, ""}, {3, 2, "0 1"}, {3, 3, "0 1 2"}, {3, 7, "4 5 6"}, {1, 5, "4"},
	} {
		r := LogTail{Max: tc.max}
		for i := range tc.push {
			r.Push(logs.Message{Text: fmt.Sprint(i)})
		}
		var got []string
		for _, m := range r.Lines() {
			got = append(got, m.Text)
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("max %d after %d: %v, want %s", tc.max, tc.push, got, tc.want)
		}
	}
}

func TestLogStops(t *testing.T) {
	s := NewLogStops()
	parent, cancelParent := context.WithCancel(context.Background())
	defer cancelParent()
	a, releaseA := s.Bind(parent)
	b, releaseB := s.Bind(context.Background())
	releaseB()
	if b.Err() == nil {
		t.Error("release did not end the bound context")
	}
	if a.Err() != nil {
		t.Fatal("bound context ended early")
	}
	s.Stop()
	<-a.Done()
	releaseA()
	c, releaseC := s.Bind(context.Background())
	defer releaseC()
	if c.Err() == nil {
		t.Error("a stream bound after Stop did not end at once")
	}

	if LogStreamEnd(a, errors.New("read failed")) != nil {
		t.Error("the error of a stream whose context ended was kept")
	}
	if LogStreamEnd(parent, errors.New("read failed")) == nil {
		t.Error("the error of a live stream was dropped")
	}
}
