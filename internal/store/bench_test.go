package store_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/store"
)

// benchGrant is a realistic access-token row: fosite's serialized request for
// a client-credentials token is a few hundred bytes to ~1 KiB.
func benchGrant(i int64, data []byte) *store.GrantSession {
	now := time.Now()
	return &store.GrantSession{
		Kind: store.KindAccess, Signature: fmt.Sprintf("bench-signature-%043d", i), RequestID: fmt.Sprintf("req-%d", i),
		ClientID: "bench-client", Subject: "bench-client", Active: true, Data: data, JTI: fmt.Sprintf("jti-%d", i),
		RequestedAt: now, ExpiresAt: now.Add(10 * time.Minute),
	}
}

// runInsertBench measures CreateGrantSession from 64 concurrent goroutines
// (the token endpoint at 64 connections). Report: rows/s.
func runInsertBench(b *testing.B, s store.Store) {
	data := make([]byte, 800)
	for i := range data {
		data[i] = byte('a' + i%26)
	}
	var seq atomic.Int64
	b.SetParallelism(max(1, 64/testingProcs()))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.CreateGrantSession(context.Background(), benchGrant(seq.Add(1), data)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	if st, ok := s.(store.GroupCommitStatser); ok {
		if gs := st.GroupCommitStats(); gs.Batches > 0 {
			b.ReportMetric(float64(gs.Rows)/float64(gs.Batches), "rows/batch")
		}
	}
}

func BenchmarkCreateGrantSessionParallel(b *testing.B) {
	for _, tc := range []struct {
		name string
		o    store.SQLiteOptions
	}{
		{"sqlite/full/groupcommit", store.SQLiteOptions{}},
		{"sqlite/normal/groupcommit", store.SQLiteOptions{Synchronous: "NORMAL"}},
		{"sqlite/full/nogroup", store.SQLiteOptions{GroupCommit: store.GroupCommitOptions{Disabled: true}}},
		{"sqlite/normal/nogroup", store.SQLiteOptions{Synchronous: "NORMAL", GroupCommit: store.GroupCommitOptions{Disabled: true}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s, err := store.OpenSQLite(filepath.Join(b.TempDir(), "bench.db"), tc.o)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			runInsertBench(b, s)
		})
	}
	for _, tc := range []struct {
		name string
		o    store.PostgresOptions
	}{
		{"postgres/groupcommit", store.PostgresOptions{}},
		{"postgres/nogroup", store.PostgresOptions{MaxConns: 64, GroupCommit: store.GroupCommitOptions{Disabled: true}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			dsn := pgSchema(b, postgresDSN(b))
			s, err := store.OpenPostgres(context.Background(), dsn, tc.o)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			runInsertBench(b, s)
		})
	}
}

// BenchmarkMarkJTIParallel measures the jti replay check (private_key_jwt).
func BenchmarkMarkJTIParallel(b *testing.B) {
	s, err := store.OpenSQLite(filepath.Join(b.TempDir(), "bench.db"), store.SQLiteOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var seq atomic.Int64
	exp := time.Now().Add(time.Hour)
	b.SetParallelism(max(1, 64/testingProcs()))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.MarkJTI(context.Background(), "client_assertion:bench", fmt.Sprintf("jti-%d", seq.Add(1)), exp); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkGetGrantSessionParallel measures the read path (introspection).
func BenchmarkGetGrantSessionParallel(b *testing.B) {
	s, err := store.OpenSQLite(filepath.Join(b.TempDir(), "bench.db"), store.SQLiteOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const rows = 1000
	data := make([]byte, 800)
	for i := range int64(rows) {
		if err := s.CreateGrantSession(context.Background(), benchGrant(i, data)); err != nil {
			b.Fatal(err)
		}
	}
	var seq atomic.Int64
	b.SetParallelism(max(1, 64/testingProcs()))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			sig := fmt.Sprintf("bench-signature-%043d", seq.Add(1)%rows)
			if _, err := s.GetGrantSession(context.Background(), store.KindAccess, sig); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
}

// BenchmarkCreateGrantSessionInTx is the serial cost of one row (100 rows per
// transaction, synchronous=FULL): the writer goroutine's ceiling.
func BenchmarkCreateGrantSessionInTx(b *testing.B) {
	s, err := store.OpenSQLite(filepath.Join(b.TempDir(), "bench.db"), store.SQLiteOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := make([]byte, 800)
	var i int64
	for b.Loop() {
		err := s.InTx(context.Background(), func(ctx context.Context) error {
			for range 100 {
				i++
				if err := s.CreateGrantSession(ctx, benchGrant(i, data)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkIssueLikeParallel approximates the client-credentials token path's
// store share: 64 goroutines each sign an ES256 digest (the JWT signature)
// and durably insert the access-token row (synchronous=FULL, group commit).
func BenchmarkIssueLikeParallel(b *testing.B) {
	s, err := store.OpenSQLite(filepath.Join(b.TempDir(), "bench.db"), store.SQLiteOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 800)
	var seq atomic.Int64
	b.SetParallelism(max(1, 64/testingProcs()))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := seq.Add(1)
			digest := sha256.Sum256(fmt.Appendf(nil, "claims-%d", i))
			if _, err := ecdsa.SignASN1(rand.Reader, key, digest[:]); err != nil {
				b.Error(err)
				return
			}
			if err := s.CreateGrantSession(context.Background(), benchGrant(i, data)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}

func testingProcs() int { return runtime.GOMAXPROCS(0) }
