package store

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFiles embed.FS

// migration is one embedded schema change. Files are named NNNN_title.sql;
// NNNN is the version. An applied migration must never be edited: its
// SHA-256 is recorded and verified at every start.
type migration struct {
	version  int64
	name     string
	sql      string
	checksum string
}

func loadMigrations(fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("store: read migrations: %w", err)
	}
	var out []migration
	seen := map[int64]string{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("store: migration file %q: name must be NNNN_title.sql", e.Name())
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("store: migrations %q and %q share version %d", prev, e.Name(), v)
		}
		seen[v] = e.Name()
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("store: read migration %q: %w", e.Name(), err)
		}
		sum := sha256.Sum256(b)
		out = append(out, migration{version: v, name: e.Name(), sql: string(b), checksum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i, m := range out {
		if m.version != int64(i+1) {
			return nil, fmt.Errorf("store: migration versions must be contiguous from 1; %q is version %d", m.name, m.version)
		}
	}
	return out, nil
}

func subFS(dir string) (fs.FS, error) {
	return fs.Sub(migrationFiles, path.Join("migrations", dir))
}

// migrate applies pending migrations, one transaction each. Every
// transaction first takes the backend's migration lock (SQLite: BEGIN
// IMMEDIATE; PostgreSQL: an advisory transaction lock), then re-reads
// schema_migrations, verifies every applied migration's checksum, refuses a
// database newer than this binary, and applies the next pending migration.
// Two processes starting at once therefore apply each migration exactly once.
func migrate(ctx context.Context, b backend, now func() time.Time) error {
	fsys, err := b.migrationFS()
	if err != nil {
		return err
	}
	ms, err := loadMigrations(fsys)
	if err != nil {
		return err
	}
	create, lock := b.migrationSQL()
	for {
		done, err := migrateStep(ctx, b, ms, create, lock, now)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

func migrateStep(ctx context.Context, b backend, ms []migration, create, lock string, now func() time.Time) (done bool, err error) {
	tx, err := b.begin(ctx)
	if err != nil {
		return false, fmt.Errorf("store: begin migration: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.rollback(context.WithoutCancel(ctx))
		}
	}()
	if lock != "" {
		if _, err := tx.execRaw(ctx, lock); err != nil {
			return false, fmt.Errorf("store: take migration lock: %w", err)
		}
	}
	if _, err := tx.execRaw(ctx, create); err != nil {
		return false, fmt.Errorf("store: create schema_migrations: %w", err)
	}
	rows, err := tx.queryRaw(ctx, `SELECT version, checksum FROM schema_migrations ORDER BY version`)
	if err != nil {
		return false, fmt.Errorf("store: read schema_migrations: %w", err)
	}
	applied := map[int64]string{}
	for rows.Next() {
		var v int64
		var sum string
		if err := rows.Scan(&v, &sum); err != nil {
			rows.Close()
			return false, fmt.Errorf("store: read schema_migrations: %w", err)
		}
		applied[v] = sum
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("store: read schema_migrations: %w", err)
	}
	latest := ms[len(ms)-1].version
	for v := range applied {
		if v > latest {
			return false, fmt.Errorf("store: database schema version %d is newer than this binary supports (%d); "+
				"refusing to start (upgrade sekisho or restore a matching backup)", v, latest)
		}
	}
	var next *migration
	for i := range ms {
		m := &ms[i]
		sum, ok := applied[m.version]
		if !ok {
			if next == nil {
				next = m
			}
			continue
		}
		if next != nil {
			return false, fmt.Errorf("store: migration %s is applied but earlier %s is not; database is inconsistent",
				m.name, next.name)
		}
		if sum != m.checksum {
			return false, fmt.Errorf("store: applied migration %s has checksum %s but this binary's is %s: "+
				"the migration was changed after it was applied; refusing to start", m.name, truncate(sum, 16), m.checksum[:16])
		}
	}
	if next == nil {
		if err := tx.commit(ctx); err != nil {
			return false, fmt.Errorf("store: commit migration check: %w", err)
		}
		return true, nil
	}
	if _, err := tx.execRaw(ctx, next.sql); err != nil {
		return false, fmt.Errorf("store: apply migration %s: %w", next.name, err)
	}
	if _, err := tx.execRaw(ctx, rebindFor(b, `INSERT INTO schema_migrations (version, checksum, applied_at) VALUES (?, ?, ?)`),
		next.version, next.checksum, b.timeArg(utcMicro(now()))); err != nil {
		return false, fmt.Errorf("store: record migration %s: %w", next.name, err)
	}
	if err := tx.commit(ctx); err != nil {
		return false, fmt.Errorf("store: commit migration %s: %w", next.name, err)
	}
	return false, nil
}

// rebinder is implemented by backends whose placeholders are not "?".
type rebinder interface{ rebind(string) string }

func rebindFor(b backend, q string) string {
	if r, ok := b.(rebinder); ok {
		return r.rebind(q)
	}
	return q
}
