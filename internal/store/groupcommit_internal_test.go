package store

import (
	"context"
	"errors"
	"io/fs"
	"sync"
	"testing"
	"time"
)

// fakeBackend records what the group committer does. exec's behaviour is
// chosen by the first argument: "ok" → 1 row, "dup" → 0 rows, "bad" → error.
type fakeBackend struct {
	mu          sync.Mutex
	committed   []string // first args of rows committed
	pending     []string
	failCommits int           // how many commits fail before succeeding
	gate        chan struct{} // exec of "slow" blocks until it is closed
	txs         int
	singles     int
}

var errDisk = errors.New("disk on fire")

func (f *fakeBackend) name() string { return "fake" }
func (f *fakeBackend) writer() execer {
	return fakeExec{f: f, single: true}
}
func (f *fakeBackend) reader() execer { return fakeExec{f: f} }
func (f *fakeBackend) begin(context.Context) (txn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.txs++
	f.pending = nil
	return fakeExec{f: f}, nil
}
func (f *fakeBackend) timeArg(t time.Time) any        { return t }
func (f *fakeBackend) classify(error) error           { return nil }
func (f *fakeBackend) migrationFS() (fs.FS, error)    { return nil, nil }
func (f *fakeBackend) migrationSQL() (string, string) { return "", "" }
func (f *fakeBackend) ping(context.Context) error     { return nil }
func (f *fakeBackend) close() error                   { return nil }

type fakeExec struct {
	f      *fakeBackend
	single bool
}

func (e fakeExec) exec(_ context.Context, _ qid, args ...any) (int64, error) {
	v := args[0].(string)
	if v == "slow" {
		<-e.f.gate
	}
	e.f.mu.Lock()
	defer e.f.mu.Unlock()
	switch v {
	case "bad":
		return 0, errDisk
	case "dup":
		return 0, nil
	}
	if e.single {
		e.f.singles++
		e.f.committed = append(e.f.committed, v)
	} else {
		e.f.pending = append(e.f.pending, v)
	}
	return 1, nil
}
func (e fakeExec) query(context.Context, qid, ...any) (rowsIter, error) {
	return nil, errors.New("n/a")
}
func (e fakeExec) execRaw(context.Context, string, ...any) (int64, error) {
	return 0, errors.New("n/a")
}
func (e fakeExec) queryRaw(context.Context, string, ...any) (rowsIter, error) {
	return nil, errors.New("n/a")
}
func (e fakeExec) commit(context.Context) error {
	e.f.mu.Lock()
	defer e.f.mu.Unlock()
	if e.f.failCommits > 0 {
		e.f.failCommits--
		e.f.pending = nil
		return errDisk
	}
	e.f.committed = append(e.f.committed, e.f.pending...)
	e.f.pending = nil
	return nil
}
func (e fakeExec) rollback(context.Context) error {
	e.f.mu.Lock()
	defer e.f.mu.Unlock()
	e.f.pending = nil
	return nil
}

func newOps(vals ...string) []*hotOp {
	ops := make([]*hotOp, len(vals))
	for i, v := range vals {
		ops[i] = &hotOp{ctx: context.Background(), args: []any{v}, done: make(chan error, 1)}
	}
	return ops
}

func results(ops []*hotOp) []error {
	out := make([]error, len(ops))
	for i, op := range ops {
		out[i] = <-op.done
	}
	return out
}

func TestGroupCommitOneTransactionPerBatch(t *testing.T) {
	f := &fakeBackend{}
	g := &groupCommitter{b: f, maxBatch: 16}
	ops := newOps("a", "dup", "b", "c")
	g.run(ops)
	res := results(ops)
	if res[0] != nil || res[2] != nil || res[3] != nil || !errors.Is(res[1], ErrConflict) {
		t.Fatalf("results = %v", res)
	}
	if f.txs != 1 || f.singles != 0 {
		t.Fatalf("txs=%d singles=%d, want one batch transaction", f.txs, f.singles)
	}
	if len(f.committed) != 3 {
		t.Fatalf("committed %v", f.committed)
	}
	if st := g.snapshot(); st.Batches != 1 || st.Rows != 4 || st.Fallbacks != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

// A failing statement must not make other callers fail, and nobody may be
// told "ok" for a row that was rolled back.
func TestGroupCommitIsolatesFailingOp(t *testing.T) {
	f := &fakeBackend{}
	g := &groupCommitter{b: f, maxBatch: 16}
	ops := newOps("a", "bad", "b", "dup")
	g.run(ops)
	res := results(ops)
	if res[0] != nil || res[2] != nil {
		t.Fatalf("healthy ops failed: %v", res)
	}
	if !errors.Is(res[1], errDisk) {
		t.Fatalf("bad op got %v, want its own error", res[1])
	}
	if !errors.Is(res[3], ErrConflict) {
		t.Fatalf("dup op got %v", res[3])
	}
	if len(f.committed) != 2 || f.singles != 2 {
		t.Fatalf("committed=%v singles=%d: healthy rows must be retried alone", f.committed, f.singles)
	}
	if g.snapshot().Fallbacks != 1 {
		t.Fatalf("fallbacks = %d", g.snapshot().Fallbacks)
	}
}

func TestGroupCommitCommitFailureRetriesIndividually(t *testing.T) {
	f := &fakeBackend{failCommits: 1}
	g := &groupCommitter{b: f, maxBatch: 16}
	ops := newOps("a", "b")
	g.run(ops)
	for i, err := range results(ops) {
		if err != nil {
			t.Fatalf("op %d: %v", i, err)
		}
	}
	if len(f.committed) != 2 || f.singles != 2 {
		t.Fatalf("committed=%v singles=%d", f.committed, f.singles)
	}
}

func TestGroupCommitSkipsAbandonedOps(t *testing.T) {
	f := &fakeBackend{}
	g := &groupCommitter{b: f, maxBatch: 16}
	ops := newOps("a", "b")
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	ops[1].ctx = cctx
	g.run(ops)
	res := results(ops)
	if res[0] != nil || !errors.Is(res[1], context.Canceled) {
		t.Fatalf("results = %v", res)
	}
	if len(f.committed) != 1 || f.committed[0] != "a" {
		t.Fatalf("committed = %v, abandoned op must not be written", f.committed)
	}
}

func TestGroupCommitCloseDrainsAndRejects(t *testing.T) {
	f := &fakeBackend{}
	g, err := newGroupCommitter(f, GroupCommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 100)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = g.do(context.Background(), 0, []any{"x"})
		}()
	}
	wg.Wait()
	g.close()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("op %d: %v", i, err)
		}
	}
	if err := g.do(context.Background(), 0, []any{"late"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v, want ErrClosed", err)
	}
	if len(f.committed) != 100 {
		t.Fatalf("committed %d rows, want 100", len(f.committed))
	}
}

func TestGroupCommitOptionBounds(t *testing.T) {
	for _, o := range []GroupCommitOptions{{MaxBatch: -1}, {MaxBatch: maxMaxBatch + 1}, {MaxWait: time.Second}, {MaxWait: maxMaxWait + 1}} {
		if _, err := newGroupCommitter(&fakeBackend{}, o); err == nil {
			t.Fatalf("options %+v accepted", o)
		}
	}
}

// TestGroupCommitWaitsOnlyUnderLoad: a lone request on an idle writer is
// committed without waiting for company; once a batch held several rows the
// writer waits (up to MaxWait) before the next commit, and stops waiting
// when lone requests return.
func TestGroupCommitWaitsOnlyUnderLoad(t *testing.T) {
	f := &fakeBackend{gate: make(chan struct{})}
	g, err := newGroupCommitter(f, GroupCommitOptions{MaxWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	ctx := context.Background()
	do := func(v string) chan error {
		ch := make(chan error, 1)
		go func() { ch <- g.do(ctx, 0, []any{v}) }()
		return ch
	}
	waitQueued := func(n int) {
		for len(g.ch) < n {
			time.Sleep(time.Millisecond)
		}
	}
	// The first request blocks the writer in its statement while two more
	// queue up; they then form one batch of two.
	slow := do("slow")
	for g.stats.rows.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	a, b := do("a"), do("b")
	waitQueued(2)
	close(f.gate)
	for _, ch := range []chan error{slow, a, b} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	if st := g.snapshot(); st.Batches != 2 || st.Rows != 3 || st.Waits != 0 {
		t.Fatalf("after a lone request and a batch of two: %+v (a lone first request must not wait)", st)
	}
	// The batch had company: the next commit waits once.
	if err := <-do("c"); err != nil {
		t.Fatal(err)
	}
	if st := g.snapshot(); st.Waits != 1 {
		t.Fatalf("after a batch of two, the next batch did not wait: %+v", st)
	}
	// c was alone: the next lone request does not wait.
	if err := <-do("d"); err != nil {
		t.Fatal(err)
	}
	if st := g.snapshot(); st.Waits != 1 || st.Batches != 4 {
		t.Fatalf("a lone request after a lone batch waited: %+v", st)
	}
}
