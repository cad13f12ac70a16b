package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/big"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The jwt-fresh target is a throughput ratio to the floor, and every request
// pays one ES256 verification the floor does not. A proxy that cost exactly
// the floor plus one raw verification would reach floor ÷ (floor + verify):
// the crypto bound. The harness measures the raw verification on the server
// CPU in the same run (SHA-256 of the signing input + crypto/ecdsa.Verify,
// the "raw" of internal/authn's BenchmarkRatio) and prints the bound and
// Sekisho's cost beyond it, so a ratio below the target can be read against
// what the machine allows.

// cmdVerifyCost is the "verifycost" sub-command: n raw ES256 verifications of
// a JWS-sized signing input, printing {"cpu_us_per_verify": …} measured from
// the process's own user+system CPU time.
func cmdVerifyCost(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("verifycost", flag.ContinueOnError)
	n := fs.Int("n", 3000, "verifications (1–1,000,000)")
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if *n < 1 || *n > 1_000_000 {
		return usagef("-n %d out of range 1–1,000,000", *n)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	input := []byte(strings.Repeat("eyJhbGciOiJFUzI1NiJ9", 20)) // ~400 bytes, like a token's header.payload
	h := sha256.Sum256(input)
	r, s, err := ecdsa.Sign(rand.Reader, key, h[:])
	if err != nil {
		return err
	}
	var r2, s2 big.Int
	r2.Set(r)
	s2.Set(s)
	before, err := selfCPU()
	if err != nil {
		return err
	}
	for range *n {
		sum := sha256.Sum256(input)
		if !ecdsa.Verify(&key.PublicKey, sum[:], &r2, &s2) {
			return fmt.Errorf("verifycost: signature did not verify")
		}
	}
	after, err := selfCPU()
	if err != nil {
		return err
	}
	return json.NewEncoder(out).Encode(map[string]float64{"cpu_us_per_verify": float64((after - before).Microseconds()) / float64(*n)})
}

func selfCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// measureVerifyCost runs "verifycost" pinned like the server under test.
func measureVerifyCost(ctx context.Context, self string, cpu int) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	argv := []string{self, "verifycost", "-n", "3000"}
	if cpu >= 0 {
		argv = append([]string{"taskset", "-c", strconv.Itoa(cpu)}, argv...)
	}
	b, err := exec.CommandContext(ctx, argv[0], argv[1:]...).Output()
	if err != nil {
		return 0, fmt.Errorf("verifycost: %w", err)
	}
	var v struct {
		US float64 `json:"cpu_us_per_verify"`
	}
	if err := json.Unmarshal(b, &v); err != nil || v.US <= 0 {
		return 0, fmt.Errorf("verifycost: unexpected output %q", b)
	}
	return v.US, nil
}

// cryptoBound is what report prints for a workload whose requests each pay
// one ES256 verification.
type cryptoBound struct {
	VerifyCPUus float64 `json:"raw_es256_verify_cpu_us"`
	FloorCPUus  float64 `json:"floor_cpu_us_per_req"`
	Bound       float64 `json:"bound_ratio"`       // floor ÷ (floor + verify)
	BeyondUS    float64 `json:"sekisho_beyond_us"` // Sekisho CPU/req − floor − verify
	SekishoCPU  float64 `json:"sekisho_cpu_us_per_req"`
	Explanation string  `json:"explanation,omitempty"`
}

func newCryptoBound(verifyUS float64, systems []systemSummary) *cryptoBound {
	var floor, sek float64
	for _, s := range systems {
		switch s.System {
		case "floor":
			floor = s.ServerCPUus
		case "sekisho":
			sek = s.ServerCPUus
		}
	}
	if floor <= 0 || sek <= 0 || verifyUS <= 0 {
		return nil
	}
	return &cryptoBound{VerifyCPUus: verifyUS, FloorCPUus: floor, SekishoCPU: sek,
		Bound: floor / (floor + verifyUS), BeyondUS: sek - floor - verifyUS}
}
