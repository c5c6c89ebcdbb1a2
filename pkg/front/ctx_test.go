package front

import (
	"context"
	"testing"
	"time"
)

func TestCallCtx(t *testing.T) {
	type key struct{}
	parent := context.WithValue(context.Background(), key{}, "v")

	tests := []struct {
		name string
		run  func(t *testing.T, c *callCtx)
	}{
		{"values come from the parent", func(t *testing.T, c *callCtx) {
			if got := c.Value(key{}); got != "v" {
				t.Fatalf("Value = %v, want v", got)
			}
		}},
		{"done and Canceled once cancelled", func(t *testing.T, c *callCtx) {
			done := c.Done()
			if c.Err() != nil {
				t.Fatalf("Err before cancel = %v", c.Err())
			}
			c.cancel()
			c.cancel() // twice is harmless
			<-done
			if c.Err() != context.Canceled {
				t.Fatalf("Err = %v, want Canceled", c.Err())
			}
			<-c.Done()
		}},
		{"Done asked for after cancel is closed", func(t *testing.T, c *callCtx) {
			c.cancel()
			<-c.Done()
		}},
		{"hooks run on cancel, stopped ones do not", func(t *testing.T, c *callCtx) {
			ran := make(chan string, 3)
			stopA := c.AfterFunc(func() { ran <- "a" })
			_ = c.AfterFunc(func() { ran <- "b" })
			_ = c.AfterFunc(func() { ran <- "c" })
			if !stopA() {
				t.Fatal("stop of a waiting hook = false")
			}
			if stopA() {
				t.Fatal("second stop = true")
			}
			c.cancel()
			got := map[string]bool{<-ran: true, <-ran: true}
			if !got["b"] || !got["c"] {
				t.Fatalf("ran %v, want b and c", got)
			}
			select {
			case s := <-ran:
				t.Fatalf("stopped hook %s ran", s)
			case <-time.After(50 * time.Millisecond):
			}
		}},
		{"stop after the hook started is false", func(t *testing.T, c *callCtx) {
			ran := make(chan struct{})
			stop := c.AfterFunc(func() { close(ran) })
			c.cancel()
			<-ran
			if stop() {
				t.Fatal("stop after run = true")
			}
		}},
		{"a hook on a done context runs at once", func(t *testing.T, c *callCtx) {
			c.cancel()
			ran := make(chan struct{})
			if c.AfterFunc(func() { close(ran) })() {
				t.Fatal("stop = true")
			}
			<-ran
		}},
		{"context.AfterFunc and WithCancel follow it", func(t *testing.T, c *callCtx) {
			ran := make(chan struct{})
			context.AfterFunc(c, func() { close(ran) })
			child, cancel := context.WithTimeout(c, time.Hour)
			defer cancel()
			c.cancel()
			<-ran
			<-child.Done()
			if child.Err() != context.Canceled {
				t.Fatalf("child Err = %v", child.Err())
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, newCallCtx(parent)) })
	}
}
