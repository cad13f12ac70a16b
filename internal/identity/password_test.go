package identity

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func base64Token(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// Vectors from the reference implementation (Debian libargon2 0~20171227,
// argon2id_hash_encoded called through ctypes): they pin parameter order,
// encoding and lane handling against an independent implementation.
var referenceVectors = []struct{ password, phc string }{
	{"correct horse battery staple", "$argon2id$v=19$m=19456,t=2,p=1$c2VraXNoby1rYXQtc2FsdA$O/EywBJ+9NNuEOqSRhLBmR7HTq7HbPF7t1Ko1QqRGyI"},
	{"パスワードは秘密です", "$argon2id$v=19$m=8192,t=1,p=2$MDEyMzQ1Njc4OWFiY2RlZg$wPyzNtLISngxG6uBturj82dTZUpxpknzkp5ewk2rYdo"},
	{"password", "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$3u81etWAFCMMWgn5vo3ctnz9lZoksj13cXAgmmSdo+SnEsEuCEc6zAS0nc8pQTQG+GFINvUeDTp27YI/hXK1fw"},
}

func TestVerifyReferenceVectors(t *testing.T) {
	h, err := NewPasswordHasher(PasswordOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, v := range referenceVectors {
		ok, rehash, err := h.Verify(ctx, v.password, v.phc)
		if err != nil || !ok {
			t.Errorf("reference vector %d: ok=%v err=%v", i, ok, err)
		}
		// Only the first uses today's defaults; the others need a rehash.
		if rehash != (i != 0) {
			t.Errorf("vector %d: needsRehash = %v", i, rehash)
		}
	}
	if ok, _, _ := h.Verify(ctx, referenceVectors[0].password+"x", referenceVectors[0].phc); ok {
		t.Error("reference vector: wrong password accepted")
	}
}

var rePHC = regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)

func TestHashRoundTrip(t *testing.T) {
	h, err := NewPasswordHasher(PasswordOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	phc, err := h.Hash(ctx, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	if !rePHC.MatchString(phc) {
		t.Fatalf("PHC string %q has the wrong shape", phc)
	}
	phc2, _ := h.Hash(ctx, testPassword)
	if phc == phc2 {
		t.Fatal("two hashes of one password are equal: salt not random")
	}
	ok, rehash, err := h.Verify(ctx, testPassword, phc)
	if !ok || rehash || err != nil {
		t.Fatalf("Verify(right) = %v %v %v", ok, rehash, err)
	}
	for _, wrong := range []string{"", "correct horse battery stapl", "Correct horse battery staple", testPassword + " ", strings.Repeat("x", 5000)} {
		if ok, _, err := h.Verify(ctx, wrong, phc); ok || err != nil {
			t.Errorf("Verify(%.20q) = %v, %v", wrong, ok, err)
		}
	}
	// Tampered hash byte.
	tampered := phc[:len(phc)-2] + string("AB"[0]^phc[len(phc)-2]&1) + phc[len(phc)-1:]
	if ok, _, _ := h.Verify(ctx, testPassword, tampered); ok && tampered != phc {
		t.Error("tampered hash verified")
	}
	// A hasher with other parameters asks for a rehash.
	h2, _ := NewPasswordHasher(PasswordOptions{Argon2: Argon2Params{Memory: 8192, Time: 1}})
	if ok, rehash, _ := h2.Verify(ctx, testPassword, phc); !ok || !rehash {
		t.Errorf("other parameters: ok=%v rehash=%v, want true true", ok, rehash)
	}
}

func TestPasswordNormalization(t *testing.T) {
	h, _ := NewPasswordHasher(fastPasswords)
	ctx := context.Background()
	// Full-width (as typed with a Japanese IME in full-width mode) equals ASCII under NFKC.
	phc, err := h.Hash(ctx, "ｃｏｒｒｅｃｔ　ｈｏｒｓｅ１２")
	if err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := h.Verify(ctx, "correct horse12", phc); !ok {
		t.Error("NFKC-equivalent password refused")
	}
	// Composed and decomposed forms are equal.
	phc, _ = h.Hash(ctx, "caf\u00e9 au lait 1234")
	if ok, _, _ := h.Verify(ctx, "cafe\u0301 au lait 1234", phc); !ok {
		t.Error("decomposed é refused")
	}
}

func TestPasswordPolicy(t *testing.T) {
	h, _ := NewPasswordHasher(fastPasswords)
	for pw, want := range map[string]error{
		"elevenchars":                 ErrPasswordTooShort,
		"１２３４５６７８９０１":                 ErrPasswordTooShort, // 11 characters, 33 bytes
		strings.Repeat("a", 1025):     ErrPasswordTooLong,
		"twelve chars\xc3":            ErrPasswordEncoding,
		"twelve chars":                nil,
		"パスワード十二文字以上にする":              nil,
		strings.Repeat("a", 1024):     nil,
		strings.Repeat("\u00e9", 512): nil,
	} {
		err := h.CheckPolicy(pw)
		if !errors.Is(err, want) || (want == nil) != (err == nil) {
			t.Errorf("CheckPolicy(%.16q) = %v, want %v", pw, err, want)
		}
		if err != nil && strings.Contains(err.Error(), pw) {
			t.Errorf("policy error echoes the password: %v", err)
		}
	}
	// NFKC expansion beyond MaxLength is refused (U+FDFA expands to 18 characters).
	if err := h.CheckPolicy(strings.Repeat("\ufdfa", 100)); !errors.Is(err, ErrPasswordTooLong) {
		t.Errorf("expanding password: %v", err)
	}
}

func TestParsePHCRejects(t *testing.T) {
	valid := referenceVectors[0].phc
	bad := []string{
		"",
		"$argon2i$v=19$m=19456,t=2,p=1$c2VraXNoby1rYXQtc2FsdA$O/EywBJ+9NNuEOqSRhLBmR7HTq7HbPF7t1Ko1QqRGyI",
		"$argon2id$v=16$m=19456,t=2,p=1$c2VraXNoby1rYXQtc2FsdA$O/EywBJ+9NNuEOqSRhLBmR7HTq7HbPF7t1Ko1QqRGyI",
		"$argon2id$m=19456,t=2,p=1$c2VraXNoby1rYXQtc2FsdA$O/EywBJ+9NNuEOqSRhLBmR7HTq7HbPF7t1Ko1QqRGyI",
		"$argon2id$v=19$t=2,m=19456,p=1$c2VraXNoby1rYXQtc2FsdA$O/EywBJ+9NNuEOqSRhLBmR7HTq7HbPF7t1Ko1QqRGyI",
		"$argon2id$v=19$m=4294967295,t=2,p=1$c2VraXNoby1rYXQtc2FsdA$O/EywBJ+9NNuEOqSRhLBmR7HTq7HbPF7t1Ko1QqRGyI",
		"$argon2id$v=19$m=19456,t=1000,p=1$c2VraXNoby1rYXQtc2FsdA$O/EywBJ+9NNuEOqSRhLBmR7HTq7HbPF7t1Ko1QqRGyI",
		"$argon2id$v=19$m=19456,t=2,p=0$c2VraXNoby1rYXQtc2FsdA$O/EywBJ+9NNuEOqSRhLBmR7HTq7HbPF7t1Ko1QqRGyI",
		"$argon2id$v=19$m=019456,t=2,p=1$c2VraXNoby1rYXQtc2FsdA$O/EywBJ+9NNuEOqSRhLBmR7HTq7HbPF7t1Ko1QqRGyI",
		"$argon2id$v=19$m=+19456,t=2,p=1$c2VraXNoby1rYXQtc2FsdA$O/EywBJ+9NNuEOqSRhLBmR7HTq7HbPF7t1Ko1QqRGyI",
		"$argon2id$v=19$m=19456,t=2,p=1$c2VraXNoby1rYXQtc2FsdA==$O/EywBJ+9NNuEOqSRhLBmR7HTq7HbPF7t1Ko1QqRGyI",
		"$argon2id$v=19$m=19456,t=2,p=1$c2Vr$O/EywBJ+9NNuEOqSRhLBmR7HTq7HbPF7t1Ko1QqRGyI",
		"$argon2id$v=19$m=19456,t=2,p=1$c2VraXNoby1rYXQtc2FsdA$O/EywBJ+9NNu",
		"$argon2id$v=19$m=19456,t=2,p=1$c2VraXNoby1rYXQtc2FsdA$O_EywBJ-9NNuEOqSRhLBmR7HTq7HbPF7t1Ko1QqRGyI",
		valid + "$",
		"x" + valid,
		valid[:len(valid)-1] + "J", // non-canonical trailing bits
	}
	for _, s := range bad {
		if _, _, _, err := parsePHC(s); !errors.Is(err, ErrInvalidHash) {
			t.Errorf("parsePHC(%q) = %v, want ErrInvalidHash", s, err)
		}
	}
	p, salt, key, err := parsePHC(valid)
	if err != nil || p.Memory != 19456 || p.Time != 2 || p.Threads != 1 || string(salt) != "sekisho-kat-salt" || len(key) != 32 {
		t.Errorf("parsePHC(valid) = %+v %q %d %v", p, salt, len(key), err)
	}
}

// FuzzParsePHC: the parser never panics, accepts only in-bounds parameters,
// and whatever it accepts re-encodes to exactly the input (one canonical form).
func FuzzParsePHC(f *testing.F) {
	for _, v := range referenceVectors {
		f.Add(v.phc)
	}
	f.Add("$argon2id$v=19$m=8192,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("$argon2id$v=19$m=,t=,p=$$")
	f.Add("$$$$$")
	f.Fuzz(func(t *testing.T, s string) {
		p, salt, key, err := parsePHC(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidHash) {
				t.Fatalf("error not ErrInvalidHash: %v", err)
			}
			return
		}
		if p.Memory < minArgon2Memory || p.Memory > maxArgon2Memory || p.Time < 1 || p.Time > maxArgon2Time ||
			p.Threads < 1 || p.Threads > maxArgon2Lanes || len(salt) < minSaltLen || len(salt) > maxSaltLen ||
			len(key) < minKeyLen || len(key) > maxKeyLen {
			t.Fatalf("accepted out-of-bounds parameters %+v salt %d key %d", p, len(salt), len(key))
		}
		re := fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", p.Memory, p.Time, p.Threads,
			base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
		if re != s {
			t.Fatalf("accepted non-canonical %q (canonical %q)", s, re)
		}
	})
}

func TestHashConcurrencyBounded(t *testing.T) {
	h, _ := NewPasswordHasher(PasswordOptions{Argon2: fastPasswords.Argon2, MaxConcurrent: 1})
	// Hold the only slot; a caller with a short deadline gives up.
	h.sem <- struct{}{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := h.Hash(ctx, testPassword); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Hash with no free slot = %v, want deadline exceeded", err)
	}
	<-h.sem
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := h.Hash(context.Background(), testPassword); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

// BenchmarkHash measures one argon2id hash with the default parameters
// (numbers in docs/decisions/0401-argon2id-parameters.md).
func BenchmarkHash(b *testing.B) {
	for _, p := range []Argon2Params{
		{Memory: 19 * 1024, Time: 2, Threads: 1},
		{Memory: 46 * 1024, Time: 1, Threads: 1},
		{Memory: 64 * 1024, Time: 3, Threads: 1},
		{Memory: 64 * 1024, Time: 3, Threads: 2},
	} {
		h, err := NewPasswordHasher(PasswordOptions{Argon2: p, MaxConcurrent: 64})
		if err != nil {
			b.Fatal(err)
		}
		phc, _ := h.Hash(context.Background(), testPassword)
		b.Run(fmt.Sprintf("m=%dKiB,t=%d,p=%d", p.Memory, p.Time, p.Threads), func(b *testing.B) {
			for b.Loop() {
				_, _, _ = h.Verify(context.Background(), testPassword, phc)
			}
		})
	}
}
