package keys

import (
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/store"
)

// FuzzOpenRow feeds arbitrary stored rows (the database is not trusted with
// key material) to the decryption path: it must never panic, and nothing but
// a ciphertext sealed under our master key for exactly that kid/alg opens.
func FuzzOpenRow(f *testing.F) {
	m, err := NewManager(nopStore{}, Options{MasterKey: master1, Logger: quiet()})
	if err != nil {
		f.Fatal(err)
	}
	good, err := m.prepareKey("seed-kid", time.Unix(0, 0))
	if err != nil {
		f.Fatal(err)
	}
	f.Add("seed-kid", AlgES256, good.row.PrivateKeyEnc)
	f.Add("other", AlgES256, good.row.PrivateKeyEnc)
	f.Add("k", AlgRS256, []byte{1})
	f.Add("", "", []byte{})
	f.Fuzz(func(t *testing.T, kid, alg string, blob []byte) {
		lk, err := m.open(store.SigningKey{ID: kid, Alg: alg, PrivateKeyEnc: blob})
		if err != nil {
			return
		}
		// Only ever sealed for this kid/alg (in this or another fuzz worker).
		if kid != "seed-kid" || alg != AlgES256 {
			t.Fatalf("forged row opened: kid=%q alg=%q", kid, alg)
		}
		if lk.signer == nil {
			t.Fatal("opened without a signer")
		}
	})
}

// nopStore satisfies store.KeyStore for tests that never touch the store.
type nopStore struct{ store.KeyStore }
