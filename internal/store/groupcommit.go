package store

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Group commit: hot inserts (CreateGrantSession, MarkJTI) are handed to one
// writer goroutine that writes everything queued so far (up to MaxBatch rows)
// in a single transaction and commits once, so N concurrent callers pay for
// one fsync instead of N. Every statement is an INSERT … ON CONFLICT that
// cannot fail on a duplicate key (0 rows affected = ErrConflict for that caller
// only), so one caller's conflict never aborts the batch. If a statement or
// the commit fails for any other reason, the batch is rolled back and every
// request is retried in its own transaction, so each caller gets its own
// result and no caller is told "ok" for a row that was rolled back.

const (
	defaultMaxBatch = 256
	// defaultMaxWait: measured with the token-issue workload at 64
	// connections (docs/decisions/0005-storage.md).
	defaultMaxWait = 300 * time.Microsecond
	maxMaxBatch    = 4096
	maxMaxWait     = 50 * time.Millisecond
	batchTxTimeout = 30 * time.Second
	// yieldRounds is how many scheduler yields without new arrivals end batch
	// collection (each costs well under a microsecond when idle).
	yieldRounds = 2
)

// hotOp is one queued insert.
type hotOp struct {
	ctx   context.Context
	q     qid
	args  []any
	state atomic.Int32 // opQueued → opTaken by the writer, or opAbandoned by the caller
	done  chan error   // buffered(1)
}

const (
	opQueued int32 = iota
	opTaken
	opAbandoned
)

type groupCommitter struct {
	b        backend
	maxBatch int
	maxWait  time.Duration

	ch     chan *hotOp
	stats  struct{ batches, rows, fallbacks, waits atomic.Uint64 }
	stop   chan struct{}
	exited chan struct{}
	once   sync.Once
}

func newGroupCommitter(b backend, o GroupCommitOptions) (*groupCommitter, error) {
	if o.MaxBatch < 0 || o.MaxBatch > maxMaxBatch {
		return nil, fmt.Errorf("store: group commit MaxBatch %d out of range 0..%d", o.MaxBatch, maxMaxBatch)
	}
	if o.MaxWait > maxMaxWait {
		return nil, fmt.Errorf("store: group commit MaxWait %s out of range (at most %s; negative: never wait)", o.MaxWait, maxMaxWait)
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = defaultMaxBatch
	}
	switch {
	case o.MaxWait == 0:
		o.MaxWait = defaultMaxWait
	case o.MaxWait < 0:
		o.MaxWait = 0
	}
	g := &groupCommitter{
		b:        b,
		maxBatch: o.MaxBatch,
		maxWait:  o.MaxWait,
		ch:       make(chan *hotOp, 4*o.MaxBatch),
		stop:     make(chan struct{}),
		exited:   make(chan struct{}),
	}
	go g.loop()
	return g, nil
}

// do queues one insert and waits for its own result. It returns ErrConflict
// when the statement affected no row. If ctx ends first, do returns ctx's
// error; the row may or may not have been written (as with any database call
// cancelled mid-flight).
func (g *groupCommitter) do(ctx context.Context, q qid, args []any) error {
	op := &hotOp{ctx: ctx, q: q, args: args, done: make(chan error, 1)}
	select {
	case <-g.stop:
		return ErrClosed
	default:
	}
	select {
	case g.ch <- op:
	case <-ctx.Done():
		return ctx.Err()
	case <-g.stop:
		return ErrClosed
	}
	select {
	case err := <-op.done:
		return err
	case <-ctx.Done():
		op.state.CompareAndSwap(opQueued, opAbandoned)
		return ctx.Err()
	case <-g.exited:
		select {
		case err := <-op.done:
			return err
		default:
			return ErrClosed
		}
	}
}

// close processes what is queued and stops the writer.
func (g *groupCommitter) close() {
	g.once.Do(func() { close(g.stop) })
	<-g.exited
}

func (g *groupCommitter) loop() {
	defer close(g.exited)
	batch := make([]*hotOp, 0, g.maxBatch)
	var timer *time.Timer
	lastRows := 0
	for {
		batch = batch[:0]
		select {
		case op := <-g.ch:
			batch = append(batch, op)
		case <-g.stop:
			g.drain()
			return
		}
		// Take whatever queued up meanwhile (typically during the previous
		// commit). Callers woken by the previous commit are often runnable but
		// not yet scheduled; yielding a few times lets them enqueue, which
		// keeps batches large without a fixed delay when idle.
		for spins := 0; len(batch) < g.maxBatch; spins++ {
			n := len(batch)
			batch = g.fill(batch)
			if len(batch) == n && spins >= yieldRounds || len(batch) >= g.maxBatch {
				break
			}
			runtime.Gosched()
		}
		// Wait for more only under concurrent load (the previous batch had
		// company): a lone request on an idle server commits at once.
		if g.maxWait > 0 && len(batch) < g.maxBatch && lastRows > 1 {
			g.stats.waits.Add(1)
			if timer == nil {
				timer = time.NewTimer(g.maxWait)
			} else {
				timer.Reset(g.maxWait)
			}
		wait:
			for len(batch) < g.maxBatch {
				select {
				case op := <-g.ch:
					batch = append(batch, op)
				case <-timer.C:
					break wait
				}
			}
			timer.Stop()
		}
		lastRows = len(batch)
		g.run(batch)
	}
}

// fill appends queued ops without blocking.
func (g *groupCommitter) fill(batch []*hotOp) []*hotOp {
	for len(batch) < g.maxBatch {
		select {
		case op := <-g.ch:
			batch = append(batch, op)
		default:
			return batch
		}
	}
	return batch
}

// drain runs everything still queued at Close.
func (g *groupCommitter) drain() {
	for {
		batch := make([]*hotOp, 0, g.maxBatch)
	fill:
		for len(batch) < g.maxBatch {
			select {
			case op := <-g.ch:
				batch = append(batch, op)
			default:
				break fill
			}
		}
		if len(batch) == 0 {
			return
		}
		g.run(batch)
	}
}

// run writes one batch. Ops abandoned by their callers are skipped.
func (g *groupCommitter) run(batch []*hotOp) {
	live := batch[:0:0]
	for _, op := range batch {
		if op.state.CompareAndSwap(opQueued, opTaken) && op.ctx.Err() == nil {
			live = append(live, op)
		} else {
			op.done <- op.ctx.Err()
		}
	}
	if len(live) == 0 {
		return
	}
	g.stats.batches.Add(1)
	g.stats.rows.Add(uint64(len(live)))
	if len(live) == 1 {
		live[0].done <- g.single(live[0])
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), batchTxTimeout)
	defer cancel()
	affected, err := g.runTx(ctx, live)
	if err != nil {
		g.stats.fallbacks.Add(1)
		// Something other than a duplicate failed (or the commit did): nothing
		// of this batch is committed. Retry each op alone so the healthy ones
		// succeed and only the bad one reports its error.
		for _, op := range live {
			op.done <- g.single(op)
		}
		return
	}
	for i, op := range live {
		if affected[i] == 0 {
			op.done <- ErrConflict
		} else {
			op.done <- nil
		}
	}
}

func (g *groupCommitter) runTx(ctx context.Context, ops []*hotOp) (affected []int64, err error) {
	tx, err := g.b.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = tx.rollback(ctx)
		}
	}()
	if be, ok := tx.(batchExecer); ok {
		affected, err = be.execBatch(ctx, ops)
		if err != nil {
			return nil, err
		}
	} else {
		affected = make([]int64, len(ops))
		for i, op := range ops {
			if affected[i], err = tx.exec(ctx, op.q, op.args...); err != nil {
				return nil, err
			}
		}
	}
	if err := tx.commit(ctx); err != nil {
		return nil, err
	}
	return affected, nil
}

// single runs one op in its own (autocommit) transaction.
func (g *groupCommitter) single(op *hotOp) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(op.ctx), batchTxTimeout)
	defer cancel()
	n, err := g.b.writer().exec(ctx, op.q, op.args...)
	if err != nil {
		if c := g.b.classify(err); c != nil {
			return c
		}
		return err
	}
	if n == 0 {
		return ErrConflict
	}
	return nil
}

// GroupCommitStats are cumulative counters of the group-commit writer.
type GroupCommitStats struct {
	Batches   uint64 // transactions committed (or attempted) by the writer
	Rows      uint64 // rows handed to those transactions
	Fallbacks uint64 // batches retried row by row after a non-conflict error
	Waits     uint64 // batches for which the writer waited (up to MaxWait) for more rows
}

func (g *groupCommitter) snapshot() GroupCommitStats {
	return GroupCommitStats{Batches: g.stats.batches.Load(), Rows: g.stats.rows.Load(), Fallbacks: g.stats.fallbacks.Load(), Waits: g.stats.waits.Load()}
}
