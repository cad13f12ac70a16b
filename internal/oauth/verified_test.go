package oauth

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/ttlcache"
)

// TestVerifiedAccessTokenCache: a token that verified is not verified again
// while the key set is unchanged and the token unexpired; other bytes, an
// expired token, a changed key set and a removed key all go back to (or
// fail) the full check.
func TestVerifiedAccessTokenCache(t *testing.T) {
	keys := newFakeKeys(t, "ES256")
	var mu sync.Mutex
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	s := &Server{issuer: "https://as.test", o: Options{Now: clock}, verified: ttlcache.New[string, verifiedAccess](16)}
	s.keys = newKeyRing(keys)
	sk, err := s.keys.current()
	if err != nil {
		t.Fatal(err)
	}
	exp := now.Add(10 * time.Minute).Unix()
	tok, err := sk.sign(sk.atHeader, []byte(`{"iss":"https://as.test","sub":"u","aud":"api","client_id":"c","jti":"j1","iat":1,"exp":`+strconv.FormatInt(exp, 10)+`}`))
	if err != nil {
		t.Fatal(err)
	}
	checks := func() int64 { return s.keys.sigChecks.Load() }

	c1, err := s.verifyAccessToken(tok)
	if err != nil || checks() != 1 {
		t.Fatalf("first verification: %v, %d checks", err, checks())
	}
	c2, err := s.verifyAccessToken(tok)
	if err != nil || checks() != 1 || c2 != c1 {
		t.Fatalf("repeat: %v, %d checks (want 1: served from the cache), same claims %v", err, checks(), c2 == c1)
	}

	// Other bytes never hit: a changed signature is checked, and fails.
	dot := strings.LastIndexByte(tok, '.')
	other := byte('A')
	if tok[dot+1] == 'A' {
		other = 'B'
	}
	tampered := tok[:dot+1] + string(other) + tok[dot+2:]
	if _, err := s.verifyAccessToken(tampered); !errors.Is(err, errTokenSignature) || checks() != 2 {
		t.Fatalf("tampered signature: %v, %d checks (want a refusal after a real check)", err, checks())
	}

	// A line break that base64 would skip is a different, refused spelling.
	// In the signature segment (not signed itself) it would still verify.
	sigAt := strings.LastIndexByte(tok, '.') + 3
	if _, err := s.verifyAccessToken(tok[:sigAt] + "\n" + tok[sigAt:]); !errors.Is(err, errTokenMalformed) {
		t.Fatalf("token with a line break in its signature: %v, want malformed", err)
	}

	// A new key set (rotation: the old key stays published) re-verifies once.
	before := checks()
	keys.rotate(t, "ES256")
	if _, err := s.verifyAccessToken(tok); err != nil || checks() != before+1 {
		t.Fatalf("after rotation: %v, %d checks (want %d)", err, checks(), before+1)
	}
	if _, err := s.verifyAccessToken(tok); err != nil || checks() != before+1 {
		t.Fatalf("after rotation, cached again: %v, %d checks", err, checks())
	}

	// Expiry: the entry ends at exp, and the full check says expired.
	advance(10*time.Minute + time.Second)
	if _, err := s.verifyAccessToken(tok); !errors.Is(err, errTokenExpired) {
		t.Fatalf("past exp: %v, want expired", err)
	}
	advance(-10 * time.Minute)

	// Removing the signing key refuses the token at once, cached or not.
	if _, err := s.verifyAccessToken(tok); err != nil {
		t.Fatal(err)
	}
	keys.mu.Lock()
	keys.keys = slices.Delete(keys.keys, 0, 1) // the first key signed tok
	subs := slices.Clone(keys.subs)
	keys.mu.Unlock()
	for _, fn := range subs {
		fn()
	}
	if _, err := s.verifyAccessToken(tok); !errors.Is(err, errTokenSignature) {
		t.Fatalf("key removed: %v, want a signature refusal", err)
	}
}
