package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// The jwt-reuse and jwt-fresh workloads share one bench issuer: an ES256
// key generated per run, its public JWK Set in a file Sekisho reads
// (issuers.bench-issuer.jwks_file), and RFC 9068 access tokens signed with
// it. The floor ignores the Authorization header.
const (
	benchIssuerURL  = "https://bench.sekisho.test"
	benchAudience   = "bench"
	benchIssuerName = "bench-issuer"
	// maxFreshTokens bounds what jwt-fresh pre-generates (memory, disk,
	// generation time): about 0.6 KiB and 20–60 µs of CPU each.
	maxFreshTokens = 2_000_000
	// freshMaxRPS is the request rate the fresh token budget assumes for
	// Sekisho (the floor ignores tokens and may wrap). A Sekisho round
	// faster than this wraps around, and checkExtra then refuses the round
	// rather than report reused tokens as fresh.
	freshMaxRPS = 15_000
)

// benchIssuer is the run's token signer.
type benchIssuer struct {
	key       *ecdsa.PrivateKey
	kid       string
	jwksPath  string
	headerB64 string
	now       time.Time
	// seq numbers tokens so every jti (and therefore every token) in the
	// run is distinct. Guarded by mu for parallel generation.
	mu  sync.Mutex
	seq int64
}

// issuer returns the run's bench issuer, creating the key and the JWKS file
// on first use.
func (env *runEnv) issuer() (*benchIssuer, error) {
	if env.jwt != nil {
		return env.jwt, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ES256 key: %w", err)
	}
	kidRaw := make([]byte, 9)
	if _, err := rand.Read(kidRaw); err != nil {
		return nil, err
	}
	kid := "bench-" + base64.RawURLEncoding.EncodeToString(kidRaw)
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"}}}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("marshal JWKS: %w", err)
	}
	path := filepath.Join(env.tmp, "bench-jwks.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("write JWKS: %w", err)
	}
	hdr, err := json.Marshal(map[string]string{"alg": "ES256", "kid": kid, "typ": "at+jwt"})
	if err != nil {
		return nil, err
	}
	env.jwt = &benchIssuer{key: key, kid: kid, jwksPath: path,
		headerB64: base64.RawURLEncoding.EncodeToString(hdr), now: time.Now()}
	return env.jwt, nil
}

// issuerYAML is the issuer entry both jwt workloads use (identical, so the
// config writer emits it once).
func (bi *benchIssuer) issuerYAML() string {
	return "  " + benchIssuerName + ":\n" +
		"    issuer: " + yamlQuote(benchIssuerURL) + "\n" +
		"    jwks_file: " + yamlQuote(bi.jwksPath) + "\n" +
		"    audiences: [" + benchAudience + "]\n" +
		"    required_type: at+jwt\n"
}

// claims is an RFC 9068 access token's payload.
type claims struct {
	Iss      string `json:"iss"`
	Aud      string `json:"aud"`
	Sub      string `json:"sub"`
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
	Jti      string `json:"jti"`
	Iat      int64  `json:"iat"`
	Exp      int64  `json:"exp"`
}

// sign returns one compact ES256 JWS (JOSE r||s signature encoding).
func (bi *benchIssuer) sign(n int64) (string, error) {
	c := claims{Iss: benchIssuerURL, Aud: benchAudience, Sub: "user-" + strconv.FormatInt(n%5000, 10),
		ClientID: "bench-client-" + strconv.FormatInt(n%50, 10), Scope: "read",
		Jti: "bench-" + strconv.FormatInt(n, 36) + "-" + bi.kid, Iat: bi.now.Unix(), Exp: bi.now.Add(time.Hour).Unix()}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	signing := bi.headerB64 + "." + base64.RawURLEncoding.EncodeToString(payload)
	h := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, bi.key, h[:])
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	var sig [64]byte
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig[:]), nil
}

// writeTokens writes n distinct tokens, one per line, to path, signing on
// all CPUs.
func (bi *benchIssuer) writeTokens(path string, n int) error {
	bi.mu.Lock()
	first := bi.seq
	bi.seq += int64(n)
	bi.mu.Unlock()
	workers := max(runtime.NumCPU(), 1)
	chunks := make([][]byte, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	per := (n + workers - 1) / workers
	for w := 0; w < workers; w++ {
		lo, hi := w*per, min((w+1)*per, n)
		if lo >= hi {
			continue
		}
		wg.Add(1)
		go func(w, lo, hi int) {
			defer wg.Done()
			buf := make([]byte, 0, (hi-lo)*400)
			for i := lo; i < hi; i++ {
				tok, err := bi.sign(first + int64(i))
				if err != nil {
					errs[w] = err
					return
				}
				buf = append(append(buf, tok...), '\n')
			}
			chunks[w] = buf
		}(w, lo, hi)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	for _, c := range chunks {
		if _, err := bw.Write(c); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// jwtRouteYAML is a jwt-protected route for the bench issuer.
func jwtRouteYAML(name, prefix string) string {
	return jwtRouteYAMLFor(name, prefix, benchIssuerName)
}

// jwtRouteYAMLFor is a jwt route trusting one issuer.
func jwtRouteYAMLFor(name, prefix, issuer string) string {
	return "  - name: " + name + "\n" +
		"    match: {path: " + prefix + ", path_type: prefix}\n" +
		"    upstream: bench\n" +
		"    auth: {jwt: {issuers: [" + issuer + "]}}\n"
}

// firstLine returns the first line of a token file (for the probe).
func firstLine(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	if sc.Scan() {
		return sc.Text(), nil
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("%s is empty", path)
}

// prepareJWTReuse: 1,000 distinct tokens, cycled by every wrk thread.
func prepareJWTReuse(env *runEnv) (*plan, error) {
	bi, err := env.issuer()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(env.tmp, "tokens-reuse.txt")
	if err := bi.writeTokens(path, 1000); err != nil {
		return nil, fmt.Errorf("jwt-reuse tokens: %w", err)
	}
	tok, err := firstLine(path)
	if err != nil {
		return nil, err
	}
	threads := strconv.Itoa(env.threads())
	return &plan{
		routeYAML:  jwtRouteYAML("bench-jwt-reuse", "/jwt-reuse"),
		issuerYAML: bi.issuerYAML(),
		routeName:  "bench-jwt-reuse",
		path:       "/jwt-reuse/hello",
		luaFile:    "tokens.lua",
		scriptArgs: func(string, int) []string { return []string{path, "reuse", threads} },
		probe:      &probeSpec{method: "GET", header: map[string]string{"Authorization": "Bearer " + tok}, wantBody: true, refusedWithout: "Authorization"},
	}, nil
}

// prepareJWTFresh pre-generates one token file per slot (the warm-up and
// every round): each holds freshMaxRPS × the slot's duration tokens, so no
// round of any system reuses a token. Systems are separate processes with
// separate caches, so the same round's file can serve all of them.
func prepareJWTFresh(env *runEnv) (*plan, error) {
	bi, err := env.issuer()
	if err != nil {
		return nil, err
	}
	rounds, dur, warm := 1, time.Second, time.Duration(0)
	if env.f != nil {
		rounds, dur, warm = max(env.f.rounds, 1), env.f.duration, env.f.warmup
	}
	perRound := int(freshMaxRPS * dur.Seconds() * 1.1)
	perWarm := int(freshMaxRPS * warm.Seconds() * 1.1)
	total := perRound*rounds + perWarm
	if total > maxFreshTokens {
		return nil, usagef("jwt-fresh would need %d tokens (%d/s × duration × rounds), more than %d; use fewer or shorter rounds", total, freshMaxRPS, maxFreshTokens)
	}
	start := time.Now()
	files := make(map[int]string, rounds+1) // round → file; -1 warm-up
	slots := []int{}
	if perWarm > 0 {
		slots = append(slots, -1)
	}
	for r := 1; r <= rounds; r++ {
		slots = append(slots, r)
	}
	for _, r := range slots {
		n := perRound
		if r < 0 {
			n = perWarm
		}
		path := filepath.Join(env.tmp, fmt.Sprintf("tokens-fresh-%d.txt", r))
		if err := bi.writeTokens(path, n); err != nil {
			return nil, fmt.Errorf("jwt-fresh tokens: %w", err)
		}
		files[r] = path
	}
	// The probe uses its own token, so round 1 stays unseen.
	probePath := filepath.Join(env.tmp, "tokens-fresh-probe.txt")
	if err := bi.writeTokens(probePath, 1); err != nil {
		return nil, err
	}
	tok, err := firstLine(probePath)
	if err != nil {
		return nil, err
	}
	if env.progress != nil {
		fmt.Fprintf(env.progress, "harness: jwt-fresh: generated %d ES256 tokens in %v\n", total+1, time.Since(start).Round(time.Millisecond))
	}
	threads := strconv.Itoa(env.threads())
	return &plan{
		routeYAML:  jwtRouteYAML("bench-jwt-fresh", "/jwt-fresh"),
		issuerYAML: bi.issuerYAML(),
		boundJWKS:  bi.jwksPath,
		routeName:  "bench-jwt-fresh",
		path:       "/jwt-fresh/hello",
		luaFile:    "tokens.lua",
		scriptArgs: func(_ string, round int) []string {
			f, ok := files[round]
			if !ok { // profiling run (round 0): any unused-by-this-process file
				f = files[1]
			}
			return []string{f, "fresh", threads}
		},
		checkExtra: func(system string, extra json.RawMessage) error {
			if system == floorName || system == floorVerifyName {
				// Neither floor caches, so a reused token cannot
				// flatter them; only Sekisho's rounds must be fresh.
				return nil
			}
			var e struct {
				Wraps *int64 `json:"wraps"`
			}
			if err := json.Unmarshal(extra, &e); err != nil || e.Wraps == nil {
				return fmt.Errorf("tokens.lua did not report wraps (%q)", extra)
			}
			if *e.Wraps > 0 {
				return fmt.Errorf("tokens ran out and wrapped %d time(s): the round was faster than %d req/s, so not every token was fresh", *e.Wraps, freshMaxRPS)
			}
			return nil
		},
		probe: &probeSpec{method: "GET", header: map[string]string{"Authorization": "Bearer " + tok}, wantBody: true, refusedWithout: "Authorization"},
	}, nil
}

// threads is the wrk thread count (1 when the harness flags are absent, as
// in tests).
func (env *runEnv) threads() int {
	if env.f == nil {
		return 1
	}
	return env.f.threads
}
