package store_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/store"
	"github.com/sekisho/sekisho/internal/store/storetest"
)

type sqliteDB struct {
	path string
	o    store.SQLiteOptions
}

func (d sqliteDB) Open() (store.Store, error) { return store.OpenSQLite(d.path, d.o) }

func (d sqliteDB) Exec(q string) error {
	db, err := sql.Open("sqlite", d.path)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.Exec(q)
	return err
}

func TestSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.DB {
		return sqliteDB{path: filepath.Join(t.TempDir(), "sekisho.db")}
	})
}

func TestSQLiteNoGroupCommitNormalSync(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.DB {
		return sqliteDB{path: filepath.Join(t.TempDir(), "sekisho.db"),
			o: store.SQLiteOptions{Synchronous: "NORMAL", GroupCommit: store.GroupCommitOptions{Disabled: true}}}
	})
}

func TestRunGC(t *testing.T) {
	s, err := store.OpenSQLite(filepath.Join(t.TempDir(), "gc.db"), store.SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := store.RunGC(t.Context(), s, time.Millisecond, nil); err == nil {
		t.Fatal("sub-second interval accepted")
	}
	g := store.GrantSession{Kind: store.KindCode, Signature: "old", ExpiresAt: time.Now().Add(-time.Minute)}
	if err := s.CreateGrantSession(t.Context(), &g); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	removed := make(chan int64, 10)
	go func() {
		done <- store.RunGC(ctx, s, time.Second, func(n int64, err error) {
			if err != nil {
				t.Error(err)
			}
			removed <- n
		})
	}()
	select {
	case n := <-removed:
		if n != 1 {
			t.Fatalf("first GC run removed %d, want 1", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("GC loop did not run")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetGrantSession(t.Context(), store.KindCode, "old"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired row still present: %v", err)
	}
}
