package upstream

// pick returns the target for the next attempt, preferring targets not in
// tried, or nil when no target may receive traffic.
func (p *Pool) pick(tried *bitset) *target {
	var now int64 // read lazily: only ejected targets need the clock
	if len(p.targets) == 1 {
		if t := p.targets[0]; p.eligible(t, &now) {
			return t
		}
		return nil
	}
	if p.leastOutstanding {
		return p.pickLeast(tried, &now)
	}
	p.mu.Lock()
	t := p.smoothPick(tried, &now)
	if t == nil && !tried.empty() {
		t = p.smoothPick(nil, &now) // every healthy target was tried: reuse one
	}
	p.mu.Unlock()
	return t
}

// smoothPick is nginx's smooth weighted round robin over the eligible
// targets: each gains its weight, the largest wins and pays the total. With
// weights 5,1,1 it yields a a b a c a a: exact shares, evenly interleaved.
// Caller holds p.mu.
func (p *Pool) smoothPick(tried *bitset, now *int64) *target {
	var best *target
	var total int64
	for _, t := range p.targets {
		if tried != nil && tried.has(t.index) || !p.eligible(t, now) {
			continue
		}
		t.cw += t.weight
		total += t.weight
		if best == nil || t.cw > best.cw {
			best = t
		}
	}
	if best != nil {
		best.cw -= total
	}
	return best
}

// pickLeast returns the eligible target with the fewest in-flight requests
// relative to its weight ((inflight+1)/weight, compared by cross
// multiplication). The scan starts at a rotating offset, so ties are broken
// round robin. O(targets), lock free.
func (p *Pool) pickLeast(tried *bitset, now *int64) *target {
	n := len(p.targets)
	start := int(p.rr.Add(1) % uint64(n))
	for pass := 0; pass < 2; pass++ {
		var best *target
		var bestLoad int64
		for k := 0; k < n; k++ {
			i := start + k
			if i >= n {
				i -= n
			}
			t := p.targets[i]
			if pass == 0 && tried.has(i) || !p.eligible(t, now) {
				continue
			}
			load := t.inflight.Load()
			if best == nil || (load+1)*best.weight < (bestLoad+1)*t.weight {
				best, bestLoad = t, load
			}
		}
		if best != nil || tried.empty() {
			return best
		}
	}
	return nil
}

// eligible reports whether t may receive traffic: not marked down by active
// health and not inside a passive ejection window.
func (p *Pool) eligible(t *target, now *int64) bool {
	if t.active.Load() == activeDown {
		return false
	}
	u := t.ejectedUntil.Load()
	if u == 0 {
		return true
	}
	if *now == 0 {
		*now = p.now().UnixNano()
	}
	return *now >= u
}
