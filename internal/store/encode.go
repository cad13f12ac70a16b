package store

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"
)

// Input bounds enforced identically by every backend (ErrInvalid when exceeded).
const (
	maxIDLen      = 255     // IDs, kid, request IDs, subjects, scopes of JTIs
	maxSigLen     = 512     // fosite signatures, JTIs
	maxTextLen    = 8 << 10 // names, e-mails, password hashes, URIs
	maxListLen    = 256     // entries per []string field
	maxBlobLen    = 1 << 20 // Data, JWKS, key blobs
	gcChunk       = 5000    // rows deleted per GC statement
	maxGrantKinds = 5
)

var grantKinds = [maxGrantKinds]string{KindCode, KindPKCE, KindOIDC, KindAccess, KindRefresh}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// checkText rejects strings that are too long, not UTF-8 or contain NUL:
// PostgreSQL refuses the latter two, so SQLite must refuse them as well for
// the backends to behave the same.
func checkText(field, v string, max int, required bool) error {
	if required && v == "" {
		return invalid("%s is empty", field)
	}
	if len(v) > max {
		return invalid("%s longer than %d bytes", field, max)
	}
	if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
		return invalid("%s is not valid UTF-8 text", field)
	}
	return nil
}

func checkID(field, v string) error { return checkText(field, v, maxIDLen, true) }

func checkList(field string, v []string) error {
	if len(v) > maxListLen {
		return invalid("%s has more than %d entries", field, maxListLen)
	}
	for _, s := range v {
		if err := checkText(field, s, maxTextLen, false); err != nil {
			return err
		}
	}
	return nil
}

func checkBlob(field string, v []byte) error {
	if len(v) > maxBlobLen {
		return invalid("%s larger than %d bytes", field, maxBlobLen)
	}
	return nil
}

func checkKind(kind string) error {
	for _, k := range grantKinds {
		if k == kind {
			return nil
		}
	}
	return invalid("unknown grant session kind %q", truncate(kind, 32))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// encList encodes a string list as JSON text; nil and empty both become "[]".
func encList(v []string) string {
	if len(v) == 0 {
		return "[]"
	}
	b, err := json.Marshal(v)
	if err != nil { // cannot happen for []string
		panic(err)
	}
	return string(b)
}

// decList decodes JSON text into a non-nil slice.
func decList(field, s string) ([]string, error) {
	out := []string{}
	if s == "" {
		return out, nil
	}
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return nil, fmt.Errorf("store: decode %s: %w", field, err)
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

// nilIfEmpty normalizes empty byte slices to nil.
func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// utcMicro is the canonical in-memory form of a stored time.
func utcMicro(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

// timeDest scans a stored time (SQLite: INTEGER unix microseconds;
// PostgreSQL: timestamptz) into *t; NULL becomes the zero time.
type timeDest struct{ t *time.Time }

func scanTime(t *time.Time) *timeDest { return &timeDest{t} }

// Scan implements sql.Scanner.
func (d *timeDest) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*d.t = time.Time{}
	case int64:
		*d.t = time.UnixMicro(v).UTC()
	case time.Time:
		*d.t = v.UTC()
	default:
		return fmt.Errorf("store: cannot scan %T into a time", src)
	}
	return nil
}

// ScanTimestamptz implements pgtype.TimestamptzScanner (pgx fast path).
func (d *timeDest) ScanTimestamptz(v pgtype.Timestamptz) error {
	if !v.Valid {
		*d.t = time.Time{}
		return nil
	}
	if v.InfinityModifier != pgtype.Finite {
		return fmt.Errorf("store: infinite timestamp not supported")
	}
	*d.t = v.Time.UTC()
	return nil
}
