package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// SQLite layout: one database file in WAL mode. All writes go through one
// connection (SetMaxOpenConns(1)) — SQLite has a single writer anyway, and
// serializing in Go avoids SQLITE_BUSY between our own connections. Reads use
// a separate pool of query_only connections that never wait for the writer
// (WAL readers see the last committed snapshot). Write transactions use BEGIN
// IMMEDIATE so a concurrent process (the CLI) waits on busy_timeout instead
// of failing on lock upgrade.

const (
	defaultBusyTimeout = 5 * time.Second
	defaultReadConns   = 4
	maxReadConns       = 64
	walSizeLimit       = 64 << 20 // bytes the WAL is truncated to after checkpoints
	// The writer's page cache is 32 MiB (SQLite default: 2 MiB) so index pages
	// of large grant_sessions tables stay cached; readers keep the default.
)

type sqliteBackend struct {
	wdb, rdb *sql.DB
	wst, rst [numQueries]*sql.Stmt
}

// OpenSQLite opens (creating if needed, mode 0600) the SQLite database file
// at path, enables WAL, applies the embedded migrations and starts the
// group-commit writer.
func OpenSQLite(path string, o SQLiteOptions) (Store, error) {
	if path == "" || strings.ContainsAny(path, "?#\x00") {
		return nil, fmt.Errorf("store: sqlite path %q must be non-empty and must not contain '?', '#' or NUL", path)
	}
	sync := strings.ToUpper(o.Synchronous)
	switch sync {
	case "":
		sync = "FULL"
	case "FULL", "NORMAL":
	default:
		return nil, fmt.Errorf("store: sqlite synchronous %q: want FULL or NORMAL", o.Synchronous)
	}
	if o.BusyTimeout < 0 || o.BusyTimeout > time.Hour {
		return nil, fmt.Errorf("store: sqlite busy timeout %s out of range 0..1h", o.BusyTimeout)
	}
	if o.BusyTimeout == 0 {
		o.BusyTimeout = defaultBusyTimeout
	}
	if o.ReadConns < 0 || o.ReadConns > maxReadConns {
		return nil, fmt.Errorf("store: sqlite read connections %d out of range 0..%d", o.ReadConns, maxReadConns)
	}
	if o.ReadConns == 0 {
		o.ReadConns = defaultReadConns
	}
	if err := createPrivateFile(path); err != nil {
		return nil, err
	}

	common := fmt.Sprintf("_busy_timeout=%d&_foreign_keys=1", o.BusyTimeout.Milliseconds())
	wdb, err := sql.Open("sqlite", path+"?"+common+"&_txlock=immediate&_journal_mode=WAL&_synchronous="+sync+
		fmt.Sprintf("&_pragma=journal_size_limit(%d)&_pragma=cache_size(-32768)", walSizeLimit))
	if err != nil {
		return nil, fmt.Errorf("store: open sqlite %q: %w", path, err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	b := &sqliteBackend{wdb: wdb}
	fail := func(err error) (Store, error) {
		_ = b.close()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Several processes opening a new file at once race to switch it to WAL;
	// SQLite answers some of those lock attempts SQLITE_BUSY without waiting
	// on busy_timeout, so the first contact is retried for that long.
	if err := retryBusy(ctx, o.BusyTimeout, func() error { return checkSQLitePragmas(ctx, wdb, sync) }); err != nil {
		return fail(fmt.Errorf("store: sqlite %q: %w", path, err))
	}

	rdb, err := sql.Open("sqlite", path+"?"+common+"&_query_only=1")
	if err != nil {
		return fail(fmt.Errorf("store: open sqlite %q for reading: %w", path, err))
	}
	rdb.SetMaxOpenConns(o.ReadConns)
	rdb.SetMaxIdleConns(o.ReadConns)
	rdb.SetConnMaxIdleTime(0)
	rdb.SetConnMaxLifetime(0)
	b.rdb = rdb

	now := o.Now
	if now == nil {
		now = time.Now
	}
	if err := migrate(ctx, b, now); err != nil {
		return fail(err)
	}
	for q := range numQueries {
		if b.wst[q], err = wdb.PrepareContext(ctx, queries[q]); err != nil {
			return fail(fmt.Errorf("store: sqlite prepare statement %d: %w", q, err))
		}
		if b.rst[q], err = rdb.PrepareContext(ctx, queries[q]); err != nil {
			return fail(fmt.Errorf("store: sqlite prepare statement %d: %w", q, err))
		}
	}
	s, err := newSQLStore(b, now, o.GroupCommit)
	if err != nil {
		return fail(err)
	}
	return s, nil
}

// retryBusy runs fn until it returns something other than SQLITE_BUSY, for
// at most timeout.
func retryBusy(ctx context.Context, timeout time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	delay := time.Millisecond
	for {
		err := fn()
		if !isBusy(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
}

func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// createPrivateFile makes sure the database file exists with mode 0600 (it
// holds password hashes and encrypted keys; SQLite gives the -wal and -shm
// files the same mode) and its directory exists with 0700.
func createPrivateFile(path string) error {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("store: create data directory: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("store: open sqlite file: %w", err)
	}
	return f.Close()
}

// checkSQLitePragmas verifies that the writer connection really runs in WAL
// mode with the requested durability (fail closed if the file system refused).
func checkSQLitePragmas(ctx context.Context, db *sql.DB, sync string) error {
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal_mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal_mode is %q, WAL required (file system without shared memory support?)", mode)
	}
	var level int
	if err := db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&level); err != nil {
		return fmt.Errorf("read synchronous: %w", err)
	}
	want := map[string]int{"NORMAL": 1, "FULL": 2}[sync]
	if level != want {
		return fmt.Errorf("synchronous is %d, want %d (%s)", level, want, sync)
	}
	var fk int
	if err := db.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil || fk != 1 {
		return fmt.Errorf("foreign keys not enabled (%d): %v", fk, err)
	}
	return nil
}

func (b *sqliteBackend) name() string { return "sqlite" }

func (b *sqliteBackend) writer() execer { return sqlDBExecer{db: b.wdb, st: &b.wst} }
func (b *sqliteBackend) reader() execer { return sqlDBExecer{db: b.rdb, st: &b.rst} }

func (b *sqliteBackend) begin(ctx context.Context) (txn, error) {
	tx, err := b.wdb.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return &sqlTx{tx: tx, st: &b.wst}, nil
}

func (b *sqliteBackend) timeArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func (b *sqliteBackend) classify(err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return nil
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
		return ErrConflict
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return fmt.Errorf("referenced user or client: %w", ErrNotFound)
	}
	return nil
}

func (b *sqliteBackend) migrationFS() (fs.FS, error) { return subFS("sqlite") }

func (b *sqliteBackend) migrationSQL() (string, string) {
	// BEGIN IMMEDIATE (the writer's _txlock) already excludes other writers.
	return `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER NOT NULL PRIMARY KEY,
    checksum   TEXT    NOT NULL,
    applied_at INTEGER NOT NULL
) STRICT`, ""
}

func (b *sqliteBackend) ping(ctx context.Context) error {
	if b.rdb == nil {
		return b.wdb.PingContext(ctx)
	}
	return b.rdb.PingContext(ctx)
}

func (b *sqliteBackend) close() error {
	var errs []error
	for q := range numQueries {
		for _, st := range []*sql.Stmt{b.wst[q], b.rst[q]} {
			if st != nil {
				errs = append(errs, st.Close())
			}
		}
	}
	if b.rdb != nil {
		errs = append(errs, b.rdb.Close())
	}
	if b.wdb != nil {
		errs = append(errs, b.wdb.Close())
	}
	return errors.Join(errs...)
}

// ---- database/sql adapters ----

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { _ = r.Rows.Close() }

type sqlDBExecer struct {
	db *sql.DB
	st *[numQueries]*sql.Stmt
}

func (e sqlDBExecer) exec(ctx context.Context, q qid, args ...any) (int64, error) {
	res, err := e.st[q].ExecContext(ctx, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (e sqlDBExecer) query(ctx context.Context, q qid, args ...any) (rowsIter, error) {
	rows, err := e.st[q].QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (e sqlDBExecer) execRaw(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := e.db.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (e sqlDBExecer) queryRaw(ctx context.Context, query string, args ...any) (rowsIter, error) {
	rows, err := e.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

type sqlTx struct {
	tx *sql.Tx
	st *[numQueries]*sql.Stmt // prepared on the writer connection
}

func (t *sqlTx) stmt(ctx context.Context, q qid) (*sql.Stmt, error) {
	if t.st[q] == nil { // during migrations nothing is prepared yet
		return nil, fmt.Errorf("statement %d not prepared", q)
	}
	return t.tx.StmtContext(ctx, t.st[q]), nil
}

func (t *sqlTx) exec(ctx context.Context, q qid, args ...any) (int64, error) {
	st, err := t.stmt(ctx, q)
	if err != nil {
		return 0, err
	}
	res, err := st.ExecContext(ctx, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (t *sqlTx) query(ctx context.Context, q qid, args ...any) (rowsIter, error) {
	st, err := t.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (t *sqlTx) execRaw(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := t.tx.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (t *sqlTx) queryRaw(ctx context.Context, query string, args ...any) (rowsIter, error) {
	rows, err := t.tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (t *sqlTx) commit(context.Context) error   { return t.tx.Commit() }
func (t *sqlTx) rollback(context.Context) error { return t.tx.Rollback() }
