package store

import (
	"errors"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// maxGroup bounds how many writes share one transaction, so one commit's
// dirty pages (and the time the writers of a group wait) stay small.
const maxGroup = 512

// groupCommitter runs writes that arrive while a commit is under way
// together, in the next transaction, so they share its fsync. Unlike
// bbolt's Batch it never waits for company: a lone write commits at once,
// and writes pile up only while the disk is busy with the previous group.
// The fsync, not a timer, sets the pace, so c concurrent writers pay about
// one fsync per c writes.
type groupCommitter struct {
	db *bolt.DB
	// journal, when set, gets each group's ops once every member that
	// stays in the group ran (see commit).
	journal *journaler

	mu      sync.Mutex
	pending []*groupWrite
	running bool // a goroutine is committing groups
}

// groupWrite is one write waiting for its group's commit.
type groupWrite struct {
	fn   func(kvTx) error
	done chan error
}

// errMemberFailed aborts a group's transaction when one member fails; the
// others are run again without it.
var errMemberFailed = errors.New("a write in the group failed")

// do runs fn in a write transaction shared with whatever other writes are
// waiting, and returns once that transaction committed (fn's result, or the
// commit's error) or fn failed. fn may run more than once, in successive
// transactions, when another member of its group fails: like bbolt's Batch,
// it must not have effects outside the transaction. fn returning
// errUnchanged promises it wrote nothing, so the group goes on.
func (g *groupCommitter) do(fn func(kvTx) error) error {
	w := &groupWrite{fn: fn, done: make(chan error, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, w)
	if !g.running {
		g.running = true
		go g.loop()
	}
	g.mu.Unlock()
	err := <-w.done
	if p, ok := err.(*memberPanic); ok {
		panic(p.v) // in the writer's goroutine, as bbolt's Update would
	}
	return err
}

// memberPanic carries a panic of a group member back to its writer, so
// that it neither kills the committer (and the daemon with it) nor stays
// hidden.
type memberPanic struct{ v any }

func (p *memberPanic) Error() string { return fmt.Sprintf("panic in a grouped write: %v", p.v) }

// run calls w.fn, turning a panic into a *memberPanic.
func (w *groupWrite) run(tx kvTx) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &memberPanic{v}
		}
	}()
	return w.fn(tx)
}

// loop commits groups until no write is waiting.
func (g *groupCommitter) loop() {
	for {
		g.mu.Lock()
		n := min(len(g.pending), maxGroup)
		if n == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		group := g.pending[:n:n]
		g.pending = append([]*groupWrite(nil), g.pending[n:]...)
		g.mu.Unlock()
		g.commit(group)
	}
}

// commit runs group in one transaction. A member that fails is answered
// with its error and the transaction, which may hold its partial writes,
// is rolled back and run again without it. With a journal, the ops of the
// attempt that commits, and only those, are appended as one entry after
// every member ran; if that fails, every member gets the error.
func (g *groupCommitter) commit(group []*groupWrite) {
	for len(group) > 0 {
		results := make([]error, len(group))
		failed := -1
		var jt *journalTx // the attempt's recording transaction, with a journal
		err := g.db.Update(func(tx *bolt.Tx) error {
			var kt kvTx = boltTx{tx}
			if g.journal != nil {
				jt = &journalTx{tx: tx}
				kt = jt
			}
			wrote := false
			for i, w := range group {
				err := w.run(kt)
				results[i] = err
				switch {
				case err == nil:
					wrote = true
				case !errors.Is(err, errUnchanged):
					failed = i
					return errMemberFailed
				}
			}
			if !wrote {
				// bbolt would still write a meta page and fsync.
				return errUnchanged
			}
			if jt != nil {
				return g.journal.commit(jt)
			}
			return nil
		})
		if g.journal != nil {
			g.journal.settle(jt, err)
		}
		if errors.Is(err, errUnchanged) {
			err = nil
		}
		if failed >= 0 {
			group[failed].done <- results[failed]
			group = append(group[:failed:failed], group[failed+1:]...)
			continue
		}
		for i, w := range group {
			if err != nil {
				w.done <- err
			} else {
				w.done <- results[i]
			}
		}
		return
	}
}
