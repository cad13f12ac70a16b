package telemetry

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

type countingWriter struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
	fail   bool
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	if c.fail {
		return 0, errors.New("disk full")
	}
	return c.b.Write(p)
}

func (c *countingWriter) snapshot() (string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.String(), c.writes
}

func TestBufferedWriterBatchesAndKeepsEveryLine(t *testing.T) {
	cw := &countingWriter{}
	w := NewBufferedWriter(cw, time.Hour, 1<<20) // only Close flushes
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				fmt.Fprintf(w, "g%d line %d\n", g, i)
			}
		}()
	}
	wg.Wait()
	if _, n := cw.snapshot(); n != 0 {
		t.Fatalf("%d writes before the interval: not buffered", n)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out, writes := cw.snapshot()
	if writes != 1 {
		t.Fatalf("%d writes for 4000 lines, want 1 batch", writes)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 4000 {
		t.Fatalf("%d lines, want 4000", len(lines))
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "g") || !strings.Contains(l, " line ") {
			t.Fatalf("torn line %q", l)
		}
	}
}

func TestBufferedWriterFlushesOnIntervalAndSize(t *testing.T) {
	cw := &countingWriter{}
	w := NewBufferedWriter(cw, 20*time.Millisecond, 64)
	defer w.Close()
	w.Write([]byte("a\n"))
	deadline := time.Now().Add(2 * time.Second)
	for {
		if out, _ := cw.snapshot(); out == "a\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not flushed after the interval")
		}
		time.Sleep(5 * time.Millisecond)
	}
	w.Write(bytes.Repeat([]byte("x"), 100)) // over MaxBuffer: flushed promptly
	for {
		if out, _ := cw.snapshot(); len(out) == 102 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("large write not flushed")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBufferedWriterReportsSinkErrors(t *testing.T) {
	cw := &countingWriter{fail: true}
	w := NewBufferedWriter(cw, time.Hour, 1<<20)
	w.Write([]byte("x\n"))
	if err := w.Flush(); err == nil {
		t.Fatal("sink error not reported by Flush")
	}
	if _, err := w.Write([]byte("y\n")); err == nil {
		t.Fatal("sink error not reported by the next Write")
	}
	w.Close()
}
