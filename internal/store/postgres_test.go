package store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sekisho/sekisho/internal/store"
	"github.com/sekisho/sekisho/internal/store/storetest"
)

// postgresDSN returns a reachable server DSN or skips (fails when
// SEKISHO_TEST_SERVICES=require).
func postgresDSN(t testing.TB) string {
	t.Helper()
	candidates := []string{
		"postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
		"postgres://root@127.0.0.1:5432/test?sslmode=disable",
	}
	if env := os.Getenv("SEKISHO_TEST_POSTGRES_DSN"); env != "" {
		candidates = []string{env}
	}
	var lastErr error
	for _, dsn := range candidates {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		conn, err := pgx.Connect(ctx, dsn)
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return dsn
		}
		lastErr = err
	}
	if os.Getenv("SEKISHO_TEST_SERVICES") == "require" {
		t.Fatalf("PostgreSQL required (SEKISHO_TEST_SERVICES=require) but unreachable: %v", lastErr)
	}
	t.Skipf("PostgreSQL unreachable (tried 127.0.0.1:5432 as postgres and root, or SEKISHO_TEST_POSTGRES_DSN); set SEKISHO_TEST_SERVICES=require to fail instead: %v", lastErr)
	return ""
}

// pgSchema creates a fresh schema, returns a DSN whose search_path selects it,
// and drops it when the test ends.
func pgSchema(t testing.TB, serverDSN string) string {
	t.Helper()
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	schema := "sekisho_test_" + hex.EncodeToString(rnd[:])
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, serverDSN)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, serverDSN)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(serverDSN)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

type pgDB struct {
	dsn string
	o   store.PostgresOptions
}

func (d pgDB) Open() (store.Store, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return store.OpenPostgres(ctx, d.dsn, d.o)
}

func (d pgDB) Exec(q string) error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, d.dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, q); err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	return nil
}

func TestPostgres(t *testing.T) {
	server := postgresDSN(t)
	storetest.Run(t, func(t *testing.T) storetest.DB {
		return pgDB{dsn: pgSchema(t, server), o: store.PostgresOptions{MaxConns: 8}}
	})
}

func TestPostgresNoGroupCommit(t *testing.T) {
	server := postgresDSN(t)
	storetest.Run(t, func(t *testing.T) storetest.DB {
		return pgDB{dsn: pgSchema(t, server), o: store.PostgresOptions{MaxConns: 8,
			GroupCommit: store.GroupCommitOptions{Disabled: true}}}
	})
}
