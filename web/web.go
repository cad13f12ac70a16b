// Package web holds the authorization server's user interface assets:
// html/template page templates, per-locale UI strings (JSON) and static files
// (the stylesheet), all embedded in the binary. It contains no logic;
// internal/identity parses and serves them.
//
// Rules for these assets (enforced by tests here and in internal/identity):
// no <script>, no inline style attributes or <style> elements, no external
// resources — the pages are served with
// "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'".
package web

import (
	"embed"
	"io/fs"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static/*
var staticFiles embed.FS

//go:embed locales/*.json
var localeFiles embed.FS

// Templates returns the page templates: layout.html defines "layout", every
// other file defines "title" and "content" for one page.
func Templates() fs.FS { return sub(templateFiles, "templates") }

// Static returns the static assets served under /static/.
func Static() fs.FS { return sub(staticFiles, "static") }

// Locales returns one JSON object of UI strings per locale, named <locale>.json.
func Locales() fs.FS { return sub(localeFiles, "locales") }

func sub(f embed.FS, dir string) fs.FS {
	s, err := fs.Sub(f, dir)
	if err != nil { // unreachable: dir is a literal embedded directory
		panic("web: " + err.Error())
	}
	return s
}
