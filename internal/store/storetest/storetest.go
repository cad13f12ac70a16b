// Package storetest is the conformance suite every store.Store backend must
// pass. Backends call Run from their own tests with a factory for fresh,
// empty databases.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/store"
)

// DB is one empty database created for a single test.
type DB interface {
	// Open opens a Store on this database (running migrations). It may be
	// called more than once; the test closes what it opens.
	Open() (store.Store, error)
	// Exec runs raw SQL against this database, outside any Store (used to
	// tamper with schema_migrations). Placeholders are not used.
	Exec(sql string) error
}

// Run runs the whole suite. newDB must return a fresh, empty database and
// arrange its removal with t.Cleanup.
func Run(t *testing.T, newDB func(t *testing.T) DB) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Clients", testClients},
		{"ClientPaging", testClientPaging},
		{"Users", testUsers},
		{"Consents", testConsents},
		{"LoginSessions", testLoginSessions},
		{"GrantSessions", testGrantSessions},
		{"DeactivateByRequestID", testDeactivateByRequestID},
		{"ListActiveGrantSessions", testListActiveGrantSessions},
		{"GrantSessionConcurrency", testGrantConcurrency},
		{"SigningKeys", testSigningKeys},
		{"JTI", testJTI},
		{"JTIConcurrency", testJTIConcurrency},
		{"APIKeys", testAPIKeys},
		{"InTxCommit", testInTxCommit},
		{"InTxRollback", testInTxRollback},
		{"InTxNested", testInTxNested},
		{"InTxPanic", testInTxPanic},
		{"InTxCancelledContext", testInTxCancelled},
		{"GC", testGC},
		{"Validation", testValidation},
		{"Times", testTimes},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := newDB(t)
			s := open(t, db)
			tc.fn(t, s)
		})
	}
	t.Run("MigrationsIdempotent", func(t *testing.T) { testMigrationsIdempotent(t, newDB(t)) })
	t.Run("MigrationChecksumTamper", func(t *testing.T) { testChecksumTamper(t, newDB(t)) })
	t.Run("MigrationNewerDatabase", func(t *testing.T) { testNewerDatabase(t, newDB(t)) })
	t.Run("ConcurrentOpen", func(t *testing.T) { testConcurrentOpen(t, newDB(t)) })
	t.Run("Closed", func(t *testing.T) { testClosed(t, newDB(t)) })
}

func open(t *testing.T, db DB) store.Store {
	t.Helper()
	s, err := db.Open()
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return s
}

// base is a fixed instant with microsecond precision (what stores keep).
var base = time.Date(2031, 3, 4, 5, 6, 7, 891011000, time.UTC)

func ctx(t *testing.T) context.Context { return t.Context() }

func wantErr(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

func noErr(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func equal(t *testing.T, got, want any, what string) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

func sampleClient(id string) store.Client {
	return store.Client{
		ID:                      id,
		Name:                    "Client " + id,
		SecretHash:              bytes.Repeat([]byte{0xab}, 32),
		RedirectURIs:            []string{"https://app.example/cb", "http://127.0.0.1/cb"},
		PostLogoutRedirectURIs:  []string{},
		GrantTypes:              []string{"authorization_code", "refresh_token"},
		Scopes:                  []string{"openid", "profile"},
		Audiences:               []string{"https://api.example"},
		TokenEndpointAuthMethod: "client_secret_basic",
		JWKS:                    []byte(`{"keys":[]}`),
		AccessTokenTTL:          5 * time.Minute,
		RefreshTokenTTL:         720 * time.Hour,
		CreatedAt:               base,
		UpdatedAt:               base,
	}
}

func sampleUser(id, username string) store.User {
	return store.User{
		ID: id, Username: username, Email: username + "@example.com", Name: "User " + id, Locale: "ja",
		PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
		CreatedAt:    base, UpdatedAt: base, PasswordChangedAt: base.Add(-time.Hour),
	}
}

func testClients(t *testing.T, s store.Store) {
	c := sampleClient("c1")
	noErr(t, s.CreateClient(ctx(t), &c), "create")
	got, err := s.GetClient(ctx(t), "c1")
	noErr(t, err, "get")
	equal(t, *got, c, "round trip")

	dup := sampleClient("c1")
	wantErr(t, s.CreateClient(ctx(t), &dup), store.ErrConflict, "duplicate create")
	_, err = s.GetClient(ctx(t), "nope")
	wantErr(t, err, store.ErrNotFound, "get missing")

	// Public client: nil secret and nil lists come back as nil / empty slices.
	pub := store.Client{ID: "pub", Name: "Public", Public: true, TokenEndpointAuthMethod: "none"}
	noErr(t, s.CreateClient(ctx(t), &pub), "create public")
	if pub.CreatedAt.IsZero() || !pub.UpdatedAt.Equal(pub.CreatedAt) {
		t.Fatalf("CreatedAt/UpdatedAt not defaulted: %v %v", pub.CreatedAt, pub.UpdatedAt)
	}
	gp, err := s.GetClient(ctx(t), "pub")
	noErr(t, err, "get public")
	if gp.SecretHash != nil || gp.JWKS != nil {
		t.Fatalf("public client secret/jwks = %v/%v, want nil", gp.SecretHash, gp.JWKS)
	}
	for name, l := range map[string][]string{"redirect": gp.RedirectURIs, "grants": gp.GrantTypes,
		"scopes": gp.Scopes, "aud": gp.Audiences, "postlogout": gp.PostLogoutRedirectURIs} {
		if l == nil || len(l) != 0 {
			t.Fatalf("%s list = %#v, want empty non-nil", name, l)
		}
	}
	if !gp.Public || gp.CreatedAt.Location() != time.UTC {
		t.Fatalf("public=%v created location=%v", gp.Public, gp.CreatedAt.Location())
	}

	upd := *got
	upd.Name = "Renamed"
	upd.Scopes = []string{"openid"}
	upd.Disabled = true
	upd.SecretHash = nil
	upd.CreatedAt = time.Time{} // ignored by Update
	noErr(t, s.UpdateClient(ctx(t), &upd), "update")
	got2, err := s.GetClient(ctx(t), "c1")
	noErr(t, err, "get after update")
	if got2.Name != "Renamed" || !got2.Disabled || got2.SecretHash != nil || !reflect.DeepEqual(got2.Scopes, []string{"openid"}) {
		t.Fatalf("update not applied: %+v", got2)
	}
	if !got2.CreatedAt.Equal(base) {
		t.Fatalf("CreatedAt changed by update: %v", got2.CreatedAt)
	}
	if !got2.UpdatedAt.Equal(upd.UpdatedAt) || got2.UpdatedAt.Equal(base) {
		t.Fatalf("UpdatedAt = %v, want store clock %v", got2.UpdatedAt, upd.UpdatedAt)
	}
	missing := sampleClient("missing")
	wantErr(t, s.UpdateClient(ctx(t), &missing), store.ErrNotFound, "update missing")

	// Delete cascades to consents.
	u := sampleUser("u1", "alice")
	noErr(t, s.CreateUser(ctx(t), &u), "create user")
	noErr(t, s.SaveConsent(ctx(t), &store.Consent{UserID: "u1", ClientID: "c1", Scopes: []string{"openid"}}), "consent")
	noErr(t, s.DeleteClient(ctx(t), "c1"), "delete")
	_, err = s.GetClient(ctx(t), "c1")
	wantErr(t, err, store.ErrNotFound, "get deleted")
	_, err = s.GetConsent(ctx(t), "u1", "c1")
	wantErr(t, err, store.ErrNotFound, "consent of deleted client")
	wantErr(t, s.DeleteClient(ctx(t), "c1"), store.ErrNotFound, "delete twice")
}

func testClientPaging(t *testing.T, s store.Store) {
	var ids []string
	for i := range 7 {
		c := sampleClient(fmt.Sprintf("client-%02d", 6-i)) // inserted in reverse order
		noErr(t, s.CreateClient(ctx(t), &c), "create")
		ids = append(ids, c.ID)
	}
	sort.Strings(ids)
	var seen []string
	after := ""
	for range 10 {
		page, err := s.ListClients(ctx(t), store.Page{After: after, Limit: 3})
		noErr(t, err, "list")
		if len(page) > 3 {
			t.Fatalf("page of %d > limit 3", len(page))
		}
		if len(page) == 0 {
			break
		}
		for _, c := range page {
			seen = append(seen, c.ID)
		}
		after = page[len(page)-1].ID
	}
	equal(t, seen, ids, "paged ids in order")
	all, err := s.ListClients(ctx(t), store.Page{})
	noErr(t, err, "list all")
	if len(all) != 7 {
		t.Fatalf("list all = %d, want 7", len(all))
	}
}

func testUsers(t *testing.T, s store.Store) {
	u := sampleUser("u1", "Alice")
	noErr(t, s.CreateUser(ctx(t), &u), "create")
	got, err := s.GetUser(ctx(t), "u1")
	noErr(t, err, "get")
	equal(t, *got, u, "round trip")
	for _, name := range []string{"alice", "ALICE", "Alice", "aLiCe"} {
		g, err := s.GetUserByUsername(ctx(t), name)
		noErr(t, err, "get by username "+name)
		if g.ID != "u1" || g.Username != "Alice" {
			t.Fatalf("by username %q: %+v", name, g)
		}
	}
	_, err = s.GetUserByUsername(ctx(t), "bob")
	wantErr(t, err, store.ErrNotFound, "unknown username")
	_, err = s.GetUser(ctx(t), "nope")
	wantErr(t, err, store.ErrNotFound, "unknown id")

	dupName := sampleUser("u2", "ALICE")
	wantErr(t, s.CreateUser(ctx(t), &dupName), store.ErrConflict, "case-insensitive duplicate username")
	dupID := sampleUser("u1", "other")
	wantErr(t, s.CreateUser(ctx(t), &dupID), store.ErrConflict, "duplicate id")

	bob := store.User{ID: "u2", Username: "bob", PasswordHash: "x"}
	noErr(t, s.CreateUser(ctx(t), &bob), "create bob")
	gb, err := s.GetUser(ctx(t), "u2")
	noErr(t, err, "get bob")
	if !gb.PasswordChangedAt.IsZero() || gb.CreatedAt.IsZero() {
		t.Fatalf("bob times: %+v", gb)
	}

	gb.Username = "aLICE"
	wantErr(t, s.UpdateUser(ctx(t), gb), store.ErrConflict, "rename onto taken username")
	gb.Username = "Bobby"
	gb.Disabled = true
	gb.PasswordChangedAt = base
	noErr(t, s.UpdateUser(ctx(t), gb), "rename")
	g2, err := s.GetUserByUsername(ctx(t), "BOBBY")
	noErr(t, err, "by new name")
	if !g2.Disabled || !g2.PasswordChangedAt.Equal(base) {
		t.Fatalf("update not applied: %+v", g2)
	}
	_, err = s.GetUserByUsername(ctx(t), "bob")
	wantErr(t, err, store.ErrNotFound, "old username released")
	ghost := sampleUser("ghost", "ghost")
	wantErr(t, s.UpdateUser(ctx(t), &ghost), store.ErrNotFound, "update missing")

	list, err := s.ListUsers(ctx(t), store.Page{})
	noErr(t, err, "list")
	if len(list) != 2 || list[0].ID != "u1" || list[1].ID != "u2" {
		t.Fatalf("list = %+v", list)
	}
	list, err = s.ListUsers(ctx(t), store.Page{After: "u1", Limit: 1})
	noErr(t, err, "list page 2")
	if len(list) != 1 || list[0].ID != "u2" {
		t.Fatalf("page 2 = %+v", list)
	}
}

func testConsents(t *testing.T, s store.Store) {
	u := sampleUser("u1", "alice")
	noErr(t, s.CreateUser(ctx(t), &u), "user")
	for _, id := range []string{"cb", "ca"} {
		c := sampleClient(id)
		noErr(t, s.CreateClient(ctx(t), &c), "client")
	}
	wantErr(t, s.SaveConsent(ctx(t), &store.Consent{UserID: "nobody", ClientID: "ca"}), store.ErrNotFound, "unknown user")
	wantErr(t, s.SaveConsent(ctx(t), &store.Consent{UserID: "u1", ClientID: "nothing"}), store.ErrNotFound, "unknown client")

	c := store.Consent{UserID: "u1", ClientID: "cb", Scopes: []string{"openid", "email"}, CreatedAt: base}
	noErr(t, s.SaveConsent(ctx(t), &c), "save")
	got, err := s.GetConsent(ctx(t), "u1", "cb")
	noErr(t, err, "get")
	equal(t, *got, c, "round trip (no expiry)")

	c2 := store.Consent{UserID: "u1", ClientID: "cb", Scopes: []string{"openid"}, CreatedAt: base.Add(time.Hour),
		ExpiresAt: base.Add(48 * time.Hour)}
	noErr(t, s.SaveConsent(ctx(t), &c2), "upsert")
	got, err = s.GetConsent(ctx(t), "u1", "cb")
	noErr(t, err, "get after upsert")
	equal(t, *got, c2, "upsert replaced")

	noErr(t, s.SaveConsent(ctx(t), &store.Consent{UserID: "u1", ClientID: "ca"}), "second client")
	list, err := s.ListConsents(ctx(t), "u1")
	noErr(t, err, "list")
	if len(list) != 2 || list[0].ClientID != "ca" || list[1].ClientID != "cb" || list[0].Scopes == nil {
		t.Fatalf("list = %+v", list)
	}
	none, err := s.ListConsents(ctx(t), "nobody")
	noErr(t, err, "list none")
	if none == nil || len(none) != 0 {
		t.Fatalf("empty list = %#v", none)
	}
	noErr(t, s.DeleteConsent(ctx(t), "u1", "cb"), "delete")
	_, err = s.GetConsent(ctx(t), "u1", "cb")
	wantErr(t, err, store.ErrNotFound, "get deleted")
	wantErr(t, s.DeleteConsent(ctx(t), "u1", "cb"), store.ErrNotFound, "delete twice")
}

func testLoginSessions(t *testing.T, s store.Store) {
	u := sampleUser("u1", "alice")
	noErr(t, s.CreateUser(ctx(t), &u), "user")
	h := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	ls := store.LoginSession{IDHash: h(1), UserID: "u1", AuthTime: base, CreatedAt: base, ExpiresAt: base.Add(time.Hour)}
	noErr(t, s.CreateLoginSession(ctx(t), &ls), "create")
	got, err := s.GetLoginSession(ctx(t), h(1))
	noErr(t, err, "get")
	equal(t, *got, ls, "round trip")
	dup := ls
	wantErr(t, s.CreateLoginSession(ctx(t), &dup), store.ErrConflict, "duplicate")
	wantErr(t, s.CreateLoginSession(ctx(t), &store.LoginSession{IDHash: h(9), UserID: "ghost", ExpiresAt: base}),
		store.ErrNotFound, "unknown user")
	_, err = s.GetLoginSession(ctx(t), h(2))
	wantErr(t, err, store.ErrNotFound, "get missing")

	for _, b := range []byte{2, 3} {
		noErr(t, s.CreateLoginSession(ctx(t), &store.LoginSession{IDHash: h(b), UserID: "u1", AuthTime: base,
			ExpiresAt: base.Add(time.Hour)}), "create more")
	}
	noErr(t, s.DeleteLoginSession(ctx(t), h(1)), "delete")
	wantErr(t, s.DeleteLoginSession(ctx(t), h(1)), store.ErrNotFound, "delete twice")
	n, err := s.DeleteLoginSessionsForUser(ctx(t), "u1")
	noErr(t, err, "delete for user")
	if n != 2 {
		t.Fatalf("deleted %d sessions, want 2", n)
	}
	_, err = s.GetLoginSession(ctx(t), h(3))
	wantErr(t, err, store.ErrNotFound, "after delete for user")
}

func grant(kind, sig, req string) store.GrantSession {
	return store.GrantSession{
		Kind: kind, Signature: sig, RequestID: req, ClientID: "client-a", Subject: "user-1", Active: true,
		Data: []byte(`{"form":{}}`), JTI: "jti-" + sig, RequestedAt: base, ExpiresAt: base.Add(10 * time.Minute),
	}
}

func testGrantSessions(t *testing.T, s store.Store) {
	g := grant(store.KindAccess, "sig1", "req1")
	noErr(t, s.CreateGrantSession(ctx(t), &g), "create")
	got, err := s.GetGrantSession(ctx(t), store.KindAccess, "sig1")
	noErr(t, err, "get")
	equal(t, *got, g, "round trip")
	dup := g
	wantErr(t, s.CreateGrantSession(ctx(t), &dup), store.ErrConflict, "duplicate")

	// Same signature under another kind is a different row.
	other := grant(store.KindRefresh, "sig1", "req1")
	noErr(t, s.CreateGrantSession(ctx(t), &other), "same sig other kind")
	_, err = s.GetGrantSession(ctx(t), store.KindCode, "sig1")
	wantErr(t, err, store.ErrNotFound, "get under wrong kind")

	noErr(t, s.DeactivateGrantSession(ctx(t), store.KindAccess, "sig1"), "deactivate")
	got, err = s.GetGrantSession(ctx(t), store.KindAccess, "sig1")
	noErr(t, err, "get inactive")
	if got.Active {
		t.Fatal("still active after deactivate")
	}
	noErr(t, s.DeactivateGrantSession(ctx(t), store.KindAccess, "sig1"), "deactivate twice")
	wantErr(t, s.DeactivateGrantSession(ctx(t), store.KindAccess, "nope"), store.ErrNotFound, "deactivate missing")

	noErr(t, s.DeleteGrantSession(ctx(t), store.KindAccess, "sig1"), "delete")
	_, err = s.GetGrantSession(ctx(t), store.KindAccess, "sig1")
	wantErr(t, err, store.ErrNotFound, "get deleted")
	wantErr(t, s.DeleteGrantSession(ctx(t), store.KindAccess, "sig1"), store.ErrNotFound, "delete twice")
	if _, err := s.GetGrantSession(ctx(t), store.KindRefresh, "sig1"); err != nil {
		t.Fatalf("other kind removed too: %v", err)
	}

	for _, sig := range []string{"r1", "r2", "r3"} {
		g := grant(store.KindCode, sig, "req-del")
		noErr(t, s.CreateGrantSession(ctx(t), &g), "create for delete")
	}
	n, err := s.DeleteGrantSessionsByRequestID(ctx(t), store.KindCode, "req-del")
	noErr(t, err, "delete by request")
	if n != 3 {
		t.Fatalf("deleted %d, want 3", n)
	}
	n, err = s.DeleteGrantSessionsByRequestID(ctx(t), store.KindCode, "req-del")
	noErr(t, err, "delete by request again")
	if n != 0 {
		t.Fatalf("deleted %d on second call, want 0", n)
	}
	// Minimal record: zero times and empty data round-trip as zero/nil.
	min := store.GrantSession{Kind: store.KindPKCE, Signature: "min"}
	noErr(t, s.CreateGrantSession(ctx(t), &min), "create minimal")
	gm, err := s.GetGrantSession(ctx(t), store.KindPKCE, "min")
	noErr(t, err, "get minimal")
	equal(t, *gm, min, "minimal round trip")
}

func testDeactivateByRequestID(t *testing.T, s store.Store) {
	for _, g := range []store.GrantSession{
		grant(store.KindAccess, "a1", "fam"),
		grant(store.KindAccess, "a2", "fam"),
		grant(store.KindAccess, "a3", "fam"), // deactivated below: must not be returned
		grant(store.KindAccess, "b1", "other"),
		grant(store.KindRefresh, "r1", "fam"), // other kind: untouched
	} {
		noErr(t, s.CreateGrantSession(ctx(t), &g), "create")
	}
	noErr(t, s.DeactivateGrantSession(ctx(t), store.KindAccess, "a3"), "pre-deactivate")
	got, err := s.DeactivateGrantSessionsByRequestID(ctx(t), store.KindAccess, "fam")
	noErr(t, err, "deactivate family")
	var sigs, jtis []string
	for _, g := range got {
		if g.Active {
			t.Fatalf("returned session %s still marked active", g.Signature)
		}
		sigs = append(sigs, g.Signature)
		jtis = append(jtis, g.JTI)
	}
	sort.Strings(sigs)
	sort.Strings(jtis)
	equal(t, sigs, []string{"a1", "a2"}, "deactivated signatures")
	equal(t, jtis, []string{"jti-a1", "jti-a2"}, "deactivated JTIs")
	for sig, want := range map[string]bool{"a1": false, "a2": false, "a3": false, "b1": true} {
		g, err := s.GetGrantSession(ctx(t), store.KindAccess, sig)
		noErr(t, err, "get "+sig)
		if g.Active != want {
			t.Fatalf("%s active = %v, want %v", sig, g.Active, want)
		}
	}
	r, err := s.GetGrantSession(ctx(t), store.KindRefresh, "r1")
	noErr(t, err, "get refresh")
	if !r.Active {
		t.Fatal("refresh session of the same request deactivated by access-kind call")
	}
	again, err := s.DeactivateGrantSessionsByRequestID(ctx(t), store.KindAccess, "fam")
	noErr(t, err, "deactivate again")
	if again == nil || len(again) != 0 {
		t.Fatalf("second deactivation returned %#v, want empty", again)
	}
}

func testListActiveGrantSessions(t *testing.T, s store.Store) {
	mk := func(sig, client, subject string, active bool) {
		g := grant(store.KindRefresh, sig, "req-"+sig)
		g.ClientID, g.Subject, g.Active = client, subject, active
		noErr(t, s.CreateGrantSession(ctx(t), &g), "create "+sig)
	}
	mk("s1", "ca", "alice", true)
	mk("s2", "ca", "bob", true)
	mk("s3", "cb", "alice", true)
	mk("s4", "ca", "alice", false)
	other := grant(store.KindAccess, "s5", "x")
	noErr(t, s.CreateGrantSession(ctx(t), &other), "other kind")

	sigsOf := func(f store.GrantFilter) []string {
		t.Helper()
		l, err := s.ListActiveGrantSessions(ctx(t), f)
		noErr(t, err, "list")
		out := []string{}
		for _, g := range l {
			if !g.Active || g.Kind != f.Kind {
				t.Fatalf("list returned %+v", g)
			}
			out = append(out, g.Signature)
		}
		return out
	}
	equal(t, sigsOf(store.GrantFilter{Kind: store.KindRefresh}), []string{"s1", "s2", "s3"}, "all active")
	equal(t, sigsOf(store.GrantFilter{Kind: store.KindRefresh, ClientID: "ca"}), []string{"s1", "s2"}, "by client")
	equal(t, sigsOf(store.GrantFilter{Kind: store.KindRefresh, Subject: "alice"}), []string{"s1", "s3"}, "by subject")
	equal(t, sigsOf(store.GrantFilter{Kind: store.KindRefresh, ClientID: "ca", Subject: "alice"}), []string{"s1"}, "by both")
	equal(t, sigsOf(store.GrantFilter{Kind: store.KindRefresh, Page: store.Page{After: "s1", Limit: 1}}),
		[]string{"s2"}, "paged")
	_, err := s.ListActiveGrantSessions(ctx(t), store.GrantFilter{})
	wantErr(t, err, store.ErrInvalid, "missing kind")
}

// testGrantConcurrency hammers the group-commit path: distinct rows all
// succeed, and every duplicate pair has exactly one winner even when both
// land in the same batch.
func testGrantConcurrency(t *testing.T, s store.Store) {
	const workers, per = 32, 40
	var wg sync.WaitGroup
	var ok, conflict, other atomic.Int64
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				// Workers w and w^1 write the same signatures.
				g := grant(store.KindAccess, fmt.Sprintf("sig-%d-%d", w/2, i), "r")
				switch err := s.CreateGrantSession(context.Background(), &g); {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, store.ErrConflict):
					conflict.Add(1)
				default:
					other.Add(1)
					t.Errorf("create: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	if ok.Load() != workers/2*per || conflict.Load() != workers/2*per || other.Load() != 0 {
		t.Fatalf("ok=%d conflict=%d other=%d, want %d/%d/0", ok.Load(), conflict.Load(), other.Load(),
			workers/2*per, workers/2*per)
	}
	var total int
	after := ""
	for {
		l, err := s.ListActiveGrantSessions(ctx(t), store.GrantFilter{Kind: store.KindAccess, Page: store.Page{After: after}})
		noErr(t, err, "list")
		if len(l) == 0 {
			break
		}
		total += len(l)
		after = l[len(l)-1].Signature
	}
	if total != workers/2*per {
		t.Fatalf("stored %d rows, want %d", total, workers/2*per)
	}
}

func signingKey(id string, created time.Time) store.SigningKey {
	return store.SigningKey{ID: id, Alg: "ES256", PrivateKeyEnc: []byte("ciphertext-" + id),
		PublicJWK: []byte(`{"kty":"EC"}`), CreatedAt: created, ActivateAt: created.Add(time.Hour),
		RetireAt: created.Add(30 * 24 * time.Hour), ExpireAt: created.Add(31 * 24 * time.Hour)}
}

func testSigningKeys(t *testing.T, s store.Store) {
	k2 := signingKey("k2", base.Add(time.Minute))
	k1 := signingKey("k1", base)
	noErr(t, s.CreateSigningKey(ctx(t), &k2), "create k2")
	noErr(t, s.CreateSigningKey(ctx(t), &k1), "create k1")
	dup := signingKey("k1", base)
	wantErr(t, s.CreateSigningKey(ctx(t), &dup), store.ErrConflict, "duplicate kid")
	list, err := s.ListSigningKeys(ctx(t))
	noErr(t, err, "list")
	equal(t, list, []store.SigningKey{k1, k2}, "list ordered by CreatedAt")

	k1.RetireAt = base.Add(2 * time.Hour)
	k1.ExpireAt = base.Add(3 * time.Hour)
	k1.PrivateKeyEnc = []byte("must not be written")
	noErr(t, s.UpdateSigningKey(ctx(t), &k1), "update")
	list, err = s.ListSigningKeys(ctx(t))
	noErr(t, err, "list after update")
	if !list[0].RetireAt.Equal(k1.RetireAt) || !list[0].ExpireAt.Equal(k1.ExpireAt) {
		t.Fatalf("times not updated: %+v", list[0])
	}
	if string(list[0].PrivateKeyEnc) != "ciphertext-k1" {
		t.Fatalf("update changed key material: %q", list[0].PrivateKeyEnc)
	}
	ghost := signingKey("ghost", base)
	wantErr(t, s.UpdateSigningKey(ctx(t), &ghost), store.ErrNotFound, "update missing")
	bad := signingKey("bad", base)
	bad.ActivateAt = time.Time{}
	wantErr(t, s.CreateSigningKey(ctx(t), &bad), store.ErrInvalid, "missing activation time")
}

func testJTI(t *testing.T, s store.Store) {
	now := time.Now().UTC()
	scope := "client_assertion:c1"
	noErr(t, s.MarkJTI(ctx(t), scope, "j1", now.Add(time.Hour)), "mark")
	wantErr(t, s.MarkJTI(ctx(t), scope, "j1", now.Add(time.Hour)), store.ErrConflict, "replay")
	noErr(t, s.MarkJTI(ctx(t), "client_assertion:c2", "j1", now.Add(time.Hour)), "same jti other scope")

	used, err := s.JTIUsed(ctx(t), scope, "j1", now)
	noErr(t, err, "used")
	if !used {
		t.Fatal("JTIUsed = false for a marked jti")
	}
	used, err = s.JTIUsed(ctx(t), scope, "j1", now.Add(2*time.Hour))
	noErr(t, err, "used later")
	if used {
		t.Fatal("JTIUsed = true after expiry")
	}

	// An expired marker is replaced, not reported as replay.
	noErr(t, s.MarkJTI(ctx(t), scope, "old", now.Add(-time.Second)), "mark already expired")
	noErr(t, s.MarkJTI(ctx(t), scope, "old", now.Add(time.Hour)), "re-mark after expiry")
	wantErr(t, s.MarkJTI(ctx(t), scope, "old", now.Add(time.Hour)), store.ErrConflict, "replay of re-marked")

	list, err := s.ListJTIs(ctx(t), scope, now, store.Page{})
	noErr(t, err, "list")
	var ids []string
	for _, j := range list {
		if j.Scope != scope {
			t.Fatalf("other scope listed: %+v", j)
		}
		ids = append(ids, j.JTI)
	}
	equal(t, ids, []string{"j1", "old"}, "listed jtis")
	wantErr(t, s.MarkJTI(ctx(t), scope, "noexp", time.Time{}), store.ErrInvalid, "zero expiry")
}

// testJTIConcurrency: 50 goroutines mark the same jti at once; exactly one wins.
func testJTIConcurrency(t *testing.T, s store.Store) {
	for round := range 3 {
		const n = 50
		var wg sync.WaitGroup
		var wins, conflicts atomic.Int64
		start := make(chan struct{})
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				err := s.MarkJTI(context.Background(), "race", fmt.Sprintf("jti-%d", round), time.Now().Add(time.Hour))
				switch {
				case err == nil:
					wins.Add(1)
				case errors.Is(err, store.ErrConflict):
					conflicts.Add(1)
				default:
					t.Errorf("mark: %v", err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if wins.Load() != 1 || conflicts.Load() != n-1 {
			t.Fatalf("round %d: %d winners, %d conflicts; want 1 and %d", round, wins.Load(), conflicts.Load(), n-1)
		}
	}
}

func testAPIKeys(t *testing.T, s store.Store) {
	exp := base.Add(24 * time.Hour)
	k := store.APIKey{ID: "k1", Consumer: "partner", Scopes: []string{"read"}, Hash: bytes.Repeat([]byte{7}, 32),
		CreatedAt: base, ExpiresAt: &exp}
	noErr(t, s.CreateAPIKey(ctx(t), &k), "create")
	got, err := s.GetAPIKey(ctx(t), "k1")
	noErr(t, err, "get")
	equal(t, *got, k, "round trip")
	dup := k
	wantErr(t, s.CreateAPIKey(ctx(t), &dup), store.ErrConflict, "duplicate")

	k2 := store.APIKey{ID: "k2", Consumer: "svc", Hash: []byte{1}}
	noErr(t, s.CreateAPIKey(ctx(t), &k2), "create without expiry")
	g2, err := s.GetAPIKey(ctx(t), "k2")
	noErr(t, err, "get k2")
	if g2.ExpiresAt != nil || g2.Scopes == nil || g2.Revoked {
		t.Fatalf("k2 = %+v", g2)
	}
	noErr(t, s.RevokeAPIKey(ctx(t), "k2"), "revoke")
	noErr(t, s.RevokeAPIKey(ctx(t), "k2"), "revoke twice")
	g2, err = s.GetAPIKey(ctx(t), "k2")
	noErr(t, err, "get revoked")
	if !g2.Revoked {
		t.Fatal("not revoked")
	}
	wantErr(t, s.RevokeAPIKey(ctx(t), "nope"), store.ErrNotFound, "revoke missing")
	_, err = s.GetAPIKey(ctx(t), "nope")
	wantErr(t, err, store.ErrNotFound, "get missing")
	list, err := s.ListAPIKeys(ctx(t), store.Page{})
	noErr(t, err, "list")
	if len(list) != 2 || list[0].ID != "k1" || list[1].ID != "k2" {
		t.Fatalf("list = %+v", list)
	}
}

func testInTxCommit(t *testing.T, s store.Store) {
	err := s.InTx(ctx(t), func(tctx context.Context) error {
		c := sampleClient("tx-client")
		if err := s.CreateClient(tctx, &c); err != nil {
			return err
		}
		// Reads inside the transaction see its own writes.
		if _, err := s.GetClient(tctx, "tx-client"); err != nil {
			return fmt.Errorf("read own write: %w", err)
		}
		g := grant(store.KindCode, "tx-sig", "tx-req")
		if err := s.CreateGrantSession(tctx, &g); err != nil {
			return err
		}
		return s.MarkJTI(tctx, "tx", "j", time.Now().Add(time.Hour))
	})
	noErr(t, err, "InTx")
	if _, err := s.GetClient(ctx(t), "tx-client"); err != nil {
		t.Fatalf("committed client missing: %v", err)
	}
	if _, err := s.GetGrantSession(ctx(t), store.KindCode, "tx-sig"); err != nil {
		t.Fatalf("committed grant missing: %v", err)
	}
	wantErr(t, s.MarkJTI(ctx(t), "tx", "j", time.Now().Add(time.Hour)), store.ErrConflict, "committed jti")
}

var errBoom = errors.New("boom")

func assertNothingWritten(t *testing.T, s store.Store, prefix string) {
	t.Helper()
	if _, err := s.GetClient(ctx(t), prefix+"-client"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("client survived rollback: %v", err)
	}
	if _, err := s.GetGrantSession(ctx(t), store.KindCode, prefix+"-sig"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("grant session survived rollback: %v", err)
	}
	if used, err := s.JTIUsed(ctx(t), prefix, "j", time.Now()); err != nil || used {
		t.Fatalf("jti survived rollback: used=%v err=%v", used, err)
	}
	if _, err := s.GetUser(ctx(t), prefix+"-user"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("user survived rollback: %v", err)
	}
}

func writeAll(tctx context.Context, s store.Store, prefix string) error {
	c := sampleClient(prefix + "-client")
	if err := s.CreateClient(tctx, &c); err != nil {
		return err
	}
	g := grant(store.KindCode, prefix+"-sig", "r")
	if err := s.CreateGrantSession(tctx, &g); err != nil {
		return err
	}
	if err := s.MarkJTI(tctx, prefix, "j", time.Now().Add(time.Hour)); err != nil {
		return err
	}
	u := sampleUser(prefix+"-user", prefix+"-name")
	return s.CreateUser(tctx, &u)
}

func testInTxRollback(t *testing.T, s store.Store) {
	err := s.InTx(ctx(t), func(tctx context.Context) error {
		if err := writeAll(tctx, s, "rb"); err != nil {
			return err
		}
		return fmt.Errorf("wrapped: %w", errBoom)
	})
	wantErr(t, err, errBoom, "InTx returns fn's error")
	assertNothingWritten(t, s, "rb")

	// A store error inside fn (conflict) also rolls back earlier writes.
	pre := sampleClient("exists")
	noErr(t, s.CreateClient(ctx(t), &pre), "pre-existing client")
	err = s.InTx(ctx(t), func(tctx context.Context) error {
		if err := writeAll(tctx, s, "rb2"); err != nil {
			return err
		}
		c := sampleClient("exists")
		return s.CreateClient(tctx, &c)
	})
	wantErr(t, err, store.ErrConflict, "conflict inside tx")
	assertNothingWritten(t, s, "rb2")
}

func testInTxNested(t *testing.T, s store.Store) {
	// Inner success, outer failure: everything rolled back.
	err := s.InTx(ctx(t), func(outer context.Context) error {
		if err := s.InTx(outer, func(inner context.Context) error { return writeAll(inner, s, "n1") }); err != nil {
			return err
		}
		if _, err := s.GetClient(outer, "n1-client"); err != nil {
			return fmt.Errorf("outer does not see inner write: %w", err)
		}
		return errBoom
	})
	wantErr(t, err, errBoom, "outer error")
	assertNothingWritten(t, s, "n1")

	// Inner failure propagated by outer: rolled back.
	err = s.InTx(ctx(t), func(outer context.Context) error {
		c := sampleClient("n2-client")
		if err := s.CreateClient(outer, &c); err != nil {
			return err
		}
		return s.InTx(outer, func(inner context.Context) error { return errBoom })
	})
	wantErr(t, err, errBoom, "inner error through outer")
	assertNothingWritten(t, s, "n2")

	// Both succeed: committed once.
	err = s.InTx(ctx(t), func(outer context.Context) error {
		return s.InTx(outer, func(inner context.Context) error { return writeAll(inner, s, "n3") })
	})
	noErr(t, err, "nested success")
	if _, err := s.GetUser(ctx(t), "n3-user"); err != nil {
		t.Fatalf("nested commit missing: %v", err)
	}
}

func testInTxPanic(t *testing.T, s store.Store) {
	func() {
		defer func() {
			if r := recover(); r != errBoom {
				t.Fatalf("recovered %v, want the original panic", r)
			}
		}()
		_ = s.InTx(ctx(t), func(tctx context.Context) error {
			if err := writeAll(tctx, s, "p"); err != nil {
				t.Errorf("write: %v", err)
			}
			panic(errBoom)
		})
	}()
	assertNothingWritten(t, s, "p")
	// The store is still usable (the writer connection was released).
	c := sampleClient("after-panic")
	noErr(t, s.CreateClient(ctx(t), &c), "write after panic")
}

func testInTxCancelled(t *testing.T, s store.Store) {
	cctx, cancel := context.WithCancel(ctx(t))
	err := s.InTx(cctx, func(tctx context.Context) error {
		if err := writeAll(tctx, s, "cx"); err != nil {
			return err
		}
		cancel()
		return nil
	})
	if err == nil {
		t.Fatal("InTx committed although its context was cancelled before commit")
	}
	assertNothingWritten(t, s, "cx")
	c := sampleClient("after-cancel")
	noErr(t, s.CreateClient(ctx(t), &c), "write after cancel")
}

func testGC(t *testing.T, s store.Store) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	past, future := now.Add(-time.Second), now.Add(time.Hour)
	u := sampleUser("u1", "alice")
	noErr(t, s.CreateUser(ctx(t), &u), "user")
	c := sampleClient("c1")
	noErr(t, s.CreateClient(ctx(t), &c), "client")
	c2 := sampleClient("c2")
	noErr(t, s.CreateClient(ctx(t), &c2), "client 2")
	c3 := sampleClient("c3")
	noErr(t, s.CreateClient(ctx(t), &c3), "client 3")

	var expired int64
	mkGrant := func(sig string, exp time.Time) {
		g := grant(store.KindAccess, sig, "r")
		g.ExpiresAt = exp
		noErr(t, s.CreateGrantSession(ctx(t), &g), "grant "+sig)
	}
	mkGrant("g-past", past)
	mkGrant("g-now", now) // expires exactly at now: collected
	mkGrant("g-future", future)
	mkGrant("g-never", time.Time{})
	expired += 2
	for i, exp := range []time.Time{past, future} {
		noErr(t, s.CreateLoginSession(ctx(t), &store.LoginSession{IDHash: []byte{byte(i + 1)}, UserID: "u1",
			ExpiresAt: exp}), "login")
	}
	expired++
	noErr(t, s.SaveConsent(ctx(t), &store.Consent{UserID: "u1", ClientID: "c1", ExpiresAt: past}), "consent past")
	noErr(t, s.SaveConsent(ctx(t), &store.Consent{UserID: "u1", ClientID: "c2", ExpiresAt: future}), "consent future")
	noErr(t, s.SaveConsent(ctx(t), &store.Consent{UserID: "u1", ClientID: "c3"}), "consent forever")
	expired++
	// JTIs are marked relative to the real clock (MarkJTI replaces expired
	// ones against it), so collect them at a later "now".
	noErr(t, s.MarkJTI(ctx(t), "gc", "j-past", time.Now().Add(time.Minute)), "jti")
	k1 := signingKey("k-old", now.Add(-48*time.Hour))
	k1.ExpireAt = past
	k2 := signingKey("k-new", now)
	noErr(t, s.CreateSigningKey(ctx(t), &k1), "old key")
	noErr(t, s.CreateSigningKey(ctx(t), &k2), "new key")
	expired++

	n, err := s.GC(ctx(t), now)
	noErr(t, err, "gc")
	if n != expired {
		t.Fatalf("GC removed %d rows, want %d", n, expired)
	}
	for sig, want := range map[string]bool{"g-past": false, "g-now": false, "g-future": true, "g-never": true} {
		_, err := s.GetGrantSession(ctx(t), store.KindAccess, sig)
		if (err == nil) != want {
			t.Fatalf("grant %s present=%v, want %v (err %v)", sig, err == nil, want, err)
		}
	}
	if _, err := s.GetLoginSession(ctx(t), []byte{1}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired login session kept: %v", err)
	}
	if _, err := s.GetLoginSession(ctx(t), []byte{2}); err != nil {
		t.Fatalf("live login session removed: %v", err)
	}
	cs, err := s.ListConsents(ctx(t), "u1")
	noErr(t, err, "consents")
	if len(cs) != 2 || cs[0].ClientID != "c2" || cs[1].ClientID != "c3" {
		t.Fatalf("consents after GC = %+v", cs)
	}
	keys, err := s.ListSigningKeys(ctx(t))
	noErr(t, err, "keys")
	if len(keys) != 1 || keys[0].ID != "k-new" {
		t.Fatalf("keys after GC = %+v", keys)
	}
	if used, _ := s.JTIUsed(ctx(t), "gc", "j-past", time.Now()); !used {
		t.Fatal("live jti removed")
	}
	n, err = s.GC(ctx(t), time.Now().Add(2*time.Minute))
	noErr(t, err, "gc later")
	if n < 1 {
		t.Fatalf("later GC removed %d rows, want >= 1 (the jti)", n)
	}
	if used, _ := s.JTIUsed(ctx(t), "gc", "j-past", time.Now().Add(-time.Hour)); used {
		t.Fatal("expired jti not collected")
	}
	n, err = s.GC(ctx(t), now)
	noErr(t, err, "gc again")
	if n != 0 {
		t.Fatalf("second GC removed %d rows, want 0", n)
	}
}

func testValidation(t *testing.T, s store.Store) {
	bad := []struct {
		name string
		err  error
	}{
		{"empty client id", s.CreateClient(ctx(t), &store.Client{})},
		{"NUL in name", s.CreateClient(ctx(t), &store.Client{ID: "x", Name: "a\x00b"})},
		{"invalid utf-8", s.CreateClient(ctx(t), &store.Client{ID: "\xff"})},
		{"too many redirect uris", s.CreateClient(ctx(t), &store.Client{ID: "x", RedirectURIs: make([]string, 1000)})},
		{"empty username", s.CreateUser(ctx(t), &store.User{ID: "u"})},
		{"unknown kind", s.CreateGrantSession(ctx(t), &store.GrantSession{Kind: "implicit", Signature: "s"})},
		{"empty signature", s.CreateGrantSession(ctx(t), &store.GrantSession{Kind: store.KindCode})},
		{"huge data", s.CreateGrantSession(ctx(t), &store.GrantSession{Kind: store.KindCode, Signature: "s",
			Data: make([]byte, 2<<20)})},
		{"long jti", s.MarkJTI(ctx(t), "s", strings.Repeat("j", 10000), time.Now().Add(time.Hour))},
		{"nil client", s.CreateClient(ctx(t), nil)},
		{"empty api key hash", s.CreateAPIKey(ctx(t), &store.APIKey{ID: "k"})},
		{"short session hash", s.CreateLoginSession(ctx(t), &store.LoginSession{UserID: "u"})},
	}
	for _, b := range bad {
		if !errors.Is(b.err, store.ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", b.name, b.err)
		}
	}
	// Errors never echo secrets: a conflicting grant session error must not
	// contain its signature.
	g := grant(store.KindRefresh, "very-secret-signature", "r")
	noErr(t, s.CreateGrantSession(ctx(t), &g), "create")
	err := s.CreateGrantSession(ctx(t), &g)
	wantErr(t, err, store.ErrConflict, "dup")
	if strings.Contains(err.Error(), "very-secret-signature") {
		t.Fatalf("error leaks the signature: %v", err)
	}
}

func testTimes(t *testing.T, s store.Store) {
	loc := time.FixedZone("JST", 9*3600)
	in := time.Date(2030, 12, 31, 23, 59, 59, 999999999, loc) // sub-microsecond part is dropped
	g := grant(store.KindOIDC, "t", "r")
	g.RequestedAt, g.ExpiresAt = in, in.Add(time.Hour)
	noErr(t, s.CreateGrantSession(ctx(t), &g), "create")
	got, err := s.GetGrantSession(ctx(t), store.KindOIDC, "t")
	noErr(t, err, "get")
	want := in.UTC().Truncate(time.Microsecond)
	if !got.RequestedAt.Equal(want) || got.RequestedAt.Location() != time.UTC {
		t.Fatalf("RequestedAt = %v (%v), want %v UTC", got.RequestedAt, got.RequestedAt.Location(), want)
	}
}

func testMigrationsIdempotent(t *testing.T, db DB) {
	s1 := open(t, db)
	c := sampleClient("persist")
	noErr(t, s1.CreateClient(ctx(t), &c), "create")
	noErr(t, s1.Close(), "close first")
	s2 := open(t, db)
	if _, err := s2.GetClient(ctx(t), "persist"); err != nil {
		t.Fatalf("data lost across reopen: %v", err)
	}
	s3 := open(t, db) // a second concurrent handle also opens fine
	noErr(t, s3.Ping(ctx(t)), "ping")
}

func testChecksumTamper(t *testing.T, db DB) {
	s := open(t, db)
	noErr(t, s.Close(), "close")
	noErr(t, db.Exec(`UPDATE schema_migrations SET checksum = 'tampered' WHERE version = 1`), "tamper")
	_, err := db.Open()
	if err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("open after tamper: got %v, want checksum error", err)
	}
}

func testNewerDatabase(t *testing.T, db DB) {
	s := open(t, db)
	noErr(t, s.Close(), "close")
	noErr(t, db.Exec(`INSERT INTO schema_migrations (version, checksum, applied_at)
 SELECT 9999, checksum, applied_at FROM schema_migrations WHERE version = 1`), "insert")
	_, err := db.Open()
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("open newer database: got %v, want 'newer' error", err)
	}
}

// testConcurrentOpen: nodes starting at once migrate exactly once.
func testConcurrentOpen(t *testing.T, db DB) {
	const n = 4
	stores := make([]store.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = db.Open()
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("open %d: %v", i, errs[i])
		}
		t.Cleanup(func() { _ = stores[i].Close() })
	}
	u := sampleUser("u", "u")
	noErr(t, stores[0].CreateUser(ctx(t), &u), "create via first")
	if _, err := stores[n-1].GetUser(ctx(t), "u"); err != nil {
		t.Fatalf("read via last: %v", err)
	}
}

func testClosed(t *testing.T, db DB) {
	s, err := db.Open()
	noErr(t, err, "open")
	noErr(t, s.Close(), "close")
	noErr(t, s.Close(), "second close")
	_, err = s.GetClient(ctx(t), "x")
	wantErr(t, err, store.ErrClosed, "get after close")
	g := grant(store.KindAccess, "s", "r")
	wantErr(t, s.CreateGrantSession(ctx(t), &g), store.ErrClosed, "hot insert after close")
	wantErr(t, s.MarkJTI(ctx(t), "s", "j", time.Now().Add(time.Hour)), store.ErrClosed, "mark after close")
	wantErr(t, s.InTx(ctx(t), func(context.Context) error { return nil }), store.ErrClosed, "InTx after close")
}
