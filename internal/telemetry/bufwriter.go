// Package telemetry holds shared observability plumbing.
package telemetry

import (
	"io"
	"sync"
	"time"
)

// BufferedWriter batches small writes (one access-log line per request) into
// few large ones. Writers append to a buffer under a short lock; a background
// goroutine swaps buffers and writes outside the lock every Interval, or as
// soon as MaxBuffer bytes are pending, so a slow disk does not block requests
// until the pending data exceeds 4×MaxBuffer (then Write waits: bounded
// memory beats unbounded). A crash loses at most about Interval of lines.
type BufferedWriter struct {
	w        io.Writer
	interval time.Duration
	max      int

	mu      sync.Mutex
	cond    *sync.Cond
	buf     []byte
	writing bool
	closed  bool
	err     error
	kick    chan struct{}
	done    chan struct{}
}

// NewBufferedWriter starts the flusher. interval ≤ 0 means 100 ms; maxBuffer
// ≤ 0 means 64 KiB.
func NewBufferedWriter(w io.Writer, interval time.Duration, maxBuffer int) *BufferedWriter {
	if interval <= 0 {
		interval = 100 * time.Millisecond
	}
	if maxBuffer <= 0 {
		maxBuffer = 64 << 10
	}
	b := &BufferedWriter{w: w, interval: interval, max: maxBuffer, kick: make(chan struct{}, 1), done: make(chan struct{})}
	b.cond = sync.NewCond(&b.mu)
	go b.loop()
	return b
}

// Write appends p (copied). It returns the last write error of the
// underlying writer, if any, so callers can see a broken sink.
func (b *BufferedWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	for len(b.buf) >= 4*b.max && !b.closed {
		b.cond.Wait()
	}
	if b.closed {
		b.mu.Unlock()
		return b.w.Write(p) // after Close: write through
	}
	b.buf = append(b.buf, p...)
	full := len(b.buf) >= b.max
	err := b.err
	b.mu.Unlock()
	if full {
		select {
		case b.kick <- struct{}{}:
		default:
		}
	}
	return len(p), err
}

func (b *BufferedWriter) loop() {
	t := time.NewTicker(b.interval)
	defer t.Stop()
	spare := make([]byte, 0, b.max)
	for {
		select {
		case <-t.C:
		case <-b.kick:
		case <-b.done:
			return
		}
		spare = b.flush(spare)
	}
}

// flush writes what is pending; spare is the buffer to swap in.
func (b *BufferedWriter) flush(spare []byte) []byte {
	b.mu.Lock()
	for b.writing {
		b.cond.Wait()
	}
	if len(b.buf) == 0 {
		b.mu.Unlock()
		return spare
	}
	out := b.buf
	b.buf = spare[:0]
	b.writing = true
	b.cond.Broadcast()
	b.mu.Unlock()

	_, err := b.w.Write(out)

	b.mu.Lock()
	b.writing = false
	if err != nil {
		b.err = err
	}
	b.cond.Broadcast()
	b.mu.Unlock()
	if cap(out) > 4*b.max { // do not keep a burst-sized buffer forever
		return make([]byte, 0, b.max)
	}
	return out[:0]
}

// Flush writes everything pending now.
func (b *BufferedWriter) Flush() error {
	b.flush(nil)
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// Close flushes and stops the flusher; later writes go straight through.
func (b *BufferedWriter) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.cond.Broadcast()
	b.mu.Unlock()
	close(b.done)
	return b.Flush()
}
