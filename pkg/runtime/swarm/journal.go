package swarm

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime/function"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// Journal is the store.Journal of a daemon with RUNTIME=swarm: it keeps
// the state file's writes in swarm configs, so in the swarm's Raft log,
// replicated to every manager. A daemon started on another manager after
// this one's manager died replays them and has every acknowledged write.
//
// Layout (names are only names; what belongs to the instance is chosen by
// label, function.OwnerLabels, plus labelState):
//
//   - <p>-state-head: the head, the journal's commit point. Its labels say
//     which daemon owns the journal (owner), the last committed entry (seq,
//     tag) and the snapshot it starts from (snapshot, snapshot-tag).
//   - <p>-state-<seq>-<tag>: an entry, the JSON of one transaction's ops;
//     <p>-snapshot-<seq>-<tag>: a snapshot, the whole state after entry seq.
//     A payload over engine.MaxConfigSize is split into parts, part i > 0
//     named with a ".<i>" suffix; every part says how many there are and
//     part 0 carries the payload's SHA-256. tag is random, new for every
//     attempt, and an entry names the tag of the entry before it (prev), so
//     the committed entries form one chain back from the head.
//
// <p> is the instance name (shortened with a hash past 28 characters, so
// that every name fits swarm's 64).
//
// Why a head and not the entry names alone: a name is unique only while the
// config exists, so name conflicts cannot fence a daemon once a snapshot
// has pruned the entries it would collide with, and an entry another daemon
// completes after this one has read the journal would slip into the log
// unseen. Swarm lets a config's labels change only at the version they were
// read at, so an update of the head is a compare-and-swap in the Raft log:
// an entry is committed (and Append acknowledges it) exactly when the head
// names it, and a daemon that takes the journal over (NewJournal rewrites
// the owner) makes the head's next swap by the previous owner fail.
//
// Append writes the entry's configs, then swaps the head. An entry whose
// swap did not happen is garbage: never replayed (nothing on the chain
// names it), removed at once when possible and otherwise by the next
// snapshot's pruning. So a crash in the middle of an append, or an append
// that failed, leaves nothing that blocks or alters the entries after it.
// Appends and snapshots are serialized (one mutex), as the store's writes
// are.
//
// When the answer to the head's swap is lost, Append reads the head again
// (and, if that fails too, the next call does): an entry committed although
// Append returns an error is un-committed (the head is swapped back),
// because the store aborts that transaction. A daemon that dies before that
// leaves such an entry committed: its write, reported as failed, is in the
// state the next daemon replays — the outcome of a write whose answer was
// lost, never the loss of an acknowledged one.
type Journal struct {
	eng      engine.SwarmEngine
	instance string
	prefix   string
	owner    string
	log      logrus.FieldLogger
	// partSize is the largest payload of one config (tests lower it).
	partSize int

	mu sync.Mutex
	// head is the head config as last read or written by this journal;
	// seq/tag and snap/snapTag are what its labels say.
	head         engine.SwarmConfig
	seq, snap    uint64
	tag, snapTag string
	unsure       bool   // head's version, or what the last swap did, is unknown
	pendingSeq   uint64 // the entry whose swap went unanswered
	pendingTag   string
	pendingIDs   []string // its configs
	fenced       bool
	fencedBy     string
	// lost is closed when the journal is fenced (Lost).
	lost     chan struct{}
	lostOnce sync.Once
	// pruning counts the snapshots' prunings under way.
	pruning sync.WaitGroup
}

var _ store.Journal = (*Journal)(nil)

// ErrFenced: another daemon of this instance took the journal over, so this
// one must not write any more (it should stop: its state is no longer the
// one the swarm holds).
var ErrFenced = fmt.Errorf("swarm state journal fenced: another dockerfaasd of this instance took it over: %w", engine.ErrConflict)

// Labels of the journal's configs (besides function.OwnerLabels).
const (
	labelState        = "io.dockerfaas.state" // stateHead, stateEntry or stateSnapshot
	labelOwner        = "io.dockerfaas.state.owner"
	labelSeq          = "io.dockerfaas.state.seq"
	labelTag          = "io.dockerfaas.state.tag"
	labelPrev         = "io.dockerfaas.state.prev"
	labelSnap         = "io.dockerfaas.state.snapshot"
	labelSnapTag      = "io.dockerfaas.state.snapshot-tag"
	labelPart         = "io.dockerfaas.state.part"
	labelParts        = "io.dockerfaas.state.parts"
	labelSum          = "io.dockerfaas.state.sum"
	stateHead         = "head"
	stateEntry        = "entry"
	stateSnapshot     = "snapshot"
	maxPrefix         = 28
	maxParts          = 9999 // keeps "<p>-snapshot-<seq>-<tag>.<part>" within 64 characters
	takeoverAttempts  = 10
	cleanupTimeout    = 10 * time.Second
	pruneTimeout      = 2 * time.Minute
	pruneWorkers      = 4
	headData          = `{"journal":1}`
	journalOwnerBytes = 8
	journalTagBytes   = 4
)

// NewJournal opens the journal of instance on eng and takes it over: it
// creates the head or makes itself its owner, so that a daemon of the same
// instance still running elsewhere is fenced at its next write (the newest
// daemon wins). Call Replay next: it reads what was committed up to now.
func NewJournal(ctx context.Context, eng engine.SwarmEngine, instance string, log logrus.FieldLogger) (*Journal, error) {
	if instance == "" {
		return nil, errors.New("swarm state journal: no instance name")
	}
	if log == nil {
		log = logrus.StandardLogger()
	}
	j := &Journal{
		eng: eng, instance: instance, prefix: configPrefix(instance), owner: randomHex(journalOwnerBytes),
		partSize: engine.MaxConfigSize, lost: make(chan struct{}),
	}
	j.log = log.WithField("journal_owner", j.owner)
	if err := j.takeOver(ctx); err != nil {
		return nil, err
	}
	return j, nil
}

// configPrefix is the instance name, or when it is too long for every
// config name to fit in 64 characters, its start and a hash of it.
func configPrefix(instance string) string {
	if len(instance) <= maxPrefix {
		return instance
	}
	sum := sha256.Sum256([]byte(instance))
	return instance[:maxPrefix-9] + "-" + hex.EncodeToString(sum[:4])
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return hex.EncodeToString(b)
}

func (j *Journal) headName() string { return j.prefix + "-state-head" }

func (j *Journal) partName(kind string, seq uint64, tag string, part int) string {
	word := "-state-"
	if kind == stateSnapshot {
		word = "-snapshot-"
	}
	name := fmt.Sprintf("%s%s%012d-%s", j.prefix, word, seq, tag)
	if part > 0 {
		name += "." + strconv.Itoa(part)
	}
	return name
}

func (j *Journal) labels(kind string) map[string]string {
	l := function.OwnerLabels(j.instance, "", "")
	l[labelState] = kind
	return l
}

// headLabels are the head's labels naming owner and the given positions.
func (j *Journal) headLabels(owner string, seq uint64, tag string, snap uint64, snapTag string) map[string]string {
	l := j.labels(stateHead)
	l[labelOwner] = owner
	l[labelSeq] = strconv.FormatUint(seq, 10)
	l[labelTag] = tag
	l[labelSnap] = strconv.FormatUint(snap, 10)
	l[labelSnapTag] = snapTag
	return l
}

type headState struct {
	owner        string
	seq, snap    uint64
	tag, snapTag string
}

func parseHead(c engine.SwarmConfig) (headState, error) {
	h := headState{owner: c.Labels[labelOwner], tag: c.Labels[labelTag], snapTag: c.Labels[labelSnapTag]}
	var err1, err2 error
	h.seq, err1 = strconv.ParseUint(c.Labels[labelSeq], 10, 64)
	h.snap, err2 = strconv.ParseUint(c.Labels[labelSnap], 10, 64)
	if err := errors.Join(err1, err2); err != nil || h.snap > h.seq {
		return h, fmt.Errorf("swarm state journal: head %s has unreadable labels %v: %w", c.Name, c.Labels, err)
	}
	return h, nil
}

// takeOver makes this journal the owner of the head (creating it for an
// empty journal). Another daemon taking over at the same time makes the
// swap fail: read the head again and retry.
func (j *Journal) takeOver(ctx context.Context) error {
	var last error
	for range takeoverAttempts {
		head, err := j.eng.InspectConfig(ctx, j.headName())
		switch {
		case errors.Is(err, engine.ErrNotFound):
			_, err = j.eng.CreateConfig(ctx, j.headName(), j.headLabels(j.owner, 0, "", 0, ""), []byte(headData))
			if errors.Is(err, engine.ErrConflict) {
				last = err
				continue
			}
			if err != nil {
				return fmt.Errorf("swarm state journal: create its head: %w", err)
			}
			j.log.WithField("instance", j.instance).Info("swarm state journal created")
		case err != nil:
			return fmt.Errorf("swarm state journal: read its head: %w", err)
		default:
			h, err := parseHead(head)
			if err != nil {
				return err
			}
			err = j.eng.UpdateConfigLabels(ctx, head, j.headLabels(j.owner, h.seq, h.tag, h.snap, h.snapTag))
			if errors.Is(err, engine.ErrConflict) {
				last = err
				continue
			}
			if err != nil {
				return fmt.Errorf("swarm state journal: take it over: %w", err)
			}
			j.log.WithFields(logrus.Fields{"instance": j.instance, "previous_owner": h.owner, "seq": h.seq, "snapshot": h.snap}).
				Info("swarm state journal taken over")
		}
		head, err = j.eng.InspectConfig(ctx, j.headName())
		if err != nil {
			return fmt.Errorf("swarm state journal: read its head: %w", err)
		}
		h, err := parseHead(head)
		if err != nil {
			return err
		}
		if h.owner != j.owner {
			last = fmt.Errorf("taken over by %s meanwhile", h.owner)
			continue
		}
		j.head, j.seq, j.tag, j.snap, j.snapTag = head, h.seq, h.tag, h.snap, h.snapTag
		return nil
	}
	return fmt.Errorf("swarm state journal: no takeover after %d attempts, other daemons of instance %s keep taking it: %w", takeoverAttempts, j.instance, last)
}

// fence makes every later write fail: another daemon owns the journal.
func (j *Journal) fence(by, why string) error {
	j.fenced, j.fencedBy = true, by
	j.lostOnce.Do(func() { close(j.lost) })
	j.log.WithFields(logrus.Fields{"instance": j.instance, "new_owner": by, "seq": j.seq}).
		Error("SWARM STATE JOURNAL FENCED: another dockerfaasd of this instance took the journal over; this daemon writes nothing more and must stop: " + why)
	return fmt.Errorf("%w (new owner %s): %s", ErrFenced, by, why)
}

// Lost is closed once another daemon has taken the journal over: this
// daemon's state is no longer the swarm's, and it must stop (its controller
// would otherwise undo what the new owner does).
func (j *Journal) Lost() <-chan struct{} { return j.lost }

// WatchOwner reads the head every interval until ctx ends or another
// daemon owns it, then fences this journal (Lost closes) and returns
// ErrFenced. A write finds the takeover by itself; this finds it in a
// daemon that writes nothing meanwhile. A head that cannot be read (no
// quorum, say) is tried again at the next tick.
func (j *Journal) WatchOwner(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-j.lost:
			j.mu.Lock()
			defer j.mu.Unlock()
			return fmt.Errorf("%w (new owner %s)", ErrFenced, j.fencedBy)
		case <-t.C:
		}
		head, err := j.eng.InspectConfig(ctx, j.headName())
		if errors.Is(err, engine.ErrNotFound) {
			j.mu.Lock()
			err := j.fence("none", "its head was removed")
			j.mu.Unlock()
			return err
		}
		if err != nil {
			if ctx.Err() == nil {
				j.log.WithError(err).Debug("swarm state journal: reading its head to check the owner failed; tried again")
			}
			continue
		}
		if owner := head.Labels[labelOwner]; owner != j.owner {
			j.mu.Lock()
			err := j.fence(owner, "the head names another owner")
			j.mu.Unlock()
			return err
		}
	}
}

// refresh reads the head again when the last swap's outcome or the head's
// version is unknown, and settles it: an entry committed although its
// Append reported an error is un-committed.
func (j *Journal) refresh(ctx context.Context) error {
	if j.fenced {
		return fmt.Errorf("%w (new owner %s)", ErrFenced, j.fencedBy)
	}
	if !j.unsure {
		return nil
	}
	head, err := j.eng.InspectConfig(ctx, j.headName())
	if err != nil {
		return fmt.Errorf("swarm state journal: read its head: %w", err)
	}
	h, err := parseHead(head)
	if err != nil {
		return err
	}
	if h.owner != j.owner {
		return j.fence(h.owner, "the head names another owner")
	}
	switch {
	case h.seq == j.seq && h.tag == j.tag:
	case j.pendingTag != "" && h.seq == j.pendingSeq && h.tag == j.pendingTag:
		// The swap happened, but the store aborted the transaction: take
		// the entry out of the chain again.
		err := j.eng.UpdateConfigLabels(ctx, head, j.headLabels(j.owner, j.seq, j.tag, h.snap, h.snapTag))
		if errors.Is(err, engine.ErrConflict) {
			return j.fence("?", "the head changed while this daemon owned it")
		}
		if err != nil {
			return fmt.Errorf("swarm state journal: un-commit entry %d, whose append failed: %w", j.pendingSeq, err)
		}
		j.log.WithField("seq", j.pendingSeq).Warn("swarm state journal: an append reported as failed had been committed; undone")
		if head, err = j.eng.InspectConfig(ctx, j.headName()); err != nil {
			return fmt.Errorf("swarm state journal: read its head: %w", err)
		}
	default:
		return j.fence(h.owner, fmt.Sprintf("the head moved to entry %d unexpectedly", h.seq))
	}
	// The entry of an unanswered swap is not on the chain (any more).
	j.discard(ctx, j.pendingIDs)
	// A snapshot whose swap went unanswered may or may not be the head's:
	// both hold the same state.
	j.head, j.snap, j.snapTag = head, h.snap, h.snapTag
	j.unsure, j.pendingSeq, j.pendingTag, j.pendingIDs = false, 0, "", nil
	return nil
}

// swapHead commits: it sets the head's positions at the version last read.
// ErrFenced when another daemon changed the head; on any other error the
// outcome is unknown (unsure).
func (j *Journal) swapHead(ctx context.Context, seq uint64, tag string, snap uint64, snapTag string) error {
	err := j.eng.UpdateConfigLabels(ctx, j.head, j.headLabels(j.owner, seq, tag, snap, snapTag))
	if errors.Is(err, engine.ErrConflict) {
		owner := "?"
		if head, err := j.eng.InspectConfig(ctx, j.headName()); err == nil {
			owner = head.Labels[labelOwner]
		}
		return j.fence(owner, "the head changed since this daemon last wrote it")
	}
	if err != nil {
		j.unsure = true
		return fmt.Errorf("swarm state journal: commit: %w", err)
	}
	// The swap is done; only the new version is needed, for the next one.
	head, err := j.eng.InspectConfig(ctx, j.headName())
	if err != nil {
		j.unsure = true
		j.log.WithError(err).Warn("swarm state journal: committed, but reading the head back failed; it is read again before the next write")
		return nil
	}
	j.head = head
	return nil
}

// write stores payload as the parts of one entry or snapshot, and returns
// the IDs it created (so a failed write can remove them).
func (j *Journal) write(ctx context.Context, kind string, seq uint64, tag, prev string, payload []byte) ([]string, error) {
	size := j.partSize
	parts := max(1, (len(payload)+size-1)/size)
	if parts > maxParts {
		return nil, fmt.Errorf("swarm state journal: %s of %d bytes needs more than %d configs", kind, len(payload), maxParts)
	}
	sum := sha256.Sum256(payload)
	var ids []string
	for i := range parts {
		chunk := payload[i*size : min(len(payload), (i+1)*size)]
		l := j.labels(kind)
		l[labelSeq] = strconv.FormatUint(seq, 10)
		l[labelTag] = tag
		l[labelPart] = strconv.Itoa(i)
		l[labelParts] = strconv.Itoa(parts)
		if i == 0 {
			l[labelSum] = hex.EncodeToString(sum[:])
			if kind == stateEntry {
				l[labelPrev] = prev
			}
		}
		name := j.partName(kind, seq, tag, i)
		id, err := j.eng.CreateConfig(ctx, name, l, chunk)
		if err != nil {
			return ids, fmt.Errorf("swarm state journal: write %s (part %d of %d): %w", name, i+1, parts, err)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// discard removes configs of a write that was not committed. It is only
// tidying (the next snapshot prunes whatever is left), so it has its own
// deadline and failures are logged.
func (j *Journal) discard(ctx context.Context, ids []string) {
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	for _, id := range ids {
		if err := j.eng.RemoveConfig(ctx, id); err != nil && !errors.Is(err, engine.ErrNotFound) {
			j.log.WithError(err).Warn("swarm state journal: could not remove an uncommitted config; the next snapshot prunes it")
		}
	}
}

// Append implements store.Journal: the entry is acknowledged once the head
// names it.
func (j *Journal) Append(ctx context.Context, ops []store.Op) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.refresh(ctx); err != nil {
		return err
	}
	payload, err := json.Marshal(ops)
	if err != nil {
		return fmt.Errorf("swarm state journal: encode entry: %w", err)
	}
	seq, tag := j.seq+1, randomHex(journalTagBytes)
	ids, err := j.write(ctx, stateEntry, seq, tag, j.tag, payload)
	if err != nil {
		j.discard(ctx, ids)
		return err
	}
	if err := j.swapHead(ctx, seq, tag, j.snap, j.snapTag); err != nil {
		if j.unsure {
			// Settle it now if the swarm answers, rather than at the next
			// call: until then a committed entry the store has not
			// applied would be replayed should this daemon die.
			j.pendingSeq, j.pendingTag, j.pendingIDs = seq, tag, ids
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
			if serr := j.refresh(sctx); serr != nil {
				j.log.WithError(serr).Warn("swarm state journal: whether a failed append was committed is unknown; settled at the next write")
			}
			cancel()
		} else {
			j.discard(ctx, ids)
		}
		return err
	}
	j.seq, j.tag = seq, tag
	return nil
}

// Snapshot implements store.Journal: the snapshot replaces the entries once
// the head names it; then they and older snapshots are removed.
func (j *Journal) Snapshot(ctx context.Context, ops []store.Op) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.refresh(ctx); err != nil {
		return err
	}
	payload, err := json.Marshal(ops)
	if err != nil {
		return fmt.Errorf("swarm state journal: encode snapshot: %w", err)
	}
	// The snapshot is the state after entry seq; its tag tells it from an
	// earlier snapshot at the same seq.
	seq, tag := j.seq, randomHex(journalTagBytes)
	ids, err := j.write(ctx, stateSnapshot, seq, tag, "", payload)
	if err != nil {
		j.discard(ctx, ids)
		return err
	}
	if err := j.swapHead(ctx, j.seq, j.tag, seq, tag); err != nil {
		if !j.unsure {
			j.discard(ctx, ids)
		}
		return err
	}
	j.snap, j.snapTag = seq, tag
	j.log.WithFields(logrus.Fields{"seq": seq, "bytes": len(payload), "configs": len(ids)}).Info("swarm state journal: snapshot written")
	j.prune(ctx, seq, tag)
	return nil
}

// prune removes, in the background, what the snapshot at snap (tag
// snapTag) made useless: entries up to it, other snapshots up to it, and
// uncommitted entries up to it. It runs outside the lock because the store
// holds its writes during Snapshot and there can be hundreds of entries
// (about 5 ms each to remove); nothing the journal reads from now on is
// among them. Failures only leave garbage for the next snapshot.
func (j *Journal) prune(ctx context.Context, snap uint64, snapTag string) {
	j.pruning.Add(1)
	go func() {
		defer j.pruning.Done()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pruneTimeout)
		defer cancel()
		list, err := j.eng.ListConfigs(ctx, function.OwnerLabels(j.instance, "", ""))
		if err != nil {
			j.log.WithError(err).Warn("swarm state journal: could not list configs to prune; the next snapshot does")
			return
		}
		ids := make(chan string)
		var mu sync.Mutex
		var wg sync.WaitGroup
		removed, failed := 0, 0
		var firstErr error
		for range pruneWorkers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for id := range ids {
					err := j.eng.RemoveConfig(ctx, id)
					mu.Lock()
					switch {
					case err == nil || errors.Is(err, engine.ErrNotFound):
						removed++
					case firstErr == nil:
						firstErr = err
						fallthrough
					default:
						failed++
					}
					mu.Unlock()
				}
			}()
		}
		for _, c := range list {
			p, ok := parsePart(c)
			if ok && p.seq <= snap && (p.kind != stateSnapshot || p.tag != snapTag) {
				ids <- c.ID
			}
		}
		close(ids)
		wg.Wait()
		log := j.log.WithFields(logrus.Fields{"removed": removed, "snapshot": snap})
		if failed > 0 {
			log.WithError(firstErr).WithField("failed", failed).Warn("swarm state journal: pruning left configs; the next snapshot removes them")
			return
		}
		log.Debug("swarm state journal pruned")
	}()
}

// Len implements store.Journal: entries committed since the snapshot.
func (j *Journal) Len() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return int(j.seq - j.snap)
}

// part is one config of an entry or snapshot.
type part struct {
	kind      string
	seq       uint64
	tag, prev string
	idx, n    int
	sum       string
	cfg       engine.SwarmConfig
}

func parsePart(c engine.SwarmConfig) (part, bool) {
	p := part{kind: c.Labels[labelState], tag: c.Labels[labelTag], prev: c.Labels[labelPrev], sum: c.Labels[labelSum], cfg: c}
	if p.kind != stateEntry && p.kind != stateSnapshot {
		return p, false
	}
	var err1, err2, err3 error
	p.seq, err1 = strconv.ParseUint(c.Labels[labelSeq], 10, 64)
	p.idx, err2 = strconv.Atoi(c.Labels[labelPart])
	p.n, err3 = strconv.Atoi(c.Labels[labelParts])
	return p, errors.Join(err1, err2, err3) == nil && p.idx >= 0 && p.idx < p.n
}

type partKey struct {
	kind string
	seq  uint64
	tag  string
}

// payload reassembles the parts of one entry or snapshot; an error when
// one is missing or the sum does not match: once committed, it must be
// whole.
func (j *Journal) payload(ctx context.Context, parts []part) ([]byte, error) {
	if len(parts) == 0 {
		return nil, errors.New("not found")
	}
	sort.Slice(parts, func(a, b int) bool { return parts[a].idx < parts[b].idx })
	head := parts[0]
	if head.idx != 0 || len(parts) != head.n {
		return nil, fmt.Errorf("%d of its %d parts found", len(parts), head.n)
	}
	var buf bytes.Buffer
	for i, p := range parts {
		if p.idx != i || p.n != head.n {
			return nil, fmt.Errorf("part %d of %d missing", i+1, head.n)
		}
		data := p.cfg.Data
		if data == nil { // an engine whose list leaves the data out
			c, err := j.eng.InspectConfig(ctx, p.cfg.ID)
			if err != nil {
				return nil, err
			}
			data = c.Data
		}
		buf.Write(data)
	}
	sum := sha256.Sum256(buf.Bytes())
	if hex.EncodeToString(sum[:]) != head.sum {
		return nil, errors.New("its content does not match its checksum")
	}
	return buf.Bytes(), nil
}

// Replay implements store.Journal: the committed snapshot, then the
// committed entries after it, found by following the chain back from the
// head. Entries not on the chain (appends that failed, or a fenced
// daemon's) are skipped; a committed entry that cannot be read whole is an
// error, as replaying without it would lose a write.
func (j *Journal) Replay(ctx context.Context, apply func(ops []store.Op) error) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.refresh(ctx); err != nil {
		return err
	}
	// One list: the swarm answers it from one view of its store.
	list, err := j.eng.ListConfigs(ctx, function.OwnerLabels(j.instance, "", ""))
	if err != nil {
		return fmt.Errorf("swarm state journal: list: %w", err)
	}
	byKey := map[partKey][]part{}
	for _, c := range list {
		if p, ok := parsePart(c); ok {
			k := partKey{p.kind, p.seq, p.tag}
			byKey[k] = append(byKey[k], p)
		}
	}
	decode := func(k partKey) ([]store.Op, error) {
		data, err := j.payload(ctx, byKey[k])
		if err != nil {
			return nil, fmt.Errorf("swarm state journal: committed %s %d (%s) is unreadable: %w", k.kind, k.seq, k.tag, err)
		}
		var ops []store.Op
		if err := json.Unmarshal(data, &ops); err != nil {
			return nil, fmt.Errorf("swarm state journal: decode %s %d: %w", k.kind, k.seq, err)
		}
		return ops, nil
	}
	// The chain, newest first: each entry names the one before it.
	chain := make([]partKey, 0, j.seq-j.snap)
	for seq, tag := j.seq, j.tag; seq > j.snap; seq-- {
		k := partKey{stateEntry, seq, tag}
		ps := byKey[k]
		if len(ps) == 0 {
			return fmt.Errorf("swarm state journal: committed entry %d (%s) is missing", seq, tag)
		}
		sort.Slice(ps, func(a, b int) bool { return ps[a].idx < ps[b].idx })
		if ps[0].idx != 0 {
			return fmt.Errorf("swarm state journal: committed entry %d (%s) lacks its first part", seq, tag)
		}
		chain = append(chain, k)
		tag = ps[0].prev
	}
	if j.snap > 0 || j.snapTag != "" {
		ops, err := decode(partKey{stateSnapshot, j.snap, j.snapTag})
		if err != nil {
			return err
		}
		if err := apply(ops); err != nil {
			return fmt.Errorf("swarm state journal: apply snapshot %d: %w", j.snap, err)
		}
	}
	for i := len(chain) - 1; i >= 0; i-- {
		ops, err := decode(chain[i])
		if err != nil {
			return err
		}
		if len(ops) == 0 {
			continue
		}
		if err := apply(ops); err != nil {
			return fmt.Errorf("swarm state journal: apply entry %d: %w", chain[i].seq, err)
		}
	}
	j.log.WithFields(logrus.Fields{"seq": j.seq, "snapshot": j.snap, "entries": len(chain)}).Info("swarm state journal replayed")
	return nil
}
