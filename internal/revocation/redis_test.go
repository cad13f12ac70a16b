package revocation

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	json "github.com/go-json-experiment/json"
	"github.com/redis/go-redis/v9"
)

// redisClient connects to the test Redis at 127.0.0.1:6379, skipping when it
// is unreachable unless SEKISHO_TEST_SERVICES=require.
func redisClient(t *testing.T, name string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", ClientName: name, DialTimeout: time.Second, MaxRetries: 0})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		if os.Getenv("SEKISHO_TEST_SERVICES") == "require" {
			t.Fatalf("Redis at 127.0.0.1:6379 required: %v", err)
		}
		t.Skipf("Redis at 127.0.0.1:6379 unreachable (%v); set SEKISHO_TEST_SERVICES=require to fail instead", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

type node struct {
	list *DenyList
	sync *RedisSync
}

func startNode(t *testing.T, key, name string, poll time.Duration) *node {
	t.Helper()
	list, err := NewDenyList(Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewRedisSync(list, RedisOptions{Client: redisClient(t, name), Key: key, PollInterval: poll, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	if err := s.WaitReady(wctx); err != nil {
		t.Fatalf("node %s not ready: %v", name, err)
	}
	return &node{list: list, sync: s}
}

func testKey(t *testing.T, admin *redis.Client) string {
	key := fmt.Sprintf("sekisho-test:revocations:%d", rand.Uint64())
	t.Cleanup(func() { admin.Del(context.Background(), key) })
	return key
}

func eventually(t *testing.T, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not reached within %s", within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A revocation on one node reaches the others within a second.
func TestRedisBroadcast(t *testing.T) {
	admin := redisClient(t, "sekisho-test-admin")
	key := testKey(t, admin)
	a := startNode(t, key, "sekisho-test-a", time.Minute)
	b := startNode(t, key, "sekisho-test-b", time.Minute)
	ctx := context.Background()
	now := time.Now()
	if err := a.sync.RevokeToken(ctx, "jti-1", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if !a.list.Revoked(Token{JTI: "jti-1"}) {
		t.Fatal("publishing node did not apply locally")
	}
	eventually(t, time.Second, func() bool { return b.list.Revoked(Token{JTI: "jti-1"}) })
	if err := b.sync.RevokeSubject(ctx, "alice", now, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, func() bool { return a.list.Revoked(Token{Subject: "alice", IssuedAt: now.Add(-time.Minute)}) })
	if err := a.sync.RevokeClient(ctx, "batch", now, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, func() bool { return b.list.Revoked(Token{ClientID: "batch", IssuedAt: now.Add(-time.Minute)}) })
}

// A node starting later loads what was revoked before it existed.
func TestRedisLoadOnStart(t *testing.T) {
	admin := redisClient(t, "sekisho-test-admin")
	key := testKey(t, admin)
	a := startNode(t, key, "sekisho-test-a", time.Minute)
	if err := a.sync.RevokeToken(context.Background(), "early", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// An expired stored entry is dropped, not loaded.
	old, _ := json.Marshal(revocationMsg{Kind: "jti", Value: "stale", Until: time.Now().Add(-time.Hour).UnixNano()})
	admin.ZAdd(context.Background(), key, redis.Z{Score: float64(time.Now().Add(-time.Hour).UnixMilli()), Member: string(old)})
	b := startNode(t, key, "sekisho-test-late", time.Minute)
	if !b.list.Revoked(Token{JTI: "early"}) {
		t.Fatal("late node did not load the stored revocation")
	}
	if b.list.Revoked(Token{JTI: "stale"}) {
		t.Fatal("expired revocation loaded")
	}
	if n, _ := admin.ZCard(context.Background(), key).Result(); n != 1 {
		t.Fatalf("sorted set holds %d members, want 1 after purge", n)
	}
}

// After its subscription connection is killed, a node reloads the stored set
// on reconnect: revocations made while it was cut off are not lost.
func TestRedisReloadOnReconnect(t *testing.T) {
	admin := redisClient(t, "sekisho-test-admin")
	key := testKey(t, admin)
	name := fmt.Sprintf("sekisho-test-cut-%d", rand.Uint32())
	b := startNode(t, key, name, time.Hour) // polling cannot be what saves it
	ctx := context.Background()
	// Stored but never published: only a reload can bring it to b.
	m, _ := json.Marshal(revocationMsg{Kind: "jti", Value: "while-away", Until: time.Now().Add(time.Hour).UnixNano()})
	if err := admin.ZAdd(ctx, key, redis.Z{Score: float64(time.Now().Add(time.Hour).UnixMilli()), Member: string(m)}).Err(); err != nil {
		t.Fatal(err)
	}
	if b.list.Revoked(Token{JTI: "while-away"}) {
		t.Fatal("unpublished revocation seen before reconnect")
	}
	// Cut b's subscription: kill its pub/sub connection(s) by client name.
	list, err := admin.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for _, line := range strings.Split(list, "\n") {
		if !strings.Contains(line, " name="+name+" ") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if id, ok := strings.CutPrefix(f, "id="); ok {
				if err := admin.Do(ctx, "CLIENT", "KILL", "ID", id).Err(); err == nil {
					killed++
				}
			}
		}
	}
	if killed == 0 {
		t.Fatalf("no connection named %s found", name)
	}
	eventually(t, 5*time.Second, func() bool { return b.list.Revoked(Token{JTI: "while-away"}) })
}
