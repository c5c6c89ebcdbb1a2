package async

import (
	"context"
	"time"
)

// pruneBatch bounds how many records one write deletes.
const pruneBatch = 500

// prune deletes the records of finished calls beyond RecordsMax (oldest
// first) and those older than RecordsMaxAge. Calls not done are kept
// whatever their age.
func (s *Service) prune(ctx context.Context) {
	calls, err := s.st.ListCalls(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.cfg.Log.WithError(err).Warn("async: cannot list records to prune")
		}
		return
	}
	done := 0
	for _, c := range calls {
		if c.Done() {
			done++
		}
	}
	cutoff := s.now().Add(-s.cfg.RecordsMaxAge)
	var ids []string
	for _, c := range calls { // oldest first
		if !c.Done() {
			continue
		}
		if done > s.cfg.RecordsMax || finishedAt(c.FinishedAt, c.AcceptedAt).Before(cutoff) {
			ids = append(ids, c.ID)
			done--
		}
	}
	for len(ids) > 0 {
		n := min(len(ids), pruneBatch)
		if err := s.st.DeleteCalls(ctx, ids[:n]); err != nil {
			if ctx.Err() == nil {
				s.cfg.Log.WithError(err).Warn("async: cannot prune records")
			}
			return
		}
		ids = ids[n:]
	}
}

// finishedAt is when a done call finished; accepted for records from
// before FinishedAt was kept.
func finishedAt(finished, accepted time.Time) time.Time {
	if finished.IsZero() {
		return accepted
	}
	return finished
}
