package revocation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	json "github.com/go-json-experiment/json"
	"github.com/redis/go-redis/v9"
)

// RedisOptions configure a RedisSync.
type RedisOptions struct {
	// Client is the Redis connection (built by the caller; required).
	Client redis.UniversalClient
	// Key is the sorted set holding live revocations (default
	// "sekisho:revocations"); Key+":events" is the pub/sub channel.
	Key string
	// PollInterval is the fallback full reload period, for the case where
	// pub/sub messages are lost without the connection dropping
	// (default 30 s, at least 1 s).
	PollInterval time.Duration
	// Logger defaults to slog.Default(); Clock to time.Now.
	Logger *slog.Logger
	Clock  func() time.Time
}

// RedisSync shares revocations between gateway nodes. A revocation is
// applied to the local DenyList at once, stored in a Redis sorted set (score
// = when it may be forgotten) and published; every node's Run loop applies
// published revocations as they arrive, and reloads the whole set whenever
// its subscription is (re)established and every PollInterval, so a node that
// missed messages while disconnected catches up.
//
// RedisSync implements Revoker; the authorization server should revoke
// through it, and the gateway reads the DenyList as its Checker.
type RedisSync struct {
	list    *DenyList
	rdb     redis.UniversalClient
	key     string
	channel string
	poll    time.Duration
	log     *slog.Logger
	now     func() time.Time

	readyOnce sync.Once
	ready     chan struct{}
}

// revocationMsg is the wire and storage form of one revocation.
type revocationMsg struct {
	Kind         string `json:"k"` // "jti", "sub", "client"
	Value        string `json:"v"`
	IssuedBefore int64  `json:"b,omitzero"` // unix ns, sub/client only
	Until        int64  `json:"u"`          // unix ns
}

// maxMsgBytes bounds one message or stored member.
const maxMsgBytes = 4096

// NewRedisSync returns a sync for list. Call Run to receive.
func NewRedisSync(list *DenyList, opts RedisOptions) (*RedisSync, error) {
	if list == nil || opts.Client == nil {
		return nil, errors.New("revocation redis sync: deny-list and client are required")
	}
	if opts.Key == "" {
		opts.Key = "sekisho:revocations"
	}
	switch {
	case opts.PollInterval == 0:
		opts.PollInterval = 30 * time.Second
	case opts.PollInterval < time.Second:
		return nil, fmt.Errorf("revocation redis sync: poll interval %s is below 1s", opts.PollInterval)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	return &RedisSync{
		list: list, rdb: opts.Client, key: opts.Key, channel: opts.Key + ":events",
		poll: opts.PollInterval, log: opts.Logger, now: opts.Clock, ready: make(chan struct{}),
	}, nil
}

// RevokeToken implements Revoker.
func (s *RedisSync) RevokeToken(ctx context.Context, jti string, exp time.Time) error {
	if err := s.list.RevokeToken(ctx, jti, exp); err != nil {
		return err
	}
	return s.publish(ctx, revocationMsg{Kind: "jti", Value: jti, Until: exp.UnixNano()})
}

// RevokeSubject implements Revoker.
func (s *RedisSync) RevokeSubject(ctx context.Context, sub string, issuedBefore, until time.Time) error {
	if err := s.list.RevokeSubject(ctx, sub, issuedBefore, until); err != nil {
		return err
	}
	return s.publish(ctx, revocationMsg{Kind: "sub", Value: sub, IssuedBefore: issuedBefore.UnixNano(), Until: until.UnixNano()})
}

// RevokeClient implements Revoker.
func (s *RedisSync) RevokeClient(ctx context.Context, clientID string, issuedBefore, until time.Time) error {
	if err := s.list.RevokeClient(ctx, clientID, issuedBefore, until); err != nil {
		return err
	}
	return s.publish(ctx, revocationMsg{Kind: "client", Value: clientID, IssuedBefore: issuedBefore.UnixNano(), Until: until.UnixNano()})
}

// publish stores and broadcasts m. The local list already has it: an error
// here means other nodes may not learn it until their next reload.
func (s *RedisSync) publish(ctx context.Context, m revocationMsg) error {
	if m.Until <= s.now().UnixNano() {
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("revocation redis sync: %w", err)
	}
	if len(b) > maxMsgBytes {
		return fmt.Errorf("revocation redis sync: revocation of %d bytes exceeds %d", len(b), maxMsgBytes)
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, s.key, redis.Z{Score: float64(m.Until / int64(time.Millisecond)), Member: string(b)})
		p.Publish(ctx, s.channel, string(b))
		return nil
	})
	if err != nil {
		return fmt.Errorf("revocation redis sync: publish %s revocation: %w", m.Kind, err)
	}
	return nil
}

// apply adds one received revocation to the local list.
func (s *RedisSync) apply(ctx context.Context, payload string) {
	if len(payload) > maxMsgBytes {
		s.log.Warn("revocation message too large; ignored", "bytes", len(payload))
		return
	}
	var m revocationMsg
	if err := json.Unmarshal([]byte(payload), &m); err != nil {
		s.log.Warn("malformed revocation message; ignored", "err", err)
		return
	}
	until := time.Unix(0, m.Until)
	var err error
	switch m.Kind {
	case "jti":
		err = s.list.RevokeToken(ctx, m.Value, until)
	case "sub":
		err = s.list.RevokeSubject(ctx, m.Value, time.Unix(0, m.IssuedBefore), until)
	case "client":
		err = s.list.RevokeClient(ctx, m.Value, time.Unix(0, m.IssuedBefore), until)
	default:
		s.log.Warn("revocation message of unknown kind; ignored", "kind", m.Kind)
		return
	}
	if err != nil {
		s.log.Error("revocation from Redis not applied", "kind", m.Kind, "err", err)
	}
}

// Reload applies every live revocation stored in Redis and drops expired
// ones from the sorted set.
func (s *RedisSync) Reload(ctx context.Context) error {
	nowMs := s.now().UnixNano() / int64(time.Millisecond)
	if err := s.rdb.ZRemRangeByScore(ctx, s.key, "-inf", "("+strconv.FormatInt(nowMs, 10)).Err(); err != nil {
		return fmt.Errorf("revocation redis sync: purge: %w", err)
	}
	members, err := s.rdb.ZRangeByScore(ctx, s.key, &redis.ZRangeBy{Min: strconv.FormatInt(nowMs, 10), Max: "+inf"}).Result()
	if err != nil {
		return fmt.Errorf("revocation redis sync: load: %w", err)
	}
	for _, m := range members {
		s.apply(ctx, m)
	}
	return nil
}

// WaitReady blocks until Run has subscribed and loaded the stored set once.
func (s *RedisSync) WaitReady(ctx context.Context) error {
	select {
	case <-s.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run receives revocations until ctx is done. It subscribes, then reloads
// (so nothing published between the two is missed), applies messages as
// they come, reloads every PollInterval, and on any error starts over with
// backoff (100 ms doubling to 10 s), reloading again once resubscribed.
func (s *RedisSync) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		err := s.session(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.log.Warn("revocation subscription lost; reconnecting", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// session is one subscription lifetime.
func (s *RedisSync) session(ctx context.Context) error {
	ps := s.rdb.Subscribe(ctx, s.channel)
	// ReceiveTimeout does not watch ctx while blocked in a read: closing
	// the subscription is what unblocks it on shutdown.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer func() {
		stop()
		_ = ps.Close()
	}()
	// Wait for the subscription to be confirmed before loading.
	if _, err := ps.Receive(ctx); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	if err := s.Reload(ctx); err != nil {
		return err
	}
	s.readyOnce.Do(func() { close(s.ready) })
	lastReload := time.Now()
	for {
		msg, err := ps.ReceiveTimeout(ctx, s.poll)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
				if err := s.Reload(ctx); err != nil {
					return err
				}
				lastReload = time.Now()
				continue
			}
			return err
		}
		switch m := msg.(type) {
		case *redis.Message:
			s.apply(ctx, m.Payload)
		case *redis.Subscription:
			// go-redis resubscribed after a reconnect: catch up.
			if err := s.Reload(ctx); err != nil {
				return err
			}
			lastReload = time.Now()
		}
		if time.Since(lastReload) >= s.poll {
			if err := s.Reload(ctx); err != nil {
				return err
			}
			lastReload = time.Now()
		}
	}
}

var _ Revoker = (*RedisSync)(nil)
