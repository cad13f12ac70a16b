package authn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// loadResult is one key set load.
type loadResult struct {
	jwks        []jose.JSONWebKey
	skipped     []skippedKey
	ttl         time.Duration // refresh interval; 0 = the set does not expire
	notModified bool
	etag        string
}

// keyLoader loads an issuer's key set from its origin. result is the metric
// label of the outcome.
type keyLoader interface {
	load(ctx context.Context, etag string) (res loadResult, result string, err error)
	allowPrivate() bool
}

// errRedirect refuses redirects from the JWKS endpoint: the configured URL is
// the pin, and a redirect is a way to move it (to an attacker, or to an
// internal address).
var errRedirect = errors.New("JWKS endpoint redirects are not followed")

// noRedirectClient returns a copy of c (or a new client) that never follows
// redirects. The transport is shared with c.
func noRedirectClient(c *http.Client, timeout time.Duration) *http.Client {
	var out http.Client
	if c != nil {
		out = *c
	} else {
		out.Transport = http.DefaultTransport.(*http.Transport).Clone()
		out.Timeout = timeout
	}
	out.CheckRedirect = func(*http.Request, []*http.Request) error { return errRedirect }
	return &out
}

// httpLoader fetches a JWKS URL.
type httpLoader struct {
	url    string
	client *http.Client
	opts   JWKSOptions
}

func (l *httpLoader) allowPrivate() bool { return false }

func (l *httpLoader) load(ctx context.Context, etag string) (loadResult, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.url, nil)
	if err != nil {
		return loadResult{}, fetchErrNetwork, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json;q=0.9")
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return loadResult{}, fetchErrNetwork, fmt.Errorf("GET JWKS: %w", err)
	}
	defer resp.Body.Close()
	ttl := cacheTTL(resp.Header, l.opts)
	if resp.StatusCode == http.StatusNotModified && etag != "" {
		return loadResult{notModified: true, ttl: ttl, etag: etag}, fetchNotModified, nil
	}
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return loadResult{}, fetchErrStatus, fmt.Errorf("GET JWKS: status %d", resp.StatusCode)
	}
	max := l.opts.MaxJWKSBytes
	if resp.ContentLength > max {
		return loadResult{}, fetchErrTooLarge, fmt.Errorf("GET JWKS: Content-Length %d exceeds %d", resp.ContentLength, max)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return loadResult{}, fetchErrNetwork, fmt.Errorf("GET JWKS: reading body: %w", err)
	}
	if int64(len(body)) > max {
		return loadResult{}, fetchErrTooLarge, fmt.Errorf("GET JWKS: body exceeds %d bytes", max)
	}
	keys, skipped, err := parseJWKS(body)
	if err != nil {
		return loadResult{}, fetchErrInvalid, err
	}
	newETag := resp.Header.Get("ETag")
	if len(newETag) > 256 {
		newETag = ""
	}
	return loadResult{jwks: keys, skipped: skipped, ttl: ttl, etag: newETag}, fetchOK, nil
}

// cacheTTL derives the refresh interval from Cache-Control (max-age;
// no-cache and no-store mean "as often as allowed"), clamped to
// [RefreshMin, RefreshMax].
func cacheTTL(h http.Header, o JWKSOptions) time.Duration {
	ttl := o.RefreshDefault
	noCache := false
	for _, v := range h.Values("Cache-Control") {
		for _, d := range strings.Split(v, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-cache", "no-store":
				noCache = true
			case "max-age":
				n, err := strconv.ParseInt(strings.Trim(strings.TrimSpace(val), `"`), 10, 64)
				if err != nil || n < 0 {
					continue
				}
				if n > int64(o.RefreshMax/time.Second) {
					ttl = o.RefreshMax
				} else {
					ttl = time.Duration(n) * time.Second
				}
			}
		}
	}
	if noCache {
		ttl = o.RefreshMin
	}
	return min(max(ttl, o.RefreshMin), o.RefreshMax)
}

// fileLoader reads a JWKS file. It only ever opens the configured path: a
// token's kid is a map key, never part of a path.
type fileLoader struct {
	path     string
	opts     JWKSOptions
	readFile func(path string, max int64) ([]byte, error)
}

func (l *fileLoader) allowPrivate() bool { return false }

func (l *fileLoader) load(context.Context, string) (loadResult, string, error) {
	body, err := l.readFile(l.path, l.opts.MaxJWKSBytes)
	if err != nil {
		if errors.Is(err, errTooLarge) {
			return loadResult{}, fetchErrTooLarge, err
		}
		return loadResult{}, fetchErrNetwork, err
	}
	keys, skipped, err := parseJWKS(body)
	if err != nil {
		return loadResult{}, fetchErrInvalid, err
	}
	return loadResult{jwks: keys, skipped: skipped, ttl: l.opts.RefreshDefault}, fetchOK, nil
}

var errTooLarge = errors.New("too large")

// readFileLimited reads at most max bytes of path.
func readFileLimited(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("JWKS file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("JWKS file: %w", err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("JWKS file %s: exceeds %d bytes: %w", path, max, errTooLarge)
	}
	return b, nil
}

// sourceLoader asks an in-process KeySource. Besides change notifications it
// is polled every RefreshMin (cheap: an in-process call), so a source
// without notifications still converges within a minute.
type sourceLoader struct {
	src  KeySource
	poll time.Duration
}

func (l *sourceLoader) allowPrivate() bool { return true }

func (l *sourceLoader) load(ctx context.Context, _ string) (loadResult, string, error) {
	keys, err := l.src.Keys(ctx)
	if err != nil {
		return loadResult{}, fetchErrNetwork, fmt.Errorf("key source: %w", err)
	}
	return loadResult{jwks: keys, ttl: l.poll}, fetchOK, nil
}

// fetchCall is one in-flight key set load, shared by everyone who needs it.
type fetchCall struct {
	seq  uint64 // start order
	done chan struct{}
	err  error
}

// startFetch returns the in-flight load, starting one if none runs. Loads
// triggered by tokens (scheduled=false) start at most once per
// UnknownKidMinInterval; within it startFetch returns nil (the caller fails
// with the keys it has). This is the anti-amplification rule: however many
// tokens with unknown kids arrive, the origin sees at most one request per
// interval.
func (is *Issuer) startFetch(scheduled bool) *fetchCall {
	is.fetchMu.Lock()
	defer is.fetchMu.Unlock()
	if is.inflight != nil {
		return is.inflight
	}
	now := is.now()
	if !scheduled && !is.lastFetch.IsZero() && now.Sub(is.lastFetch) < is.jwks.UnknownKidMinInterval {
		return nil
	}
	is.lastFetch = now
	is.fetchSeq++
	call := &fetchCall{seq: is.fetchSeq, done: make(chan struct{})}
	is.inflight = call
	ctx, etag := is.baseCtx, is.etag
	is.fetches.Add(1)
	go func() {
		fctx, cancel := context.WithTimeout(ctx, is.jwks.FetchTimeout)
		call.err = is.load(fctx, etag)
		cancel()
		is.fetchMu.Lock()
		is.inflight = nil
		is.fetchMu.Unlock()
		close(call.done)
	}()
	return call
}

// refetch runs (or joins) a token-triggered load and waits for it. It
// reports whether a load completed successfully, so the caller should look
// up the key again.
func (is *Issuer) refetch(ctx context.Context) bool {
	if is.loader == nil {
		return false
	}
	call := is.startFetch(false)
	if call == nil {
		return false
	}
	select {
	case <-call.done:
		return call.err == nil
	case <-ctx.Done():
		return false
	}
}

// Refresh loads the key set now, bypassing the token-triggered rate limit
// (for an operator's "reload keys" and for tests), and waits for it. A load
// already running when Refresh is called does not count: it may have read
// the origin before the change the caller wants to see.
func (is *Issuer) Refresh(ctx context.Context) error {
	if is.loader == nil {
		return nil
	}
	is.fetchMu.Lock()
	after := is.fetchSeq + 1 // only a load started from now on counts
	is.fetchMu.Unlock()
	for {
		call := is.startFetch(true)
		select {
		case <-call.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if call.seq >= after {
			return call.err
		}
	}
}

// load performs one key set load and installs the result. Only one load runs
// at a time (startFetch), so no locking beyond the atomics is needed; the
// etag and refresh interval are written under fetchMu.
func (is *Issuer) load(ctx context.Context, etag string) error {
	res, result, err := is.loader.load(ctx, etag)
	now := is.now()
	if err != nil {
		is.metrics.jwksFetch(is.name, result)
		stale := ""
		if ks := is.keys.Load(); ks != nil && !ks.expiresAt.IsZero() {
			stale = ks.expiresAt.UTC().Format(time.RFC3339)
		}
		is.log.Warn("key set load failed; keeping last good keys", "result", result, "err", err, "last_good_until", stale)
		return fmt.Errorf("issuer %s: %w", is.name, err)
	}
	expiry := func(ttl time.Duration) time.Time {
		if is.source != nil {
			return time.Time{} // in-process keys do not go stale
		}
		return now.Add(ttl + is.jwks.StaleGrace)
	}
	cur := is.keys.Load()
	if res.notModified {
		if cur == nil {
			is.metrics.jwksFetch(is.name, fetchErrInvalid)
			return fmt.Errorf("issuer %s: 304 Not Modified without a cached key set", is.name)
		}
		next := *cur
		next.expiresAt = expiry(res.ttl)
		is.keys.Store(&next)
		is.setRefresh(res.ttl, res.etag)
		is.metrics.jwksFetch(is.name, result)
		is.metrics.jwksLoaded(is.name, len(next.all), float64(now.Unix()))
		return nil
	}
	ks, skipped := buildKeySet(res.jwks, is.loader.allowPrivate())
	skipped = append(res.skipped, skipped...)
	changed := cur == nil || cur.fingerprint != ks.fingerprint
	if changed || len(ks.all) == 0 {
		// Logged when the set changes, not on every refresh: many issuers
		// publish encryption keys next to their signing keys.
		for _, s := range skipped {
			level := slog.LevelInfo
			if s.severe {
				level = slog.LevelError
			}
			is.log.Log(ctx, level, "key set entry not used", "kid", truncate(s.kid, 64), "why", s.reason)
		}
	}
	if len(ks.all) == 0 {
		// An empty or entirely unusable set is treated as a failed load so
		// that a broken endpoint does not wipe the last good keys.
		is.metrics.jwksFetch(is.name, fetchErrInvalid)
		is.log.Error("key set has no usable verification key; keeping last good keys", "skipped", len(skipped))
		return fmt.Errorf("issuer %s: key set has no usable verification key", is.name)
	}
	ks.expiresAt = expiry(res.ttl)
	is.keys.Store(ks)
	if changed {
		// After Store: a verifier that reads the new generation is
		// guaranteed to see the new keys (see selectKeys).
		is.gen.Add(1)
		kids := make([]string, 0, len(ks.all))
		for _, k := range ks.all {
			kids = append(kids, truncate(k.kid, 64))
		}
		is.log.Info("key set loaded", "keys", len(ks.all), "kids", kids, "refresh_in", res.ttl)
	} else {
		result = fetchUnchanged
	}
	is.setRefresh(res.ttl, res.etag)
	is.metrics.jwksFetch(is.name, result)
	is.metrics.jwksLoaded(is.name, len(ks.all), float64(now.Unix()))
	is.once.Do(func() { close(is.ready) })
	return nil
}

func (is *Issuer) setRefresh(ttl time.Duration, etag string) {
	is.fetchMu.Lock()
	is.nextIn, is.etag = ttl, etag
	is.fetchMu.Unlock()
}

// Start loads the key set in the background and keeps it fresh until ctx is
// done: on the origin's Cache-Control schedule (clamped), on KeySource change
// notifications, and after failures with exponential backoff from 1 s to
// RefreshMin. Start does not wait: until the first load succeeds, tokens of
// this issuer are refused with ReasonUnavailable (use WaitReady to wait).
// Calling Start more than once has no further effect.
func (is *Issuer) Start(ctx context.Context) {
	if is.loader == nil {
		return
	}
	is.startOnce.Do(func() {
		is.fetchMu.Lock()
		is.baseCtx = ctx
		is.fetchMu.Unlock()
		go is.run(ctx)
	})
}

func (is *Issuer) run(ctx context.Context) {
	backoff := time.Second
	for {
		var changed <-chan struct{}
		if is.source != nil {
			// Subscribe before loading so a change during the load is
			// not missed.
			changed = is.source.KeysChanged()
		}
		call := is.startFetch(true)
		var err error
		select {
		case <-call.done:
			err = call.err
		case <-ctx.Done():
			return
		}
		is.fetchMu.Lock()
		wait := is.nextIn
		is.fetchMu.Unlock()
		if err != nil {
			wait = backoff
			backoff = min(2*backoff, is.jwks.RefreshMin)
		} else {
			backoff = time.Second
		}
		var timer *time.Timer
		var fire <-chan time.Time
		if wait > 0 {
			timer = time.NewTimer(wait)
			fire = timer.C
		}
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		case <-fire:
		case <-changed:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}
