package authn

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"

	json "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// This file parses a compact JWS (RFC 7515 §7.1) strictly, without any
// cryptography: exactly three segments of unpadded base64url (RFC 4648 §5,
// canonical: no padding, no '+' '/', no whitespace, zero trailing bits), a
// header and a payload that are JSON objects with unique member names and
// valid UTF-8. Parsing is separate from verification so the payload's iss can
// select the issuer whose keys verify the signature.

// b64 is the only accepted base64 flavour. Strict rejects non-zero trailing
// bits, so every accepted segment has exactly one encoding (no malleability).
var b64url = base64.RawURLEncoding.Strict()

// b64dec decodes one segment strictly (see hasLineBreak).
func b64dec(s string) ([]byte, error) {
	if hasLineBreak(s) {
		return nil, errors.New("invalid base64url character")
	}
	return b64url.DecodeString(s)
}

// hasLineBreak reports '\r' or '\n' in s. The strict unpadded base64url
// decoder refuses every byte outside the URL alphabet ('=', '+', '/',
// spaces, '.') except these two, which encoding/base64 silently skips; they
// must be refused separately or "ab\ncd" would decode like "abcd".
func hasLineBreak(s string) bool {
	return strings.IndexByte(s, '\n') >= 0 || strings.IndexByte(s, '\r') >= 0
}

// jwsHeader holds the protected header members this package acts on. Members
// that must never be honoured are captured raw so that their mere presence,
// even as null, is visible.
type jwsHeader struct {
	Alg  string         `json:"alg"`
	Kid  string         `json:"kid"`
	Typ  string         `json:"typ"`
	Cty  string         `json:"cty"`
	Crit jsontext.Value `json:"crit"`
	JWK  jsontext.Value `json:"jwk"`
	JKU  jsontext.Value `json:"jku"`
	X5U  jsontext.Value `json:"x5u"`
	X5C  jsontext.Value `json:"x5c"`
}

// embeddedKeyHeader names the first header member that tries to supply or
// point to a verification key, or "" if there is none.
func (h *jwsHeader) embeddedKeyHeader() string {
	switch {
	case h.JWK != nil:
		return "jwk"
	case h.JKU != nil:
		return "jku"
	case h.X5U != nil:
		return "x5u"
	case h.X5C != nil:
		return "x5c"
	}
	return ""
}

// parsedJWS is a syntactically valid, not yet verified, compact JWS.
type parsedJWS struct {
	header       jwsHeader
	claims       map[string]any
	raw          []byte // the whole token, copied once so no later step converts it again
	signingInput []byte // raw[:second dot]: ASCII(BASE64URL(header) || '.' || BASE64URL(payload))
	signature    []byte
}

// maxKidLen bounds the kid header: it is only ever a map key, but an
// unbounded attacker string has no business in logs or lookups.
const maxKidLen = 256

// parseJWS parses token as a compact JWS. It never looks at keys or
// signatures beyond decoding them. Every failure is ReasonMalformed.
func parseJWS(token string) (*parsedJWS, error) {
	d1 := strings.IndexByte(token, '.')
	if d1 < 0 {
		return nil, errors.New("not a compact JWS: no '.'")
	}
	d2 := d1 + 1 + strings.IndexByte(token[d1+1:], '.')
	if d2 == d1 {
		return nil, errors.New("not a compact JWS: two segments")
	}
	if strings.IndexByte(token[d2+1:], '.') >= 0 {
		return nil, errors.New("not a compact JWS: more than three segments (JWE is not accepted)")
	}
	hSeg, pSeg, sSeg := token[:d1], token[d1+1:d2], token[d2+1:]
	if len(hSeg) == 0 || len(pSeg) == 0 {
		return nil, errors.New("empty header or payload segment")
	}
	if len(sSeg) == 0 {
		return nil, errors.New("empty signature segment (unsecured JWS)")
	}
	if hasLineBreak(token) {
		return nil, errors.New("invalid base64url character")
	}

	// One copy of the token and one allocation for the decoded segments.
	raw := []byte(token)
	hn, pn, sn := b64url.DecodedLen(len(hSeg)), b64url.DecodedLen(len(pSeg)), b64url.DecodedLen(len(sSeg))
	buf := make([]byte, hn+pn+sn)
	hb, err := decodeInto(buf[:hn], raw[:d1])
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	pb, err := decodeInto(buf[hn:hn+pn], raw[d1+1:d2])
	if err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	sb, err := decodeInto(buf[hn+pn:], raw[d2+1:])
	if err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}

	p := &parsedJWS{raw: raw, signingInput: raw[:d2:d2], signature: sb}
	if err := unmarshalStrict(hb, &p.header); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	if p.header.Alg == "" {
		return nil, errors.New("header: alg missing")
	}
	if len(p.header.Kid) > maxKidLen {
		return nil, errors.New("header: kid too long")
	}
	if p.claims, err = decodeClaims(pb); err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	return p, nil
}

func decodeInto(dst, seg []byte) ([]byte, error) {
	n, err := b64url.Decode(dst, seg)
	if err != nil {
		return nil, errors.New("invalid base64url")
	}
	return dst[:n], nil
}

// unmarshalStrict decodes JSON per RFC 7493 (I-JSON): duplicate member names
// and invalid UTF-8 are errors (encoding/json v1 would silently keep the last
// duplicate, the root of "parser differential" attacks), member names match
// case-sensitively, and the input must be a single value.
func unmarshalStrict(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		// The decoder's message may quote input; keep only its class.
		if errors.Is(err, jsontext.ErrDuplicateName) {
			return errors.New("duplicate JSON member name")
		}
		return errors.New("invalid JSON or wrong member type")
	}
	return nil
}

// claimsDecoder is a reusable strict JSON tokenizer (pooled: a decoder is
// a few KiB).
type claimsDecoder struct {
	r   bytes.Reader
	dec *jsontext.Decoder
}

// claimsDecoders pools decoders; a sync.Pool holds no shared state.
var claimsDecoders = sync.Pool{New: func() any {
	d := &claimsDecoder{}
	d.dec = jsontext.NewDecoder(&d.r)
	return d
}}

// maxClaimsDepth bounds nesting in the payload (real tokens nest 3–4 deep).
const maxClaimsDepth = 32

// decodeClaims decodes a JWT payload into the same values json.Unmarshal
// into map[string]any produces (objects, []any, string, float64, bool,
// nil). All syntax checking stays with jsontext, with its defaults: strict
// RFC 8259 syntax, valid UTF-8, and duplicate member names rejected, escaped
// spellings included. Building the map directly is ~30% cheaper than
// reflection-based unmarshalling, and this is the largest non-crypto cost of
// an uncached verification.
func decodeClaims(b []byte) (map[string]any, error) {
	d := claimsDecoders.Get().(*claimsDecoder)
	d.r.Reset(b)
	d.dec.Reset(&d.r)
	defer func() {
		d.r.Reset(nil)
		d.dec.Reset(&d.r)
		claimsDecoders.Put(d)
	}()
	if d.dec.PeekKind() != '{' {
		return nil, errors.New("not a JSON object")
	}
	v, err := readJSONValue(d.dec, 0)
	if err != nil {
		return nil, claimsError(err)
	}
	if _, err := d.dec.ReadToken(); err == nil {
		return nil, errors.New("data after the JSON object")
	} else if !errors.Is(err, io.EOF) {
		return nil, claimsError(err)
	}
	return v.(map[string]any), nil
}

func claimsError(err error) error {
	if errors.Is(err, jsontext.ErrDuplicateName) {
		return errors.New("duplicate JSON member name")
	}
	return errors.New("invalid JSON")
}

func readJSONValue(dec *jsontext.Decoder, depth int) (any, error) {
	if depth > maxClaimsDepth {
		return nil, errors.New("JSON nested too deeply")
	}
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, err
	}
	switch tok.Kind() {
	case '{':
		hint := 0
		if depth == 0 {
			hint = 16 // a typical access token has 8–16 claims: one allocation
		}
		m := make(map[string]any, hint)
		for dec.PeekKind() != '}' {
			name, err := dec.ReadValue() // a name; valid until the next read
			if err != nil {
				return nil, err
			}
			key, err := memberName(name)
			if err != nil {
				return nil, err
			}
			v, err := readJSONValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			m[key] = v
		}
		_, err := dec.ReadToken()
		return m, err
	case '[':
		a := []any{}
		for dec.PeekKind() != ']' {
			v, err := readJSONValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		_, err := dec.ReadToken()
		return a, err
	case '"':
		return tok.String(), nil
	case '0':
		f := tok.Float()
		if math.Abs(f) == math.MaxFloat64 {
			// Token.Float saturates on overflow; tell a saturated value
			// from a literal MaxFloat64.
			if _, err := strconv.ParseFloat(tok.String(), 64); err != nil {
				return nil, errors.New("number out of range")
			}
		}
		return f, nil
	case 't':
		return true, nil
	case 'f':
		return false, nil
	case 'n':
		return nil, nil
	}
	return nil, errors.New("unexpected JSON token")
}

// memberName unquotes an object member name already validated by the
// decoder. Registered claim names are returned as constants, saving an
// allocation each on the hot path.
func memberName(raw jsontext.Value) (string, error) {
	if len(raw) >= 2 && bytes.IndexByte(raw, '\\') < 0 {
		b := raw[1 : len(raw)-1]
		switch string(b) { // no allocation: compiler-optimized comparison
		case "iss":
			return "iss", nil
		case "sub":
			return "sub", nil
		case "aud":
			return "aud", nil
		case "exp":
			return "exp", nil
		case "nbf":
			return "nbf", nil
		case "iat":
			return "iat", nil
		case "jti":
			return "jti", nil
		case "scope":
			return "scope", nil
		case "scp":
			return "scp", nil
		case "client_id":
			return "client_id", nil
		case "azp":
			return "azp", nil
		case "typ":
			return "typ", nil
		case "auth_time":
			return "auth_time", nil
		case "acr":
			return "acr", nil
		case "amr":
			return "amr", nil
		case "sid":
			return "sid", nil
		}
		return string(b), nil
	}
	u, err := jsontext.AppendUnquote(nil, raw)
	if err != nil {
		return "", err
	}
	return string(u), nil
}
