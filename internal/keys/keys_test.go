package keys

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/sekisho/sekisho/internal/store"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func newStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.OpenSQLite(filepath.Join(t.TempDir(), "keys.db"), store.SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

var (
	master1 = bytes.Repeat([]byte{0x11}, 32)
	master2 = bytes.Repeat([]byte{0x22}, 32)
	t0      = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
)

const (
	rotate   = 30 * 24 * time.Hour
	ahead    = time.Hour
	lifetime = 2 * time.Hour
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newManager(t *testing.T, st store.KeyStore, master []byte, clk *fakeClock, alg string) *Manager {
	t.Helper()
	m, err := NewManager(st, Options{MasterKey: master, Alg: alg, RotateEvery: rotate, PublishAhead: ahead,
		MaxTokenLifetime: lifetime, ReloadEvery: time.Minute, Now: clk.Now, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func start(t *testing.T, m *Manager) {
	t.Helper()
	if err := m.Start(t.Context()); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { m.Close() })
}

func kids(m *Manager) []string {
	var out []string
	for _, k := range m.PublicKeys() {
		out = append(out, k.KeyID)
	}
	return out
}

func contains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

// sign makes a compact JWS with the manager's current key.
func sign(t *testing.T, m *Manager, payload string) string {
	t.Helper()
	kid, alg, key := m.Signer()
	if key == nil {
		t.Fatal("no signer")
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg),
		Key: jose.JSONWebKey{Key: key, KeyID: kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// verify checks a compact JWS against the published JWKS (as a relying party would).
func verify(jwksJSON []byte, token string, alg string) error {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwksJSON, &set); err != nil {
		return err
	}
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
	if err != nil {
		return err
	}
	keys := set.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) == 0 {
		return errors.New("kid not in JWKS")
	}
	_, err = jws.Verify(keys[0])
	return err
}

func TestGenerateAtFirstStart(t *testing.T) {
	st := newStore(t)
	clk := &fakeClock{t: t0}
	m := newManager(t, st, master1, clk, "")
	if _, _, k := m.Signer(); k != nil {
		t.Fatal("signer before Start")
	}
	start(t, m)
	kid, alg, key := m.Signer()
	if kid == "" || alg != AlgES256 || key == nil {
		t.Fatalf("signer = %q %q %v", kid, alg, key)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(m.PublicJWKS(), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("jwks = %s", m.PublicJWKS())
	}
	k := set.Keys[0]
	if k["kid"] != kid || k["alg"] != "ES256" || k["use"] != "sig" || k["kty"] != "EC" || k["crv"] != "P-256" {
		t.Fatalf("jwk = %v", k)
	}
	if _, ok := k["d"]; ok {
		t.Fatal("JWKS contains the private part")
	}
	tok := sign(t, m, "hello")
	if err := verify(m.PublicJWKS(), tok, alg); err != nil {
		t.Fatalf("verify: %v", err)
	}
	list, err := m.List(t.Context())
	if err != nil || len(list) != 1 || list[0].State != StateCurrent || list[0].ID != kid {
		t.Fatalf("list = %+v, %v", list, err)
	}
	if !list[0].RetireAt.Equal(t0.Add(rotate)) || !list[0].ExpireAt.Equal(t0.Add(rotate+lifetime)) {
		t.Fatalf("schedule = %+v", list[0])
	}
}

func TestRestartReusesKey(t *testing.T) {
	st := newStore(t)
	clk := &fakeClock{t: t0}
	m1 := newManager(t, st, master1, clk, "")
	start(t, m1)
	kid1, _, _ := m1.Signer()
	tok := sign(t, m1, "before restart")
	m1.Close()

	clk.Set(t0.Add(time.Hour))
	m2 := newManager(t, st, master1, clk, "")
	start(t, m2)
	kid2, alg, _ := m2.Signer()
	if kid2 != kid1 {
		t.Fatalf("restart generated a new key: %s != %s", kid2, kid1)
	}
	if err := verify(m2.PublicJWKS(), tok, alg); err != nil {
		t.Fatalf("token from before restart: %v", err)
	}
	rows, _ := st.ListSigningKeys(t.Context())
	if len(rows) != 1 {
		t.Fatalf("%d key rows, want 1", len(rows))
	}
}

func TestWrongMasterKeyFails(t *testing.T) {
	st := newStore(t)
	clk := &fakeClock{t: t0}
	start(t, newManager(t, st, master1, clk, ""))

	bad := newManager(t, st, master2, clk, "")
	err := bad.Start(t.Context())
	if !errors.Is(err, ErrWrongMasterKey) || !strings.Contains(err.Error(), "signing keys cannot be decrypted: wrong master key?") {
		t.Fatalf("start with wrong master key: %v", err)
	}
	if _, _, k := bad.Signer(); k != nil {
		t.Fatal("signer available after failed start")
	}
	if _, err := bad.Rotate(t.Context()); !errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("rotate with wrong master key: %v", err)
	}
	// Even with every key long expired, a wrong master key must not be papered over.
	clk.Set(t0.Add(10 * rotate))
	if err := bad.Start(t.Context()); !errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("start with wrong master key after expiry: %v", err)
	}
	rows, _ := st.ListSigningKeys(t.Context())
	if len(rows) != 1 {
		t.Fatalf("%d key rows, want 1: a key was generated over the existing one", len(rows))
	}
}

func TestScheduledRotationOverlap(t *testing.T) {
	st := newStore(t)
	clk := &fakeClock{t: t0}
	m := newManager(t, st, master1, clk, "")
	start(t, m)
	a, alg, _ := m.Signer()
	tokA := sign(t, m, "signed by A")

	clk.Set(t0.Add(rotate - ahead - time.Second))
	if err := m.sync(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	if len(kids(m)) != 1 {
		t.Fatalf("successor created too early: %v", kids(m))
	}

	clk.Set(t0.Add(rotate - ahead))
	if err := m.sync(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	ks := kids(m)
	b := successorKID(a)
	if len(ks) != 2 || ks[0] != a || !contains(ks, b) {
		t.Fatalf("published %v, want current %s first and next %s", ks, a, b)
	}
	if kid, _, _ := m.Signer(); kid != a {
		t.Fatalf("next key signs before its activation: %s", kid)
	}

	// Activation happens without any store I/O: the snapshot expires.
	clk.Set(t0.Add(rotate))
	if kid, _, _ := m.Signer(); kid != b {
		t.Fatalf("signer at activation = %s, want %s", kid, b)
	}
	if err := verify(m.PublicJWKS(), tokA, alg); err != nil {
		t.Fatalf("token signed by the retired key: %v", err)
	}
	clk.Set(t0.Add(rotate + lifetime - time.Second))
	if !contains(kids(m), a) {
		t.Fatal("retired key dropped before its tokens expired")
	}
	clk.Set(t0.Add(rotate + lifetime))
	if contains(kids(m), a) {
		t.Fatalf("expired key still published: %v", kids(m))
	}
	if err := verify(m.PublicJWKS(), tokA, alg); err == nil {
		t.Fatal("token of an expired key still verifies")
	}
	list, _ := m.List(t.Context())
	states := map[string]string{}
	for _, k := range list {
		states[k.ID] = k.State
	}
	if states[a] != StateExpired || states[b] != StateCurrent {
		t.Fatalf("states = %v", states)
	}
}

func TestOverdueRotationExtendsCurrentKey(t *testing.T) {
	st := newStore(t)
	clk := &fakeClock{t: t0}
	m := newManager(t, st, master1, clk, "")
	start(t, m)
	a, _, _ := m.Signer()
	// The node was down past the retirement (but within expiry).
	late := t0.Add(rotate + time.Minute)
	clk.Set(late)
	if err := m.sync(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	if kid, _, _ := m.Signer(); kid != a {
		t.Fatalf("signer = %s, want the old key until the successor is published long enough", kid)
	}
	list, _ := m.List(t.Context())
	for _, k := range list {
		switch k.ID {
		case a:
			if !k.RetireAt.Equal(late.Add(ahead)) || !k.ExpireAt.Equal(late.Add(ahead+lifetime)) {
				t.Fatalf("old key not extended: %+v", k)
			}
		default:
			if !k.ActivateAt.Equal(late.Add(ahead)) {
				t.Fatalf("successor activates at %v, want %v", k.ActivateAt, late.Add(ahead))
			}
		}
	}
}

func TestRotatePublishesBeforeSigning(t *testing.T) {
	st := newStore(t)
	clk := &fakeClock{t: t0}
	m := newManager(t, st, master1, clk, "")
	start(t, m)
	a, alg, _ := m.Signer()
	tokA := sign(t, m, "A")
	clk.Set(t0.Add(24 * time.Hour))
	ki, err := m.Rotate(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if ki.State != StateNext || !ki.ActivateAt.Equal(t0.Add(24*time.Hour+ahead)) {
		t.Fatalf("rotate info = %+v", ki)
	}
	if !contains(kids(m), ki.ID) {
		t.Fatal("new key not published immediately")
	}
	if kid, _, _ := m.Signer(); kid != a {
		t.Fatalf("new key signs before PublishAhead: %s", kid)
	}
	clk.Set(ki.ActivateAt)
	if kid, _, _ := m.Signer(); kid != ki.ID {
		t.Fatalf("signer after PublishAhead = %s, want %s", kid, ki.ID)
	}
	tokB := sign(t, m, "B")
	for _, tok := range []string{tokA, tokB} {
		if err := verify(m.PublicJWKS(), tok, alg); err != nil {
			t.Fatalf("verify after rotation: %v", err)
		}
	}
	clk.Set(ki.ActivateAt.Add(lifetime))
	if contains(kids(m), a) {
		t.Fatal("old key still published after MaxTokenLifetime past its retirement")
	}
}

func TestRotateImmediateKeepsOldKeyPublished(t *testing.T) {
	st := newStore(t)
	clk := &fakeClock{t: t0}
	m := newManager(t, st, master1, clk, "")
	start(t, m)
	a, alg, _ := m.Signer()
	tokA := sign(t, m, "A")
	ki, err := m.Rotate(t.Context(), Immediate())
	if err != nil {
		t.Fatal(err)
	}
	if kid, _, _ := m.Signer(); kid != ki.ID || ki.State != StateCurrent {
		t.Fatalf("immediate rotation: signer %s, info %+v", kid, ki)
	}
	if err := verify(m.PublicJWKS(), tokA, alg); err != nil {
		t.Fatalf("old token after immediate rotation: %v", err)
	}
	if !contains(kids(m), a) {
		t.Fatal("old key unpublished by immediate rotation")
	}
}

func TestRotateRevokePrevious(t *testing.T) {
	st := newStore(t)
	clk := &fakeClock{t: t0}
	m := newManager(t, st, master1, clk, "")
	start(t, m)
	_, alg, _ := m.Signer()
	tokA := sign(t, m, "A")
	ki, err := m.Rotate(t.Context(), RevokePrevious())
	if err != nil {
		t.Fatal(err)
	}
	if ks := kids(m); len(ks) != 1 || ks[0] != ki.ID {
		t.Fatalf("published after revoke = %v", ks)
	}
	if err := verify(m.PublicJWKS(), tokA, alg); err == nil {
		t.Fatal("token of a revoked key still verifies")
	}
}

func TestEncryptedAtRest(t *testing.T) {
	st := newStore(t)
	clk := &fakeClock{t: t0}
	for _, alg := range []string{AlgES256, AlgEdDSA} {
		m := newManager(t, st, master1, clk, alg)
		ki, err := m.Rotate(t.Context(), Immediate())
		if err != nil {
			t.Fatal(err)
		}
		_, _, key := m.Signer()
		pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		var secret []byte
		switch k := key.(type) {
		case *ecdsa.PrivateKey:
			secret, _ = k.Bytes()
		case ed25519.PrivateKey:
			secret = k.Seed()
		}
		rows, _ := st.ListSigningKeys(t.Context())
		for _, r := range rows {
			if r.ID != ki.ID {
				continue
			}
			if bytes.Contains(r.PrivateKeyEnc, pkcs8) || bytes.Contains(r.PrivateKeyEnc, secret) ||
				bytes.Contains(r.PublicJWK, secret) {
				t.Fatalf("%s: private key bytes stored in the clear", alg)
			}
			if len(secret) < 32 {
				t.Fatalf("%s: secret extraction failed", alg)
			}
		}
	}
}

// A ciphertext moved to another kid (or alg) must not decrypt: kid and alg are AAD.
func TestCiphertextBoundToKID(t *testing.T) {
	st := newStore(t)
	clk := &fakeClock{t: t0}
	m := newManager(t, st, master1, clk, "")
	start(t, m)
	rows, _ := st.ListSigningKeys(t.Context())
	row := rows[0]
	if _, err := m.open(row); err != nil {
		t.Fatalf("original row: %v", err)
	}
	swapped := row
	swapped.ID = "attacker-kid"
	if _, err := m.open(swapped); !errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("swapped kid decrypted: %v", err)
	}
	algSwap := row
	algSwap.Alg = AlgEdDSA
	if _, err := m.open(algSwap); err == nil {
		t.Fatal("swapped alg decrypted")
	}
	flipped := row
	flipped.PrivateKeyEnc = bytes.Clone(row.PrivateKeyEnc)
	flipped.PrivateKeyEnc[len(flipped.PrivateKeyEnc)-1] ^= 1
	if _, err := m.open(flipped); !errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("tampered ciphertext decrypted: %v", err)
	}

	// A row injected by someone with database access but without the master
	// key is never published, and blocks a strict start.
	evil := swapped
	evil.PublicJWK = row.PublicJWK
	evil.CreatedAt = t0
	if err := st.CreateSigningKey(t.Context(), &evil); err != nil {
		t.Fatal(err)
	}
	if err := m.sync(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	if contains(kids(m), "attacker-kid") {
		t.Fatal("row that does not decrypt was published")
	}
	if err := newManager(t, st, master1, clk, "").Start(t.Context()); !errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("strict start with a foreign row: %v", err)
	}
}

func TestAlgorithms(t *testing.T) {
	for _, tc := range []struct{ alg, kty, crv string }{
		{AlgES256, "EC", "P-256"},
		{AlgEdDSA, "OKP", "Ed25519"},
		{AlgRS256, "RSA", ""},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			st := newStore(t)
			m := newManager(t, st, master1, &fakeClock{t: t0}, tc.alg)
			start(t, m)
			kid, alg, key := m.Signer()
			if alg != tc.alg {
				t.Fatalf("alg = %s", alg)
			}
			if rk, ok := key.(*rsa.PrivateKey); ok && rk.N.BitLen() != 3072 {
				t.Fatalf("RSA key has %d bits, want 3072", rk.N.BitLen())
			}
			var set struct {
				Keys []map[string]any `json:"keys"`
			}
			if err := json.Unmarshal(m.PublicJWKS(), &set); err != nil {
				t.Fatal(err)
			}
			k := set.Keys[0]
			if k["kid"] != kid || k["alg"] != tc.alg || k["kty"] != tc.kty || k["use"] != "sig" {
				t.Fatalf("jwk = %v", k)
			}
			if tc.crv != "" && k["crv"] != tc.crv {
				t.Fatalf("crv = %v", k["crv"])
			}
			for _, priv := range []string{"d", "p", "q", "dp", "dq", "qi"} {
				if _, ok := k[priv]; ok {
					t.Fatalf("private member %q published", priv)
				}
			}
			if err := verify(m.PublicJWKS(), sign(t, m, "x"), alg); err != nil {
				t.Fatal(err)
			}
			// Restart decrypts the stored key of this algorithm.
			m2 := newManager(t, st, master1, &fakeClock{t: t0}, tc.alg)
			start(t, m2)
			if kid2, _, _ := m2.Signer(); kid2 != kid {
				t.Fatalf("restart: %s != %s", kid2, kid)
			}
		})
	}
}

func TestNodesConverge(t *testing.T) {
	st := newStore(t)
	clk := &fakeClock{t: t0}
	n1 := newManager(t, st, master1, clk, "")
	n2 := newManager(t, st, master1, clk, "")
	start(t, n1)
	start(t, n2)
	if k1, _, _ := n1.Signer(); func() string { k, _, _ := n2.Signer(); return k }() != k1 {
		t.Fatal("nodes started with different keys")
	}
	ki, err := n1.Rotate(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if contains(kids(n2), ki.ID) {
		t.Fatal("test is broken: n2 saw the key without reloading")
	}
	if err := n2.sync(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	if !contains(kids(n2), ki.ID) {
		t.Fatal("n2 did not publish the key rotated on n1 after reload")
	}

	// Both nodes reaching the rotation point at once create one successor.
	clk.Set(ki.ActivateAt.Add(rotate - ahead))
	var wg sync.WaitGroup
	for _, n := range []*Manager{n1, n2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.sync(context.Background(), false); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	_ = n1.sync(t.Context(), false)
	_ = n2.sync(t.Context(), false)
	rows, _ := st.ListSigningKeys(t.Context())
	if len(rows) != 3 {
		t.Fatalf("%d key rows, want 3 (initial, rotated, one scheduled successor)", len(rows))
	}
	if a, b := kids(n1), kids(n2); strings.Join(a, ",") != strings.Join(b, ",") {
		t.Fatalf("nodes publish different sets: %v vs %v", a, b)
	}
}

func TestSubscribe(t *testing.T) {
	st := newStore(t)
	m := newManager(t, st, master1, &fakeClock{t: t0}, "")
	var calls atomic.Int32
	got := make(chan struct{}, 10)
	unsub := m.Subscribe(func() { calls.Add(1); got <- struct{}{} })
	start(t, m)
	waitCall(t, got)
	if _, err := m.Rotate(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitCall(t, got)
	unsub()
	before := calls.Load()
	if _, err := m.Rotate(t.Context()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if calls.Load() != before {
		t.Fatal("called after unsubscribe")
	}
}

func waitCall(t *testing.T, c <-chan struct{}) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(5 * time.Second):
		t.Fatal("subscriber not notified")
	}
}

func TestOptionsValidation(t *testing.T) {
	st := newStore(t)
	for name, o := range map[string]Options{
		"short master key": {MasterKey: make([]byte, 16)},
		"zero master key":  {MasterKey: make([]byte, 32)},
		"unknown alg":      {MasterKey: master1, Alg: "HS256"},
		"rotate <= ahead":  {MasterKey: master1, RotateEvery: time.Hour, PublishAhead: time.Hour},
		"reload too slow":  {MasterKey: master1, PublishAhead: time.Hour, ReloadEvery: 40 * time.Minute},
		"negative":         {MasterKey: master1, MaxTokenLifetime: -time.Second},
	} {
		if _, err := NewManager(st, o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewManager(nil, Options{MasterKey: master1}); err == nil {
		t.Error("nil store accepted")
	}
	m, err := NewManager(st, Options{MasterKey: master1})
	if err != nil {
		t.Fatalf("defaults rejected: %v", err)
	}
	if m.o.Alg != AlgES256 || m.o.RotateEvery != DefaultRotateEvery || m.o.PublishAhead != DefaultPublishAhead {
		t.Fatalf("defaults = %+v", m.o)
	}
}

func BenchmarkSigner(b *testing.B) {
	st, err := store.OpenSQLite(filepath.Join(b.TempDir(), "k.db"), store.SQLiteOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	m, err := NewManager(st, Options{MasterKey: master1, Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	if err := m.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, k := m.Signer(); k == nil {
				b.Fatal("nil")
			}
		}
	})
}
