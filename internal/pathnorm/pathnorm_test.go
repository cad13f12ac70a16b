package pathnorm

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/sekisho/sekisho/internal/testutil"
)

// issuePaths are the paths from issue 2 point 6 (plus NUL and backslash
// variants). Each one either becomes "/api/x", and therefore hits the /api
// route and its auth, or is rejected; none can reach /api any other way.
var issuePaths = []struct {
	in      string
	want    string
	wantErr error
}{
	{"/public/../api/x", "/api/x", nil},
	{"/public/%2e%2e/api/x", "", ErrEncodedDot},
	{"/public/%2E%2E%2Fapi/x", "", ErrEncodedSlash},
	{"//api/x", "/api/x", nil},
	{"/api%2fx", "", ErrEncodedSlash},
	{"/api%2Fx", "", ErrEncodedSlash},
	{"/public/..;/api/x", "", ErrTraversal},
	{"/./api/x", "/api/x", nil},
	{"/api/x\x00", "", ErrNUL},
	{"/api/x%00", "", ErrNUL},
	{"/public\\..\\api/x", "", ErrBackslash},
	{"/public%5c..%5capi/x", "", ErrEncodedBackslash},
	{"/public%5C..%5Capi/x", "", ErrEncodedBackslash},
}

func TestIssuePaths(t *testing.T) {
	for _, tc := range issuePaths {
		got, err := Normalize(tc.in)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("Normalize(%q) = %q, %v; want error %v", tc.in, got, err, tc.wantErr)
			}
			if got != "" {
				t.Errorf("Normalize(%q) returned %q alongside an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		// Already canonical.
		{"/", "/"},
		{"/api", "/api"},
		{"/api/", "/api/"},
		{"/api/x/y", "/api/x/y"},
		{"/a;b=c/d", "/a;b=c/d"},
		{"/~user/a-b_c.d", "/~user/a-b_c.d"},
		{"/a%20b", "/a%20b"},
		{"/a%3Ab", "/a%3Ab"},
		{"/a%25", "/a%25"},
		{"/.well-known/x", "/.well-known/x"},
		{"/a/.b/..c/c..", "/a/.b/..c/c.."},
		{"/;x/", "/;x/"},
		// Merged slashes.
		{"//", "/"},
		{"///a///b///", "/a/b/"},
		{"/a//", "/a/"},
		// Dot segments.
		{"/.", "/"},
		{"/..", "/"},
		{"/../x", "/x"},
		{"/../../../etc/passwd", "/etc/passwd"},
		{"/a/.", "/a/"},
		{"/a/./", "/a/"},
		{"/a/b/..", "/a/"},
		{"/a/b/../", "/a/"},
		{"/a/b/../c", "/a/c"},
		{"/a/b/../../c", "/c"},
		{"/a/b/../../../c", "/c"},
		{"/a/./b/./c", "/a/b/c"},
		{"/a//../b", "/b"},
		// Unreserved characters are decoded, others upper-cased.
		{"/%7Euser", "/~user"},
		{"/%7euser", "/~user"},
		{"/%41%62%2D%2e%5F%30", "/Ab-._0"},
		{"/%2ea", "/.a"},
		{"/a%3ab", "/a%3Ab"},
		{"/a%3Bb", "/a%3Bb"},
		{"/a%ff", "/a%FF"},
		{"/a%c3%a9", "/a%C3%A9"},
		// Raw bytes outside pchar are encoded.
		{"/a b", "/a%20b"},
		{"/é", "/%C3%A9"},
		{"/a\"<>^`{|}[]#?", "/a%22%3C%3E%5E%60%7B%7C%7D%5B%5D%23%3F"},
		{"/\xff", "/%FF"},
	}
	for _, tc := range tests {
		got, err := Normalize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestNormalizeRejects(t *testing.T) {
	tests := []struct {
		in   string
		want error
	}{
		{"", ErrNotAbsolute},
		{"api/x", ErrNotAbsolute},
		{"*", ErrNotAbsolute},
		{"http://h/x", ErrNotAbsolute},
		{"\\api", ErrNotAbsolute},
		{"/a\x00b", ErrNUL},
		{"/a%00", ErrNUL},
		{"/a\x01", ErrControl},
		{"/a\r\nX: y", ErrControl},
		{"/a\t", ErrControl},
		{"/a\x1f", ErrControl},
		{"/a\x7f", ErrControl},
		{"/a%0a", ErrControl},
		{"/a%0D", ErrControl},
		{"/a%1F", ErrControl},
		{"/a%7f", ErrControl},
		{"/a%", ErrBadEscape},
		{"/a%4", ErrBadEscape},
		{"/a%zz", ErrBadEscape},
		{"/a%g0", ErrBadEscape},
		{"/a%0g", ErrBadEscape},
		{"/a%%41", ErrBadEscape},
		{"/a\\b", ErrBackslash},
		{"/a%5cb", ErrEncodedBackslash},
		{"/a%2fb", ErrEncodedSlash},
		{"/a%2F", ErrEncodedSlash},
		{"/%2e", ErrEncodedDot},
		{"/%2E%2E", ErrEncodedDot},
		{"/a/.%2e/b", ErrEncodedDot},
		{"/a/%2e./b", ErrEncodedDot},
		{"/a/%2e%2e%3b/b", ErrEncodedDot},
		{"/a/%2e%2e;x/b", ErrEncodedDot},
		{"/a/..;/b", ErrTraversal},
		{"/a/..;x=1/b", ErrTraversal},
		{"/a/.;/b", ErrTraversal},
		{"/a/..%3B/b", ErrTraversal},
		{"/a/..;", ErrTraversal},
		{"/a/...", ErrAmbiguousDot},
		{"/a/..../b", ErrAmbiguousDot},
		{"/a/.. /b", ErrAmbiguousDot},
		{"/a/. ", ErrAmbiguousDot},
		{"/a/..%20/b", ErrEncodedDot},
		{"/" + strings.Repeat("a", DefaultMaxLen), ErrTooLong},
	}
	for _, tc := range tests {
		got, err := Normalize(tc.in)
		if !errors.Is(err, tc.want) {
			t.Errorf("Normalize(%q) = %q, %v; want %v", tc.in, got, err, tc.want)
			continue
		}
		if got != "" {
			t.Errorf("Normalize(%q) returned %q with an error", tc.in, got)
		}
		if !IsBadRequest(err) {
			t.Errorf("IsBadRequest(%v) = false", err)
		}
	}
}

// The error text must never carry the client's input (log and response
// injection, reflected content).
func TestErrorsDoNotEchoInput(t *testing.T) {
	const marker = "SECRETmarker"
	inputs := []string{
		"/" + marker + "%2f", "/" + marker + "\x00", "/" + marker + "%zz", "/" + marker + "/..;/",
		marker, "/" + marker + "\\", "/" + marker + "/%2e%2e", "/" + strings.Repeat(marker, 1000),
	}
	for _, in := range inputs {
		_, err := Normalize(in)
		if err == nil {
			t.Fatalf("Normalize(%q) accepted", in)
		}
		var pe *Error
		if !errors.As(err, &pe) {
			t.Fatalf("error %T is not *Error", err)
		}
		if Reason(err) != pe.Reason() || Reason(err) == "" {
			t.Errorf("Reason(%v) = %q", err, Reason(err))
		}
		if strings.Contains(err.Error(), marker) || strings.Contains(pe.Reason(), marker) {
			t.Errorf("error for %q echoes the input: %v", in, err)
		}
	}
}

func TestReasonOfForeignError(t *testing.T) {
	if got := Reason(errors.New("secret detail")); got != "invalid request path" {
		t.Errorf("Reason(foreign) = %q", got)
	}
}

func TestMaxLen(t *testing.T) {
	n, err := New(Options{MaxLen: 10})
	if err != nil {
		t.Fatal(err)
	}
	if n.MaxLen() != 10 {
		t.Fatalf("MaxLen() = %d", n.MaxLen())
	}
	if got, err := n.Normalize("/123456789"); err != nil || got != "/123456789" {
		t.Errorf("10 bytes: %q, %v", got, err)
	}
	if _, err := n.Normalize("/1234567890"); !errors.Is(err, ErrTooLong) {
		t.Errorf("11 bytes: %v, want ErrTooLong", err)
	}
	// Within bounds on input, beyond bounds once raw bytes are encoded.
	if _, err := n.Normalize("/\xff\xff\xff\xff"); !errors.Is(err, ErrTooLong) {
		t.Errorf("expanded output: %v, want ErrTooLong", err)
	}
	// Longer input that shrinks is still rejected: the input bound is what
	// limits the work done.
	if _, err := n.Normalize("/a/b/c/../../.."); !errors.Is(err, ErrTooLong) {
		t.Errorf("long input: %v, want ErrTooLong", err)
	}

	d, err := New(Options{})
	if err != nil || d.MaxLen() != DefaultMaxLen {
		t.Fatalf("default: %v, %v", d, err)
	}
	for _, bad := range []int{-1, maxMaxLen + 1} {
		if _, err := New(Options{MaxLen: bad}); err == nil {
			t.Errorf("New(MaxLen: %d) accepted", bad)
		}
	}
}

// Canonical paths come back as the very same string, without allocating.
func TestCleanPathNoAlloc(t *testing.T) {
	clean := []string{"/", "/api/v1/users/12345/orders", "/a/b/", "/a%3Ab/~c", "/x;y=z",
		"/.well-known/openid-configuration", "/a/%3A", "/.x/..y"}
	for _, p := range clean {
		got, err := Normalize(p)
		if err != nil || got != p {
			t.Fatalf("Normalize(%q) = %q, %v", p, got, err)
		}
		if testutil.RaceEnabled {
			continue
		}
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := Normalize(p); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("Normalize(%q): %v allocs, want 0", p, allocs)
		}
	}
}

func TestFastPathCoversCommonPaths(t *testing.T) {
	for _, p := range []string{"/", "/api", "/api/", "/api/v1/users/12345", "/a%3Ab;c=d/e~f", "/x/a.b/c..d",
		"/.well-known/openid-configuration", "/a/...b/..c;d"} {
		if !isCanonical(p) {
			t.Errorf("isCanonical(%q) = false", p)
		}
	}
	for _, p := range []string{"//", "/a//b", "/./a", "/a/..", "/%41", "/a%3a", "/a%2F", "/a%", "/a b", "/é",
		"/.", "/..", "/a/./", "/a/../", "/..;x", "/...", "/.%2e", "/..%20"} {
		if isCanonical(p) {
			t.Errorf("isCanonical(%q) = true", p)
		}
	}
}

func TestIdempotent(t *testing.T) {
	for _, tc := range issuePaths {
		checkInvariants(t, tc.in)
	}
	for _, p := range []string{"/a/b/../c/./d//", "/%7e%41%3a%c3%a9", "/é/ü", "/a b/c?d#e"} {
		checkInvariants(t, p)
	}
}

func TestEscapedPath(t *testing.T) {
	tests := []struct {
		target, want string
	}{
		{"/a%2Fb?x=%2F", "/a%2Fb"},
		{"/public/%2e%2e/api/x", "/public/%2e%2e/api/x"},
		{"//api/x", "//api/x"},
		{"/p", "/p"},
		{"http://example.com/a%2fb?q", "/a%2fb"},
	}
	for _, tc := range tests {
		r := httptest.NewRequest(http.MethodGet, tc.target, nil)
		if got := EscapedPath(r); got != tc.want {
			t.Errorf("EscapedPath(%q) = %q, want %q", tc.target, got, tc.want)
		}
	}
	r := &http.Request{}
	if got := EscapedPath(r); got != "" {
		t.Errorf("EscapedPath(empty request) = %q", got)
	}
}

// checkInvariants asserts the properties every output must have.
func checkInvariants(t *testing.T, in string) {
	t.Helper()
	out, err := Normalize(in)
	// The fast path may only accept what the full rewrite leaves unchanged.
	if len(in) > 0 && in[0] == '/' && len(in) <= DefaultMaxLen && isCanonical(in) {
		if slow, serr := rewrite(in, DefaultMaxLen); serr != nil || slow != in {
			t.Fatalf("fast path accepted %q but rewrite gives %q, %v", in, slow, serr)
		}
	}
	if err != nil {
		if out != "" {
			t.Fatalf("Normalize(%q) returned %q with error %v", in, out, err)
		}
		if !IsBadRequest(err) {
			t.Fatalf("Normalize(%q) error %T is not *Error", in, err)
		}
		return
	}
	if out == "" || out[0] != '/' {
		t.Fatalf("Normalize(%q) = %q: does not start with /", in, out)
	}
	if len(out) > DefaultMaxLen {
		t.Fatalf("Normalize(%q): output %d bytes exceeds bound", in, len(out))
	}
	upper := strings.ToUpper(out)
	for _, bad := range []string{"//", "%2F", "%5C", "\\", "\x00"} {
		if strings.Contains(upper, bad) {
			t.Fatalf("Normalize(%q) = %q contains %q", in, out, bad)
		}
	}
	segs := strings.Split(out[1:], "/")
	for _, s := range segs {
		if s == "." || s == ".." {
			t.Fatalf("Normalize(%q) = %q contains a dot segment", in, out)
		}
	}
	for i := 0; i < len(out); i++ {
		c := out[i]
		if c < 0x21 || c >= 0x7F {
			t.Fatalf("Normalize(%q) = %q contains byte %#x", in, out, c)
		}
		if c == '%' {
			if i+2 >= len(out) || !isUpperHex(out[i+1]) || !isUpperHex(out[i+2]) {
				t.Fatalf("Normalize(%q) = %q has a non-canonical escape at %d", in, out, i)
			}
		}
	}
	again, err := Normalize(out)
	if err != nil || again != out {
		t.Fatalf("not idempotent: Normalize(%q) = %q; Normalize(%q) = %q, %v", in, out, out, again, err)
	}
	// Same meaning: decoded segment by segment, the output is the input
	// with empty segments merged and dot segments resolved.
	want, wantTrailing := referenceSegments(t, in)
	got, gotTrailing := referenceSegments(t, out)
	if !slices.Equal(got, want) || gotTrailing != wantTrailing {
		t.Fatalf("Normalize(%q) = %q changes the meaning: %q/%v, want %q/%v", in, out, got, gotTrailing, want, wantTrailing)
	}
}

// referenceSegments decodes each segment of p with net/url and resolves
// dot segments the RFC 3986 way, merging empty segments. It reports
// whether the result ends with a slash.
func referenceSegments(t *testing.T, p string) ([]string, bool) {
	t.Helper()
	raw := strings.Split(p[1:], "/")
	var out []string
	for _, r := range raw {
		d, err := url.PathUnescape(r)
		if err != nil {
			t.Fatalf("accepted path %q has an undecodable segment %q: %v", p, r, err)
		}
		switch d {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, d)
		}
	}
	last := raw[len(raw)-1]
	trailing := len(out) > 0 && (last == "" || last == "." || last == "..")
	return out, trailing
}

func TestCharacterClasses(t *testing.T) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		wantUnres := ('a' <= b && b <= 'z') || ('A' <= b && b <= 'Z') || ('0' <= b && b <= '9') ||
			b == '-' || b == '.' || b == '_' || b == '~'
		wantPchar := wantUnres || strings.IndexByte("!$&'()*+,;=:@", b) >= 0
		if isUnreserved(b) != wantUnres {
			t.Errorf("isUnreserved(%q) = %v", b, !wantUnres)
		}
		if isPchar(b) != wantPchar {
			t.Errorf("isPchar(%q) = %v", b, !wantPchar)
		}
	}
}

func FuzzNormalize(f *testing.F) {
	for _, tc := range issuePaths {
		f.Add(tc.in)
	}
	for _, s := range []string{"/", "/a/b/../c", "/%7e%2e%2E/x", "/a;b/..;/c", "/é//./..", "/%41%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		checkInvariants(t, in)
	})
}

func BenchmarkNormalizeClean(b *testing.B) {
	p := "/api/v1/tenants/acme/orders/12345/items"
	b.ReportAllocs()
	ct := testutil.StartCPUTimer(b)
	defer ct.Stop()
	for b.Loop() {
		if _, err := Normalize(p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNormalizeDirty(b *testing.B) {
	p := "/api//v1/./tenants/%61cme/orders/x/../12345/items%3a"
	b.ReportAllocs()
	ct := testutil.StartCPUTimer(b)
	defer ct.Stop()
	for b.Loop() {
		if _, err := Normalize(p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNormalizeReject(b *testing.B) {
	p := "/public/%2e%2e/api/x"
	b.ReportAllocs()
	ct := testutil.StartCPUTimer(b)
	defer ct.Stop()
	for b.Loop() {
		if _, err := Normalize(p); err == nil {
			b.Fatal("accepted")
		}
	}
}

// BenchmarkNormalizeWorst measures a maximum-length path that needs the
// full rewrite (escapes, dot segments, merged slashes): the per-request
// bound an attacker can force.
func BenchmarkNormalizeWorst(b *testing.B) {
	unit := "/%61b//./c/../d%3a"
	p := strings.Repeat(unit, DefaultMaxLen/len(unit))
	if _, err := Normalize(p); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	ct := testutil.StartCPUTimer(b)
	defer ct.Stop()
	for b.Loop() {
		if _, err := Normalize(p); err != nil {
			b.Fatal(err)
		}
	}
}
