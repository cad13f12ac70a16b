package identity

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/language"

	"github.com/sekisho/sekisho/internal/problem"
	"github.com/sekisho/sekisho/web"
)

// Security headers of every page. The pages need no script at all; the only
// subresource is the same-origin stylesheet.
const (
	pageCSP    = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	staticCSP  = "default-src 'none'; frame-ancestors 'none'"
	cssFile    = "sekisho.css"
	defaultLoc = "en"
)

// Page names (template files without .html).
const (
	pageLogin     = "login"
	pageConsent   = "consent"
	pageLogout    = "logout"
	pageSignedOut = "signed_out"
	pageError     = "error"
	pageConsents  = "consents"
	pageContinue  = "continue"
)

var pageNames = [...]string{pageLogin, pageConsent, pageLogout, pageSignedOut, pageError, pageConsents, pageContinue}

// isSupportedLocale reports whether loc has UI strings.
func isSupportedLocale(loc string) bool { return loc == "en" || loc == "ja" }

// locales holds the UI strings: locale -> key -> text.
type locales struct {
	strings map[string]map[string]string
}

// staticFile is an embedded asset held in memory with its validators.
type staticFile struct {
	body  []byte
	ctype string
	etag  string
}

// pageData is what templates see. Every string is escaped by html/template.
type pageData struct {
	Lang      string
	L         map[string]string
	CSS       string
	Base      string
	User      string // display name of the signed-in user, "" when none
	CSRF      string
	ReturnTo  string
	Refresh   string // continuation URL (meta refresh + link)
	Error     string // localized message
	RequestID string
	Username  string // login form prefill
	Client    string // client display name
	ClientID  string
	Scopes    []scopeView
	Consents  []consentView
}

type scopeView struct{ Name, Desc string }

type consentView struct {
	Client, ClientID    string
	Created, CreatedISO string
	Scopes              []scopeView
}

// loadUI parses the embedded templates, locale strings and static files.
func (s *Service) loadUI() error {
	loc, err := loadLocales(web.Locales())
	if err != nil {
		return err
	}
	s.locales = loc
	s.pages = make(map[string]*template.Template, len(pageNames))
	for _, p := range pageNames {
		t, err := template.New("layout").Option("missingkey=error").ParseFS(web.Templates(), "layout.html", p+".html")
		if err != nil {
			return fmt.Errorf("identity: parse template %s: %w", p, err)
		}
		s.pages[p] = t
	}
	css, err := fs.ReadFile(web.Static(), cssFile)
	if err != nil {
		return fmt.Errorf("identity: read %s: %w", cssFile, err)
	}
	sum := sha256.Sum256(css)
	s.static = map[string]staticFile{cssFile: {body: css, ctype: "text/css; charset=utf-8", etag: `"` + hex.EncodeToString(sum[:8]) + `"`}}
	// The version query makes the year-long cache safe across upgrades.
	s.cssPath = s.o.BasePath + "/static/" + cssFile + "?v=" + hex.EncodeToString(sum[:6])
	return nil
}

// loadLocales reads <locale>.json for every supported locale and checks that
// they define exactly the same keys, so no page can miss a string.
func loadLocales(fsys fs.FS) (*locales, error) {
	l := &locales{strings: make(map[string]map[string]string, 2)}
	for _, loc := range []string{"en", "ja"} {
		b, err := fs.ReadFile(fsys, loc+".json")
		if err != nil {
			return nil, fmt.Errorf("identity: locale %s: %w", loc, err)
		}
		m := make(map[string]string)
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("identity: locale %s: %w", loc, err)
		}
		l.strings[loc] = m
	}
	en, ja := l.strings["en"], l.strings["ja"]
	for k := range en {
		if _, ok := ja[k]; !ok {
			return nil, fmt.Errorf("identity: locale ja lacks key %q", k)
		}
	}
	for k := range ja {
		if _, ok := en[k]; !ok {
			return nil, fmt.Errorf("identity: locale en lacks key %q", k)
		}
	}
	return l, nil
}

// pickLocale chooses the page language: the first supported tag of the
// request's ui_locales, then of the ui_locales in the authorize request
// (returnTo query), then Accept-Language, then English.
func (s *Service) pickLocale(r *http.Request, authz url.Values) string {
	if loc := fromUILocales(r.URL.Query().Get("ui_locales")); loc != "" {
		return loc
	}
	if authz != nil {
		if loc := fromUILocales(authz.Get("ui_locales")); loc != "" {
			return loc
		}
	}
	if al := r.Header.Get("Accept-Language"); al != "" && len(al) <= 1024 {
		tags, _, err := language.ParseAcceptLanguage(al)
		if err == nil {
			for _, t := range tags {
				if loc := baseLocale(t); loc != "" {
					return loc
				}
			}
		}
	}
	return defaultLoc
}

// fromUILocales returns the first supported locale of an OIDC ui_locales
// value (space-separated BCP 47 tags, at most 16 considered).
func fromUILocales(v string) string {
	if v == "" || len(v) > 512 {
		return ""
	}
	for i, f := range strings.Fields(v) {
		if i == 16 {
			break
		}
		t, err := language.Parse(f)
		if err != nil {
			continue
		}
		if loc := baseLocale(t); loc != "" {
			return loc
		}
	}
	return ""
}

func baseLocale(t language.Tag) string {
	b, _ := t.Base()
	if s := b.String(); isSupportedLocale(s) {
		return s
	}
	return ""
}

// newPage returns page data with the common fields for locale loc.
func (s *Service) newPage(loc string) *pageData {
	return &pageData{Lang: loc, L: s.locales.strings[loc], CSS: s.cssPath, Base: s.o.BasePath}
}

// setPageHeaders sets the headers shared by every HTML response.
func setPageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

// render executes page into a buffer first, so a template error becomes a
// clean 500 instead of a half-written page.
func (s *Service) render(w http.ResponseWriter, r *http.Request, status int, page string, d *pageData) {
	var buf bytes.Buffer
	if err := s.pages[page].ExecuteTemplate(&buf, "layout", d); err != nil {
		s.log.ErrorContext(r.Context(), "identity: render page", "page", page, "err", err)
		problem.Write(w, r, http.StatusInternalServerError, "page rendering failed")
		return
	}
	h := w.Header()
	setPageHeaders(h)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// renderError shows the error page with the localized message msgKey.
func (s *Service) renderError(w http.ResponseWriter, r *http.Request, status int, loc, msgKey string) {
	d := s.newPage(loc)
	d.Error = d.L[msgKey]
	d.RequestID = problem.RequestID(r.Context())
	if len(d.RequestID) > 128 || !utf8.ValidString(d.RequestID) {
		d.RequestID = ""
	}
	s.render(w, r, status, pageError, d)
}

// describeScopes returns the scopes with their description in loc: the
// configured ScopeDescriptions first, then the built-in "scope:<name>"
// strings, else a generic sentence naming the scope.
func (s *Service) describeScopes(loc string, scopes []string) []scopeView {
	L := s.locales.strings[loc]
	out := make([]scopeView, 0, len(scopes))
	for _, sc := range scopes {
		desc := s.o.ScopeDescriptions[sc][loc]
		if desc == "" {
			desc = L["scope:"+sc]
		}
		if desc == "" {
			desc = fmt.Sprintf(L["scope_fallback"], sc)
		}
		out = append(out, scopeView{Name: sc, Desc: desc})
	}
	return out
}

// handleStatic serves the embedded stylesheet with a long cache lifetime
// (URLs carry a content-hash version).
func (s *Service) handleStatic(w http.ResponseWriter, r *http.Request) {
	f, ok := s.static[r.PathValue("file")]
	if !ok {
		problem.Write(w, r, http.StatusNotFound, "no such static file")
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", staticCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("ETag", f.etag)
	h.Set("Content-Type", f.ctype)
	if inm := r.Header.Get("If-None-Match"); inm != "" && slices.Contains(strings.Split(strings.ReplaceAll(inm, " ", ""), ","), f.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(f.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(f.body)
	}
}

// localeKeys returns the sorted keys of a locale (tests).
func (l *locales) localeKeys(loc string) []string {
	return slices.Sorted(maps.Keys(l.strings[loc]))
}
