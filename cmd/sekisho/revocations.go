package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sekisho/sekisho/internal/config"
	"github.com/sekisho/sekisho/internal/revocation"
	"github.com/sekisho/sekisho/internal/store"
)

// Revocation marker scopes in the store's JTI table.
const (
	revokedJTIScope     = "revoked:jti"
	revokedSubjectScope = "revoked:sub"
	revokedClientScope  = "revoked:client"
)

// durableRevoker applies revocations to this process's deny-list and records
// them in the store, so they survive a restart and reach every process that
// shares the store (other nodes, and a server when the CLI revokes): each
// running node re-reads the markers every few seconds.
type durableRevoker struct {
	st   store.Store
	deny *revocation.DenyList
	// live, when set (revocation.redis), publishes a revocation to the
	// other nodes at once (re-applying it to deny, which is idempotent);
	// the store marker stays the durable record and the path for nodes
	// that missed the message.
	live revocation.Revoker
	log  *slog.Logger
}

func (d *durableRevoker) mark(ctx context.Context, scope, id string, until time.Time) error {
	err := d.st.MarkJTI(ctx, scope, id, until)
	if errors.Is(err, store.ErrConflict) {
		return nil // already recorded
	}
	return err
}

// RevokeToken revokes one access token by jti until its expiry.
func (d *durableRevoker) RevokeToken(ctx context.Context, jti string, exp time.Time) error {
	if err := d.deny.RevokeToken(ctx, jti, exp); err != nil {
		return err
	}
	if err := d.mark(ctx, revokedJTIScope, jti, exp); err != nil {
		return err
	}
	d.share(ctx, "token", func(ctx context.Context) error { return d.live.RevokeToken(ctx, jti, exp) })
	return nil
}

// RevokeSubject revokes a subject's tokens issued before issuedBefore.
func (d *durableRevoker) RevokeSubject(ctx context.Context, sub string, issuedBefore, until time.Time) error {
	if err := d.deny.RevokeSubject(ctx, sub, issuedBefore, until); err != nil {
		return err
	}
	if err := d.mark(ctx, revokedSubjectScope, encodeCutoff(issuedBefore, sub), until); err != nil {
		return err
	}
	d.share(ctx, "subject", func(ctx context.Context) error { return d.live.RevokeSubject(ctx, sub, issuedBefore, until) })
	return nil
}

// RevokeClient revokes a client's tokens issued before issuedBefore.
func (d *durableRevoker) RevokeClient(ctx context.Context, clientID string, issuedBefore, until time.Time) error {
	if err := d.deny.RevokeClient(ctx, clientID, issuedBefore, until); err != nil {
		return err
	}
	if err := d.mark(ctx, revokedClientScope, encodeCutoff(issuedBefore, clientID), until); err != nil {
		return err
	}
	d.share(ctx, "client", func(ctx context.Context) error { return d.live.RevokeClient(ctx, clientID, issuedBefore, until) })
	return nil
}

// shareTimeout bounds publishing one revocation, so a Redis outage delays a
// revocation request by at most this much.
const shareTimeout = 2 * time.Second

// share publishes a revocation already applied here and recorded in the
// store to the other nodes (revocation.redis), if configured. A failure is
// logged, not returned: the revocation holds on this node and in the store,
// and the others read the store.
func (d *durableRevoker) share(ctx context.Context, kind string, publish func(context.Context) error) {
	if d.live == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shareTimeout)
	defer cancel()
	if err := publish(ctx); err != nil {
		d.log.Warn("revocation not published to the other nodes; they apply it from the store", "kind", kind, "error", err)
	}
}

// encodeCutoff stores "unix-nanos:id" as the marker's identifier.
func encodeCutoff(t time.Time, id string) string {
	return strconv.FormatInt(t.UnixNano(), 10) + ":" + id
}

func decodeCutoff(s string) (time.Time, string, bool) {
	ns, id, ok := strings.Cut(s, ":")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || id == "" {
		return time.Time{}, "", false
	}
	return time.Unix(0, n), id, true
}

// load applies every unexpired marker in the store to the deny-list. It is
// idempotent; nodes call it at start and periodically.
func (d *durableRevoker) load(ctx context.Context) error {
	now := time.Now()
	for _, scope := range []string{revokedJTIScope, revokedSubjectScope, revokedClientScope} {
		p := store.Page{Limit: store.MaxPageLimit}
		for {
			list, err := d.st.ListJTIs(ctx, scope, now, p)
			if err != nil {
				return err
			}
			for _, m := range list {
				switch scope {
				case revokedJTIScope:
					err = d.deny.RevokeToken(ctx, m.JTI, m.ExpiresAt)
				case revokedSubjectScope, revokedClientScope:
					t, id, ok := decodeCutoff(m.JTI)
					if !ok {
						continue
					}
					if scope == revokedSubjectScope {
						err = d.deny.RevokeSubject(ctx, id, t, m.ExpiresAt)
					} else {
						err = d.deny.RevokeClient(ctx, id, t, m.ExpiresAt)
					}
				}
				if err != nil {
					return err
				}
			}
			if len(list) < p.Limit {
				break
			}
			p.After = list[len(list)-1].JTI
		}
	}
	return nil
}

// run reloads the markers every interval until ctx is done.
func (d *durableRevoker) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := d.load(ctx); err != nil && ctx.Err() == nil {
				d.log.Warn("reloading revocations from the store failed; the in-memory deny-list stays as it was", "error", err)
			}
		}
	}
}

// startRedisSync connects the revocation sync (revocation.redis) and runs it
// until ctx ends. It does not wait for Redis: a node starts and serves with
// its local deny-list and the store's markers while Redis is unreachable,
// and the sync reconnects with backoff and reloads the shared set. What it
// logs never includes the password.
func startRedisSync(ctx context.Context, c *config.RevocationRedis, deny *revocation.DenyList, log *slog.Logger) (*revocation.RedisSync, error) {
	o := &redis.Options{
		Addr: c.Address, Username: c.Username, Password: c.Password, DB: c.DB,
		DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
		PoolSize: 4, MaxRetries: 2,
	}
	if c.TLS {
		host, _, _ := net.SplitHostPort(c.Address)
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	}
	rdb := redis.NewClient(o)
	rs, err := revocation.NewRedisSync(deny, revocation.RedisOptions{Client: rdb, Key: c.Key, PollInterval: c.PollInterval.D(), Logger: log})
	if err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("revocation.redis: %w", err)
	}
	go func() {
		defer rdb.Close()
		_ = rs.Run(ctx)
	}()
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := rs.WaitReady(wctx); err != nil && ctx.Err() == nil {
			log.Warn("revocation sync: Redis not reachable yet; until it is, revocations made on other nodes reach this one only through a shared store (within 5 s)", "address", c.Address)
		} else if err == nil {
			log.Info("revocation sync: subscribed", "address", c.Address, "key", c.Key)
		}
	}()
	return rs, nil
}
