package store

import (
	"context"
	"fmt"
	"time"
)

// RunGC calls s.GC every interval until ctx is done, reporting each run to
// report (which may be nil). Run it in its own goroutine on one node or on
// all: GC is idempotent and deletes in small chunks.
func RunGC(ctx context.Context, s Store, every time.Duration, report func(removed int64, err error)) error {
	if every < time.Second {
		return fmt.Errorf("store: gc interval %s below 1s", every)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		n, err := s.GC(ctx, time.Now())
		if report != nil && ctx.Err() == nil {
			report(n, err)
		}
	}
}
