package upstream

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// observeStatus feeds a received response into passive health.
func (p *Pool) observeStatus(t *target, status int) {
	if p.count5xx && (status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout) {
		p.failure(t)
		return
	}
	p.success(t)
}

// success clears t's failure record. A target inside its ejection window
// stays ejected (a slow request that started before the ejection must not
// readmit it); after the window, one success readmits it fully.
func (p *Pool) success(t *target) {
	if p.maxFailures <= 0 {
		return
	}
	u := t.ejectedUntil.Load()
	if u != 0 {
		if p.now().UnixNano() < u {
			return
		}
		if t.ejectedUntil.CompareAndSwap(u, 0) {
			p.log.Info("upstream target readmitted", "target", t.label)
		}
	}
	if t.fails.Load() != 0 {
		t.fails.Store(0)
	}
}

// failure records a failed attempt on t and ejects it after MaxFailures
// consecutive failures. After an ejection expires the failure count is kept,
// so a target on probation is ejected again by its next failure.
func (p *Pool) failure(t *target) {
	if p.maxFailures <= 0 {
		return
	}
	n := t.fails.Add(1)
	if n < p.maxFailures {
		return
	}
	now := p.now().UnixNano()
	u := t.ejectedUntil.Load()
	if u != 0 && now < u {
		return // already ejected
	}
	if t.ejectedUntil.CompareAndSwap(u, now+int64(p.ejectFor)) {
		p.m.ejections.Inc()
		p.log.Warn("upstream target ejected", "target", t.label,
			"consecutive_failures", n, "eject_for", p.ejectFor.String())
	}
}

// probeLoop runs the active health check of one target until ctx is done.
// The first probe runs immediately; later ones every Interval plus up to 10%
// jitter, so gateway replicas do not probe in lockstep.
func (p *Pool) probeLoop(ctx context.Context, t *target) {
	defer p.wg.Done()
	a := p.active
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		ok, reason := p.probe(ctx, t)
		if ctx.Err() != nil {
			return // shutting down: the result says nothing about the target
		}
		p.recordProbe(t, ok, reason)
		timer.Reset(a.interval + time.Duration(rand.Int64N(int64(a.interval/10)+1)))
	}
}

// probe sends one health request; it reports success and, on failure, a
// short reason for the log.
func (p *Pool) probe(ctx context.Context, t *target) (bool, string) {
	a := p.active
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.scheme+"://"+t.host+a.path, nil)
	if err != nil {
		return false, "invalid probe request"
	}
	req.Header.Set("User-Agent", "sekisho-health-check")
	resp, err := t.rt.RoundTrip(req)
	if err != nil {
		kind, _ := classify(ctx, err)
		return false, kind.String()
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if !a.healthyStatus(resp.StatusCode) {
		return false, "status " + strconv.Itoa(resp.StatusCode)
	}
	return true, ""
}

// recordProbe applies one probe result to t's active state. Only t's probe
// goroutine calls it, so the streak counters need no lock.
func (p *Pool) recordProbe(t *target, ok bool, reason string) {
	a := p.active
	state := t.active.Load()
	if ok {
		t.failStreak = 0
		t.okStreak++
		if state == activeUnknown || state == activeDown && t.okStreak >= a.healthyThreshold {
			t.active.Store(activeUp)
			if state == activeDown {
				p.log.Info("upstream target marked up by health check", "target", t.label)
			}
		}
		return
	}
	t.okStreak = 0
	t.failStreak++
	if state == activeUnknown || state == activeUp && t.failStreak >= a.unhealthyThreshold {
		t.active.Store(activeDown)
		p.log.Warn("upstream target marked down by health check", "target", t.label,
			"reason", reason, "consecutive_failures", t.failStreak)
	}
}
