// Package keys manages the authorization server's token signing keys:
// generation, encryption at rest under a master key, scheduled rotation with
// overlap, multi-node convergence and the public JWKS.
//
// Lifecycle of a key (all times persisted in store.SigningKey):
//
//	CreatedAt ──published, not signing── ActivateAt ──signing── RetireAt ──published, not signing── ExpireAt
//
// A successor is created PublishAhead before the current key retires, so
// relying parties that cache the JWKS already know it when it starts signing,
// and a retired key stays published for MaxTokenLifetime after its last
// signature, so every token it signed verifies until that token expires.
//
// Private keys are PKCS#8, sealed with AES-256-GCM under a key derived from
// the master key with HKDF-SHA256; the kid and alg are the additional data, so
// ciphertexts cannot be swapped between rows. Public keys are always derived
// from the decrypted private key, never taken from the database, so someone
// who can write the database but lacks the master key cannot inject a
// verification key into the JWKS.
package keys

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/crypto/hkdf"

	"github.com/sekisho/sekisho/internal/store"
)

// Supported JWS algorithms.
const (
	AlgES256 = "ES256" // ECDSA P-256 (default)
	AlgEdDSA = "EdDSA" // Ed25519
	AlgRS256 = "RS256" // RSA 3072
)

// MasterKeySize is the required master key length in bytes.
const MasterKeySize = 32

// ErrWrongMasterKey is returned (wrapped) when stored keys fail to decrypt.
var ErrWrongMasterKey = errors.New("signing keys cannot be decrypted: wrong master key?")

// ErrNoSigningKey is returned when no key is currently able to sign.
var ErrNoSigningKey = errors.New("keys: no active signing key")

// Key states reported by List.
const (
	StateNext    = "next"    // published, signs from ActivateAt
	StateCurrent = "current" // the key Signer returns
	StateRetired = "retired" // published until ExpireAt, no longer signs
	StateExpired = "expired" // no longer published; removed by store GC
)

// Defaults and bounds for Options.
const (
	DefaultRotateEvery      = 30 * 24 * time.Hour
	DefaultPublishAhead     = time.Hour
	DefaultMaxTokenLifetime = 24 * time.Hour
	DefaultReloadEvery      = time.Minute
	rsaBits                 = 3072
	maxDuration             = 5 * 365 * 24 * time.Hour
)

// Options configures a Manager.
type Options struct {
	// MasterKey encrypts private keys at rest; exactly 32 bytes, not all zero.
	MasterKey []byte
	// Alg for newly generated keys: ES256 (default), EdDSA or RS256.
	Alg string
	// RotateEvery is how long a key signs (default 30 days); must exceed PublishAhead.
	RotateEvery time.Duration
	// PublishAhead is how long a new key is published in the JWKS before it
	// signs (default 1h); must exceed relying parties' JWKS cache age.
	PublishAhead time.Duration
	// MaxTokenLifetime is the longest lifetime of any token signed with a key
	// (default 24h); a retired key stays published this long.
	MaxTokenLifetime time.Duration
	// ReloadEvery is how often keys are re-read from the store so nodes
	// converge (default 1m); must be at most PublishAhead/2.
	ReloadEvery time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

func (o *Options) validate() error {
	if len(o.MasterKey) != MasterKeySize {
		return fmt.Errorf("keys: master key must be exactly %d bytes, got %d", MasterKeySize, len(o.MasterKey))
	}
	if subtle.ConstantTimeCompare(o.MasterKey, make([]byte, MasterKeySize)) == 1 {
		return errors.New("keys: master key is all zero")
	}
	switch o.Alg {
	case "":
		o.Alg = AlgES256
	case AlgES256, AlgEdDSA, AlgRS256:
	default:
		return fmt.Errorf("keys: unsupported alg %q (want ES256, EdDSA or RS256)", o.Alg)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.RotateEvery, DefaultRotateEvery)
	def(&o.PublishAhead, DefaultPublishAhead)
	def(&o.MaxTokenLifetime, DefaultMaxTokenLifetime)
	def(&o.ReloadEvery, DefaultReloadEvery)
	for name, d := range map[string]time.Duration{"RotateEvery": o.RotateEvery, "PublishAhead": o.PublishAhead,
		"MaxTokenLifetime": o.MaxTokenLifetime, "ReloadEvery": o.ReloadEvery} {
		if d < time.Second || d > maxDuration {
			return fmt.Errorf("keys: %s %s out of range 1s..%s", name, d, maxDuration)
		}
	}
	if o.RotateEvery <= o.PublishAhead {
		return fmt.Errorf("keys: RotateEvery (%s) must exceed PublishAhead (%s)", o.RotateEvery, o.PublishAhead)
	}
	if o.ReloadEvery > o.PublishAhead/2 {
		return fmt.Errorf("keys: ReloadEvery (%s) must be at most PublishAhead/2 (%s) so every node publishes a new key before any node signs with it",
			o.ReloadEvery, o.PublishAhead/2)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// KeyInfo describes a key without its private part.
type KeyInfo struct {
	ID         string
	Alg        string
	State      string // StateNext, StateCurrent, StateRetired, StateExpired
	CreatedAt  time.Time
	ActivateAt time.Time
	RetireAt   time.Time
	ExpireAt   time.Time
}

// RotateOption modifies Rotate.
type RotateOption func(*rotateConfig)

type rotateConfig struct {
	immediate      bool
	revokePrevious bool
}

// Immediate makes the new key sign at once instead of after PublishAhead.
// Trade-off: relying parties with a cached JWKS do not know the new kid until
// they refetch, so their verifications fail until then (most refetch on an
// unknown kid, rate-limited). Use it when the current key must stop signing
// now (suspected compromise); previous keys stay published so tokens they
// signed keep verifying.
func Immediate() RotateOption { return func(c *rotateConfig) { c.immediate = true } }

// RevokePrevious also removes all previous keys from the JWKS at once: every
// token they signed stops verifying. Implies Immediate. For key compromise.
func RevokePrevious() RotateOption {
	return func(c *rotateConfig) { c.immediate = true; c.revokePrevious = true }
}

// loadedKey is a decrypted key.
type loadedKey struct {
	row    store.SigningKey
	signer crypto.Signer
	jwk    jose.JSONWebKey // public part
}

// snapshot is the immutable state read by Signer/PublicJWKS.
type snapshot struct {
	kid, alg   string
	signer     crypto.Signer
	public     []jose.JSONWebKey
	jwks       []byte
	validUntil time.Time // next ActivateAt/RetireAt/ExpireAt transition
}

// Manager owns the signing keys. Signer, PublicJWKS and PublicKeys read an
// immutable snapshot through an atomic pointer: no locks, no I/O.
type Manager struct {
	st   store.KeyStore
	o    Options
	aead cipher.AEAD
	log  *slog.Logger

	mu   sync.Mutex // serializes sync/rotate/rebuild
	keys map[string]*loadedKey

	state atomic.Pointer[snapshot]

	subMu    sync.Mutex
	subs     map[uint64]func()
	nextSub  uint64
	notifyMu sync.Mutex // serializes notification rounds

	started atomic.Bool
	stop    context.CancelFunc
	done    chan struct{}
}

// NewManager validates o and returns a Manager. Call Start before Signer; the
// CLI may call Rotate and List without Start.
func NewManager(st store.KeyStore, o Options) (*Manager, error) {
	if st == nil {
		return nil, errors.New("keys: nil key store")
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	aead, err := newAEAD(o.MasterKey)
	if err != nil {
		return nil, err
	}
	return &Manager{st: st, o: o, aead: aead, log: o.Logger, keys: map[string]*loadedKey{},
		subs: map[uint64]func(){}}, nil
}

// newAEAD derives the key-encryption key from the master key.
func newAEAD(master []byte) (cipher.AEAD, error) {
	kek := make([]byte, 32)
	r := hkdf.New(sha256.New, master, nil, []byte("sekisho/signing-keys/aes-256-gcm/v1"))
	if _, err := io.ReadFull(r, kek); err != nil {
		return nil, fmt.Errorf("keys: derive key-encryption key: %w", err)
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	return cipher.NewGCM(block)
}

const blobVersion = 1

// aad binds a ciphertext to its row: length-prefixed kid, then alg, so no
// two (kid, alg) pairs produce the same additional data.
func aad(kid, alg string) []byte {
	b := make([]byte, 0, 32+len(kid)+len(alg))
	b = append(b, "sekisho/signing-key/v1\x00"...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(kid)))
	b = append(b, kid...)
	return append(b, alg...)
}

// seal encrypts a PKCS#8 private key: version(1) || nonce(12) || ciphertext+tag.
func (m *Manager) seal(kid, alg string, pkcs8 []byte) ([]byte, error) {
	out := make([]byte, 1+m.aead.NonceSize(), 1+m.aead.NonceSize()+len(pkcs8)+m.aead.Overhead())
	out[0] = blobVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("keys: nonce: %w", err)
	}
	return m.aead.Seal(out, out[1:1+m.aead.NonceSize()], pkcs8, aad(kid, alg)), nil
}

func (m *Manager) unseal(kid, alg string, blob []byte) ([]byte, error) {
	ns := m.aead.NonceSize()
	if len(blob) < 1+ns+m.aead.Overhead() || blob[0] != blobVersion {
		return nil, fmt.Errorf("keys: key %q: unknown ciphertext format", kid)
	}
	pt, err := m.aead.Open(nil, blob[1:1+ns], blob[1+ns:], aad(kid, alg))
	if err != nil {
		return nil, fmt.Errorf("keys: key %q: %w", kid, ErrWrongMasterKey)
	}
	return pt, nil
}

// open decrypts and checks a stored key.
func (m *Manager) open(row store.SigningKey) (*loadedKey, error) {
	pt, err := m.unseal(row.ID, row.Alg, row.PrivateKeyEnc)
	if err != nil {
		return nil, err
	}
	priv, err := x509.ParsePKCS8PrivateKey(pt)
	clear(pt)
	if err != nil {
		return nil, fmt.Errorf("keys: key %q: parse private key: %w", row.ID, err)
	}
	signer, err := checkKeyType(row.Alg, priv)
	if err != nil {
		return nil, fmt.Errorf("keys: key %q: %w", row.ID, err)
	}
	return &loadedKey{row: row, signer: signer, jwk: publicJWK(row.ID, row.Alg, signer)}, nil
}

func checkKeyType(alg string, priv any) (crypto.Signer, error) {
	switch k := priv.(type) {
	case *ecdsa.PrivateKey:
		if alg == AlgES256 && k.Curve == elliptic.P256() {
			return k, nil
		}
	case ed25519.PrivateKey:
		if alg == AlgEdDSA {
			return k, nil
		}
	case *rsa.PrivateKey:
		if alg == AlgRS256 && k.N.BitLen() >= 2048 {
			return k, nil
		}
	}
	return nil, fmt.Errorf("private key type %T does not match alg %q", priv, alg)
}

func publicJWK(kid, alg string, s crypto.Signer) jose.JSONWebKey {
	return jose.JSONWebKey{Key: s.Public(), KeyID: kid, Algorithm: alg, Use: "sig"}
}

func generate(alg string) (crypto.Signer, error) {
	switch alg {
	case AlgES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case AlgEdDSA:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case AlgRS256:
		return rsa.GenerateKey(rand.Reader, rsaBits)
	}
	return nil, fmt.Errorf("keys: unsupported alg %q", alg)
}

func randomKID() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("keys: kid: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// successorKID is deterministic so that nodes racing to schedule the same
// rotation collide on the primary key instead of creating two successors.
func successorKID(kid string) string {
	h := sha256.Sum256([]byte("sekisho/kid-successor/v1\x00" + kid))
	return base64.RawURLEncoding.EncodeToString(h[:12])
}

// prepareKey generates and encrypts a key with the given schedule (no I/O,
// so slow RSA generation never runs inside a store transaction).
func (m *Manager) prepareKey(kid string, activate time.Time) (*loadedKey, error) {
	signer, err := generate(m.o.Alg)
	if err != nil {
		return nil, fmt.Errorf("keys: generate %s key: %w", m.o.Alg, err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(signer)
	if err != nil {
		return nil, fmt.Errorf("keys: encode private key: %w", err)
	}
	blob, err := m.seal(kid, m.o.Alg, pkcs8)
	clear(pkcs8)
	if err != nil {
		return nil, err
	}
	jwk := publicJWK(kid, m.o.Alg, signer)
	pub, err := json.Marshal(jwk)
	if err != nil {
		return nil, fmt.Errorf("keys: encode public key: %w", err)
	}
	retire := activate.Add(m.o.RotateEvery)
	row := store.SigningKey{ID: kid, Alg: m.o.Alg, PrivateKeyEnc: blob, PublicJWK: pub, CreatedAt: m.now(),
		ActivateAt: activate, RetireAt: retire, ExpireAt: retire.Add(m.o.MaxTokenLifetime)}
	return &loadedKey{row: row, signer: signer, jwk: jwk}, nil
}

// newKey prepares and persists a key.
func (m *Manager) newKey(ctx context.Context, kid string, activate time.Time) (*loadedKey, error) {
	lk, err := m.prepareKey(kid, activate)
	if err != nil {
		return nil, err
	}
	if err := m.st.CreateSigningKey(ctx, &lk.row); err != nil {
		return nil, fmt.Errorf("keys: store new key %q: %w", kid, err)
	}
	return lk, nil
}

func (m *Manager) now() time.Time { return m.o.Now().UTC().Truncate(time.Microsecond) }

// load re-reads the key rows. strict: every row (even expired) must decrypt,
// else ErrWrongMasterKey — used at Start and Rotate so that a wrong master key
// is reported and never papered over with new keys. Non-strict (periodic
// reload) skips rows it cannot open and logs them.
func (m *Manager) load(ctx context.Context, strict bool) error {
	rows, err := m.st.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("keys: load signing keys: %w", err)
	}
	now := m.now()
	keys := make(map[string]*loadedKey, len(rows))
	for _, r := range rows {
		if c, ok := m.keys[r.ID]; ok && c.row.Alg == r.Alg && bytes.Equal(c.row.PrivateKeyEnc, r.PrivateKeyEnc) {
			lk := *c
			lk.row = r // schedule may have changed
			keys[r.ID] = &lk
			continue
		}
		if !strict && !r.ExpireAt.After(now) {
			continue
		}
		lk, err := m.open(r)
		if err != nil {
			if strict {
				return err
			}
			m.log.Error("signing key ignored: cannot be opened", "kid", r.ID, "error", err)
			continue
		}
		keys[r.ID] = lk
	}
	m.keys = keys
	return nil
}

// sortKeys returns the keys, newest activation first.
func sortKeys(keys map[string]*loadedKey) []*loadedKey {
	out := make([]*loadedKey, 0, len(keys))
	for _, k := range keys {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].row, out[j].row
		if !a.ActivateAt.Equal(b.ActivateAt) {
			return a.ActivateAt.After(b.ActivateAt)
		}
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.After(b.CreatedAt)
		}
		return a.ID > b.ID
	})
	return out
}

// current picks the signing key at now: the newest key inside its signing
// window; failing that (rotation overdue, e.g. the store was unreachable), the
// newest activated key that is still published. nil if none.
func current(keys []*loadedKey, now time.Time) (k *loadedKey, inWindow bool) {
	for _, k := range keys {
		if !k.row.ActivateAt.After(now) && now.Before(k.row.RetireAt) {
			return k, true
		}
	}
	for _, k := range keys {
		if !k.row.ActivateAt.After(now) && now.Before(k.row.ExpireAt) {
			return k, false
		}
	}
	return nil, false
}

// rebuild publishes a new snapshot from m.keys (m.mu held).
func (m *Manager) rebuild() {
	now := m.now()
	keys := sortKeys(m.keys)
	cur, inWindow := current(keys, now)
	s := &snapshot{validUntil: now.Add(maxDuration)}
	if cur != nil {
		s.kid, s.alg, s.signer = cur.row.ID, cur.row.Alg, cur.signer
		s.public = append(s.public, cur.jwk)
		if !inWindow {
			m.log.Warn("signing with a retired key: rotation is overdue", "kid", cur.row.ID)
		}
	}
	for _, k := range keys {
		for _, t := range []time.Time{k.row.ActivateAt, k.row.RetireAt, k.row.ExpireAt} {
			if t.After(now) && t.Before(s.validUntil) {
				s.validUntil = t
			}
		}
		if k != cur && now.Before(k.row.ExpireAt) {
			s.public = append(s.public, k.jwk)
		}
	}
	if s.public == nil {
		s.public = []jose.JSONWebKey{}
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: s.public})
	if err != nil { // cannot happen for EC/OKP/RSA public keys
		m.log.Error("encode JWKS", "error", err)
		return
	}
	s.jwks = jwks
	old := m.state.Swap(s)
	if old == nil || old.kid != s.kid || !bytes.Equal(old.jwks, s.jwks) {
		go m.notify()
	}
}

// ensure creates keys the schedule requires (m.mu held, keys loaded). It
// reports whether it wrote anything.
func (m *Manager) ensure(ctx context.Context) (bool, error) {
	now := m.now()
	keys := sortKeys(m.keys)
	cur, _ := current(keys, now)
	if cur == nil {
		// First start, or every key expired while the service was down: no
		// relying party can hold a token we could still verify, so the new
		// key signs at once.
		m.log.Info("no usable signing key: generating one that signs immediately", "alg", m.o.Alg)
		kid, err := randomKID()
		if err != nil {
			return false, err
		}
		_, err = m.newKey(ctx, kid, now)
		return err == nil, err
	}
	if hasSuccessor(keys, cur) || now.Before(cur.row.RetireAt.Add(-m.o.PublishAhead)) {
		return false, nil
	}
	activate := cur.row.RetireAt
	if earliest := now.Add(m.o.PublishAhead); activate.Before(earliest) {
		// Overdue (e.g. the store was unreachable): the current key keeps
		// signing until the successor has been published for PublishAhead.
		activate = earliest
	}
	kid := successorKID(cur.row.ID)
	if _, err := m.newKey(ctx, kid, activate); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return true, nil // another node scheduled it; the reload picks it up
		}
		return false, err
	}
	m.log.Info("signing key rotation scheduled", "current", cur.row.ID, "next", kid, "activate_at", activate)
	if activate.After(cur.row.RetireAt) {
		row := cur.row
		row.RetireAt = activate
		row.ExpireAt = activate.Add(m.o.MaxTokenLifetime)
		if err := m.st.UpdateSigningKey(ctx, &row); err != nil {
			return true, fmt.Errorf("keys: extend key %q: %w", row.ID, err)
		}
	}
	return true, nil
}

// hasSuccessor reports whether a key that will sign after cur exists.
func hasSuccessor(keys []*loadedKey, cur *loadedKey) bool {
	for _, k := range keys {
		if k != cur && k.row.ActivateAt.After(cur.row.ActivateAt) && k.row.RetireAt.After(k.row.ActivateAt) {
			return true
		}
	}
	return false
}

// sync reloads, applies the schedule and republishes.
func (m *Manager) sync(ctx context.Context, strict bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.load(ctx, strict); err != nil {
		return err
	}
	wrote, err := m.ensure(ctx)
	if wrote {
		if lerr := m.load(ctx, strict); lerr != nil && err == nil {
			err = lerr
		}
	}
	m.rebuild()
	return err
}

// Start loads (and decrypts) the stored keys, generates the first key if none
// can sign, and runs the rotation/reload loop until ctx is done or Close is
// called. A wrong master key fails Start with ErrWrongMasterKey; no key is
// generated in that case.
func (m *Manager) Start(ctx context.Context) error {
	if !m.started.CompareAndSwap(false, true) {
		return errors.New("keys: manager already started")
	}
	if err := m.sync(ctx, true); err != nil {
		m.started.Store(false)
		return err
	}
	if s := m.state.Load(); s == nil || s.signer == nil {
		m.started.Store(false)
		return ErrNoSigningKey
	}
	loopCtx, cancel := context.WithCancel(ctx)
	m.stop = cancel
	m.done = make(chan struct{})
	go m.loop(loopCtx)
	return nil
}

// Close stops the loop started by Start and waits for it.
func (m *Manager) Close() error {
	if m.stop != nil {
		m.stop()
		<-m.done
	}
	return nil
}

func (m *Manager) loop(ctx context.Context) {
	defer close(m.done)
	nextReload := time.Now().Add(m.o.ReloadEvery)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		wait := time.Until(nextReload)
		if s := m.state.Load(); s != nil {
			if d := s.validUntil.Sub(m.now()); d < wait {
				wait = max(d, 0)
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		if time.Now().Before(nextReload) {
			m.mu.Lock()
			m.rebuild() // a scheduled transition: no I/O needed
			m.mu.Unlock()
			continue
		}
		nextReload = time.Now().Add(m.o.ReloadEvery)
		rctx, cancel := context.WithTimeout(ctx, m.o.ReloadEvery)
		if err := m.sync(rctx, false); err != nil && ctx.Err() == nil {
			m.log.Error("signing key reload failed; keeping the current keys", "error", err)
		}
		cancel()
	}
}

// snapshot returns the current state, rebuilding it first if a scheduled
// transition has passed (only then does it take the lock).
func (m *Manager) snapshot() *snapshot {
	s := m.state.Load()
	if s == nil || m.o.Now().Before(s.validUntil) {
		return s
	}
	m.mu.Lock()
	if s2 := m.state.Load(); s2 == s {
		m.rebuild()
	}
	m.mu.Unlock()
	return m.state.Load()
}

// Signer returns the current signing key. key is nil before a successful
// Start; callers must then refuse to issue tokens.
func (m *Manager) Signer() (kid, alg string, key crypto.Signer) {
	s := m.snapshot()
	if s == nil {
		return "", "", nil
	}
	return s.kid, s.alg, s.signer
}

// PublicJWKS returns the JSON Web Key Set ({"keys":[…]}) of all published
// keys: the current one first, then next and retired-not-expired keys. The
// returned slice must not be modified.
func (m *Manager) PublicJWKS() []byte {
	s := m.snapshot()
	if s == nil {
		return []byte(`{"keys":[]}`)
	}
	return s.jwks
}

// PublicKeys returns all published public keys (current first).
func (m *Manager) PublicKeys() []jose.JSONWebKey {
	s := m.snapshot()
	if s == nil {
		return []jose.JSONWebKey{}
	}
	return append([]jose.JSONWebKey(nil), s.public...)
}

// txStore is implemented by store.Store; Rotate uses it when available.
type txStore interface {
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
}

// Rotate creates and publishes a new key now. It signs after PublishAhead,
// or at once with Immediate. Keys that would still sign after the new key
// activates are retired at that moment and stay published for
// MaxTokenLifetime (or are dropped at once with RevokePrevious). Rotate first
// verifies that every stored key decrypts, so a wrong master key can never
// introduce a key the other nodes cannot use.
func (m *Manager) Rotate(ctx context.Context, opts ...RotateOption) (KeyInfo, error) {
	var cfg rotateConfig
	for _, o := range opts {
		o(&cfg)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.load(ctx, true); err != nil {
		return KeyInfo{}, err
	}
	now := m.now()
	activate := now.Add(m.o.PublishAhead)
	if cfg.immediate {
		activate = now
	}
	kid, err := randomKID()
	if err != nil {
		return KeyInfo{}, err
	}
	created, err := m.prepareKey(kid, activate)
	if err != nil {
		return KeyInfo{}, err
	}
	apply := func(ctx context.Context) error {
		if err := m.st.CreateSigningKey(ctx, &created.row); err != nil {
			return fmt.Errorf("keys: store new key %q: %w", kid, err)
		}
		for _, k := range sortKeys(m.keys) {
			row := k.row
			switch {
			case !now.Before(row.ExpireAt):
				continue // already expired
			case cfg.revokePrevious:
				row.ActivateAt = minTime(row.ActivateAt, now)
				row.RetireAt, row.ExpireAt = now, now
			case row.ActivateAt.After(now) && !row.ActivateAt.Before(activate):
				// Has not signed and never will: drop it when the new key activates.
				row.ActivateAt, row.RetireAt, row.ExpireAt = activate, activate, activate
			case row.RetireAt.After(activate):
				row.RetireAt = activate
				row.ExpireAt = activate.Add(m.o.MaxTokenLifetime)
			default:
				continue
			}
			if err := m.st.UpdateSigningKey(ctx, &row); err != nil {
				return fmt.Errorf("keys: retire key %q: %w", row.ID, err)
			}
		}
		return nil
	}
	if ts, ok := m.st.(txStore); ok {
		err = ts.InTx(ctx, apply)
	} else {
		err = apply(ctx)
	}
	if err != nil {
		return KeyInfo{}, err
	}
	m.log.Info("signing key rotated", "kid", kid, "alg", m.o.Alg, "activate_at", activate,
		"immediate", cfg.immediate, "revoke_previous", cfg.revokePrevious)
	if err := m.load(ctx, true); err != nil {
		return KeyInfo{}, err
	}
	m.rebuild()
	return info(created.row, StateNext, now), nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func info(r store.SigningKey, state string, now time.Time) KeyInfo {
	if state == StateNext && !r.ActivateAt.After(now) {
		state = StateCurrent
	}
	return KeyInfo{ID: r.ID, Alg: r.Alg, State: state, CreatedAt: r.CreatedAt, ActivateAt: r.ActivateAt,
		RetireAt: r.RetireAt, ExpireAt: r.ExpireAt}
}

// List returns all stored keys with their state, newest activation first. It
// reads the store (no decryption), so it works without the master key being
// right; the "current" key is determined by schedule.
func (m *Manager) List(ctx context.Context) ([]KeyInfo, error) {
	rows, err := m.st.ListSigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("keys: list: %w", err)
	}
	now := m.now()
	byID := make(map[string]*loadedKey, len(rows))
	for _, r := range rows {
		byID[r.ID] = &loadedKey{row: r}
	}
	sorted := sortKeys(byID)
	cur, _ := current(sorted, now)
	out := make([]KeyInfo, 0, len(sorted))
	for _, k := range sorted {
		state := StateRetired
		switch {
		case !now.Before(k.row.ExpireAt):
			state = StateExpired
		case k == cur:
			state = StateCurrent
		case k.row.ActivateAt.After(now):
			state = StateNext
		}
		out = append(out, info(k.row, state, now))
	}
	return out, nil
}

// Subscribe registers fn to be called (from a background goroutine, never
// concurrently with itself) after the published key set or the signer changed. fn must not block for
// long. It returns a function that unsubscribes.
func (m *Manager) Subscribe(fn func()) (unsubscribe func()) {
	m.subMu.Lock()
	defer m.subMu.Unlock()
	id := m.nextSub
	m.nextSub++
	m.subs[id] = fn
	return func() {
		m.subMu.Lock()
		defer m.subMu.Unlock()
		delete(m.subs, id)
	}
}

// notify calls the subscribers; rounds never overlap. Subscribers re-read
// the current state, so coalesced or reordered rounds are harmless.
func (m *Manager) notify() {
	m.notifyMu.Lock()
	defer m.notifyMu.Unlock()
	m.subMu.Lock()
	fns := make([]func(), 0, len(m.subs))
	for _, fn := range m.subs {
		fns = append(fns, fn)
	}
	m.subMu.Unlock()
	for _, fn := range fns {
		fn()
	}
}
