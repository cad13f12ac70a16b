package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgreSQL: a pgxpool; statements are prepared and cached per connection by
// pgx (QueryExecModeCacheStatement). Group-committed inserts are pipelined in
// one pgx.Batch inside one transaction: one round trip, one WAL flush.

const (
	defaultPGMaxConns = 16
	maxPGMaxConns     = 1024
)

type pgBackend struct {
	pool *pgxpool.Pool
	sqls [numQueries]string
}

// OpenPostgres connects to PostgreSQL (pgx DSN or URL; select the schema with
// search_path), applies the embedded migrations under an advisory lock and
// starts the group-commit writer.
func OpenPostgres(ctx context.Context, dsn string, o PostgresOptions) (Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgconn redacts the password in parse errors.
		return nil, fmt.Errorf("store: parse postgres dsn: %w", err)
	}
	if o.MaxConns < 0 || o.MaxConns > maxPGMaxConns {
		return nil, fmt.Errorf("store: postgres MaxConns %d out of range 0..%d", o.MaxConns, maxPGMaxConns)
	}
	if o.MaxConns == 0 {
		o.MaxConns = defaultPGMaxConns
	}
	cfg.MaxConns = o.MaxConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: connect postgres: %w", err)
	}
	b := &pgBackend{pool: pool}
	for q := range numQueries {
		b.sqls[q] = b.rebind(queries[q])
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: connect postgres: %w", err)
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	if err := migrate(ctx, b, now); err != nil {
		pool.Close()
		return nil, err
	}
	s, err := newSQLStore(b, now, o.GroupCommit)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// rebind turns "?" placeholders into $1, $2, … (core statements contain no
// literal question marks).
func (b *pgBackend) rebind(q string) string {
	var sb strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			sb.WriteByte('$')
			sb.WriteString(strconv.Itoa(n))
			continue
		}
		sb.WriteByte(q[i])
	}
	return sb.String()
}

func (b *pgBackend) name() string   { return "postgres" }
func (b *pgBackend) writer() execer { return pgExecer{q: b.pool, sqls: &b.sqls} }
func (b *pgBackend) reader() execer { return pgExecer{q: b.pool, sqls: &b.sqls} }
func (b *pgBackend) ping(ctx context.Context) error {
	return b.pool.Ping(ctx)
}

func (b *pgBackend) close() error {
	b.pool.Close()
	return nil
}

func (b *pgBackend) begin(ctx context.Context) (txn, error) {
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return &pgTx{pgExecer: pgExecer{q: tx, sqls: &b.sqls}, tx: tx}, nil
}

func (b *pgBackend) timeArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

func (b *pgBackend) classify(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return nil
	}
	switch pe.Code {
	case "23505": // unique_violation
		return ErrConflict
	case "23503": // foreign_key_violation
		return fmt.Errorf("referenced user or client: %w", ErrNotFound)
	}
	return nil
}

func (b *pgBackend) migrationFS() (fs.FS, error) { return subFS("postgres") }

func (b *pgBackend) migrationSQL() (string, string) {
	return `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    BIGINT      NOT NULL PRIMARY KEY,
    checksum   TEXT        NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL
)`,
		// Serializes migrations of nodes sharing this schema; released at commit.
		`SELECT pg_advisory_xact_lock(hashtext('sekisho.schema_migrations.' || coalesce(current_schema(), '')))`
}

// pgQuerier is the common subset of *pgxpool.Pool and pgx.Tx.
type pgQuerier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

type pgExecer struct {
	q    pgQuerier
	sqls *[numQueries]string
}

func (e pgExecer) exec(ctx context.Context, q qid, args ...any) (int64, error) {
	return e.execRaw(ctx, e.sqls[q], args...)
}

func (e pgExecer) query(ctx context.Context, q qid, args ...any) (rowsIter, error) {
	return e.queryRaw(ctx, e.sqls[q], args...)
}

func (e pgExecer) execRaw(ctx context.Context, sql string, args ...any) (int64, error) {
	tag, err := e.q.Exec(ctx, sql, args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func (e pgExecer) queryRaw(ctx context.Context, sql string, args ...any) (rowsIter, error) {
	rows, err := e.q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return rows, nil
}

type pgTx struct {
	pgExecer
	tx pgx.Tx
}

func (t *pgTx) commit(ctx context.Context) error   { return t.tx.Commit(ctx) }
func (t *pgTx) rollback(ctx context.Context) error { return t.tx.Rollback(ctx) }

// execBatch pipelines ops in one round trip.
func (t *pgTx) execBatch(ctx context.Context, ops []*hotOp) ([]int64, error) {
	batch := &pgx.Batch{}
	for _, op := range ops {
		batch.Queue(t.sqls[op.q], op.args...)
	}
	br := t.tx.SendBatch(ctx, batch)
	affected := make([]int64, len(ops))
	var firstErr error
	for i := range ops {
		tag, err := br.Exec()
		if err != nil {
			firstErr = err
			break
		}
		affected[i] = tag.RowsAffected()
	}
	if err := br.Close(); err != nil && firstErr == nil {
		firstErr = err
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return affected, nil
}
