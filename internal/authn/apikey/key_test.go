package apikey

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"hash/crc32"
	"regexp"
	"strings"
	"testing"
)

var keyRE = regexp.MustCompile(`^sekisho_[0-9A-Za-z]{51}_[0-9A-Za-z]{6}$`)

func TestGenerateParseRoundTrip(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		key, id, hash, err := Generate(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if len(key) != KeyLen || !keyRE.MatchString(key) {
			t.Fatalf("key %q does not match the documented format", key)
		}
		if id != key[len(Prefix):len(Prefix)+IDLen] || !ValidID(id) {
			t.Fatalf("id %q is not the key's id segment", id)
		}
		if sum := sha256.Sum256([]byte(key)); !bytes.Equal(hash, sum[:]) {
			t.Fatal("hash is not SHA-256 of the key")
		}
		got, err := Parse(key)
		if err != nil || got != id {
			t.Fatalf("Parse(generated) = %q, %v; want %q", got, err, id)
		}
		if seen[key] {
			t.Fatal("duplicate key")
		}
		seen[key] = true
	}
}

func TestGenerateUniformAlphabet(t *testing.T) {
	// Rejection sampling must use the whole alphabet; with 2000 keys
	// (~100k characters) every one of the 62 characters appears.
	counts := map[byte]int{}
	for i := 0; i < 2000; i++ {
		key, _, _, err := Generate(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		for j := len(Prefix); j < len(Prefix)+bodyLen; j++ {
			counts[key[j]]++
		}
	}
	if len(counts) != 62 {
		t.Fatalf("only %d distinct characters in key bodies", len(counts))
	}
	// Expected ~1645 per character; a modulo bias toward the first 8
	// characters would show as ~+25%.
	for c, n := range counts {
		if n < 1300 || n > 2000 {
			t.Errorf("character %q appears %d times (expected ~1645)", c, n)
		}
	}
}

func TestGenerateRandomFailure(t *testing.T) {
	if _, _, _, err := Generate(strings.NewReader("short")); err == nil {
		t.Fatal("Generate succeeded with a failing random source")
	}
	if _, _, _, err := Generate(nil); err == nil {
		t.Fatal("Generate accepted nil random source")
	}
}

func TestParseDetectsEveryTypo(t *testing.T) {
	key, _, _, err := Generate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// Every single-character substitution within the base62 alphabet.
	for i := len(Prefix); i < KeyLen; i++ {
		if key[i] == '_' {
			continue
		}
		for j := 0; j < len(base62); j++ {
			if base62[j] == key[i] {
				continue
			}
			typo := key[:i] + string(base62[j]) + key[i+1:]
			if _, err := Parse(typo); !errors.Is(err, ErrChecksum) {
				t.Fatalf("substitution at %d not detected: %v", i, err)
			}
		}
	}
	// Every adjacent transposition of differing characters.
	for i := len(Prefix); i < KeyLen-1; i++ {
		if key[i] == key[i+1] || key[i] == '_' || key[i+1] == '_' {
			continue
		}
		b := []byte(key)
		b[i], b[i+1] = b[i+1], b[i]
		if _, err := Parse(string(b)); err == nil {
			t.Fatalf("transposition at %d not detected", i)
		}
	}
}

func TestParseRejectsMalformed(t *testing.T) {
	key, _, _, _ := Generate(rand.Reader)
	cases := map[string]string{
		"empty":      "",
		"truncated":  key[:KeyLen-1],
		"extended":   key + "A",
		"prefix":     "sekishx_" + key[len(Prefix):],
		"separator":  key[:len(Prefix)+bodyLen] + "-" + key[len(Prefix)+bodyLen+1:],
		"non-base62": key[:10] + "+" + key[11:],
		"huge":       strings.Repeat("A", 1<<20),
	}
	for name, k := range cases {
		if _, err := Parse(k); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParse(f *testing.F) {
	key, _, _, _ := Generate(rand.Reader)
	f.Add(key)
	f.Add(key[:KeyLen-1] + "x")
	f.Add("sekisho_")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := Parse(s)
		if err != nil {
			if id != "" {
				t.Fatal("id returned with error")
			}
			return
		}
		if !keyRE.MatchString(s) {
			t.Fatalf("accepted %q which is not in the documented format", s)
		}
		if id != s[len(Prefix):len(Prefix)+IDLen] {
			t.Fatalf("id %q is not the key's id segment", id)
		}
		// Accepted keys carry a correct checksum: recompute independently.
		var want []byte
		want = appendChecksum(want, crc32.ChecksumIEEE([]byte(s[:len(Prefix)+bodyLen])))
		if string(want) != s[KeyLen-ChecksumLen:] {
			t.Fatal("accepted a key with a wrong checksum")
		}
	})
}
