package web

import (
	"encoding/json"
	"html/template"
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

func TestTemplatesHaveNoInlineCodeOrExternalResources(t *testing.T) {
	bad := map[string]*regexp.Regexp{
		"script element":      regexp.MustCompile(`(?i)<script`),
		"style element":       regexp.MustCompile(`(?i)<style`),
		"style attribute":     regexp.MustCompile(`(?i)\sstyle\s*=`),
		"event handler":       regexp.MustCompile(`(?i)\son[a-z]+\s*=`),
		"javascript: URL":     regexp.MustCompile(`(?i)javascript:`),
		"external resource":   regexp.MustCompile(`(?i)(src|href|action)\s*=\s*"(https?:)?//`),
		"iframe/object/embed": regexp.MustCompile(`(?i)<(iframe|object|embed)`),
	}
	files, err := fs.Glob(Templates(), "*.html")
	if err != nil || len(files) < 7 {
		t.Fatalf("templates: %v %v", files, err)
	}
	for _, f := range files {
		b, _ := fs.ReadFile(Templates(), f)
		for what, re := range bad {
			if re.Match(b) {
				t.Errorf("%s contains a %s", f, what)
			}
		}
		if f != "layout.html" {
			if _, err := template.New("layout").ParseFS(Templates(), "layout.html", f); err != nil {
				t.Errorf("%s: %v", f, err)
			}
			if !strings.Contains(string(b), `{{define "title"}}`) || !strings.Contains(string(b), `{{define "content"}}`) {
				t.Errorf("%s must define title and content", f)
			}
		}
	}
}

func TestStylesheetIsSelfContained(t *testing.T) {
	b, err := fs.ReadFile(Static(), "sekisho.css")
	if err != nil {
		t.Fatal(err)
	}
	if regexp.MustCompile(`(?i)@import|url\(|expression\(`).Match(b) {
		t.Error("stylesheet loads other resources or uses expressions")
	}
}

func TestLocalesMatch(t *testing.T) {
	load := func(name string) map[string]string {
		b, err := fs.ReadFile(Locales(), name)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return m
	}
	en, ja := load("en.json"), load("ja.json")
	verbs := regexp.MustCompile(`%[a-z%]`)
	japanese := regexp.MustCompile(`[\p{Hiragana}\p{Katakana}\p{Han}]`)
	for k, v := range en {
		jv, ok := ja[k]
		if !ok {
			t.Errorf("ja.json lacks %q", k)
			continue
		}
		if k == "date_format" {
			continue
		}
		if a, b := verbs.FindAllString(v, -1), verbs.FindAllString(jv, -1); strings.Join(a, "") != strings.Join(b, "") {
			t.Errorf("%q: format verbs differ: en %v, ja %v", k, a, b)
		}
		if k != "product" && !japanese.MatchString(jv) {
			t.Errorf("%q: ja text %q is not Japanese", k, jv)
		}
		if strings.ContainsAny(v+jv, "<>") {
			t.Errorf("%q: markup in UI strings", k)
		}
	}
	for k := range ja {
		if _, ok := en[k]; !ok {
			t.Errorf("en.json lacks %q", k)
		}
	}
}
