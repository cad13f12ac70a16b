// Package sampleapi is the small upstream API that `sekisho demo` puts
// behind the gateway, so a new user sees what an upstream receives: the
// normalized path, the forwarding headers and the verified identity.
package sampleapi

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Handler returns the sample API.
func Handler() http.Handler {
	mux := http.NewServeMux()
	items := &itemStore{items: map[int]item{1: {ID: 1, Name: "tea"}, 2: {ID: 2, Name: "rice"}}, next: 3}
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"message": "hello from the sample API", "path": r.URL.Path})
	})
	mux.HandleFunc("/echo/", echo)
	mux.HandleFunc("/echo", echo)
	mux.HandleFunc("GET /items", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, items.list())
	})
	mux.HandleFunc("POST /items", func(w http.ResponseWriter, r *http.Request) {
		var in item
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&in); err != nil || in.Name == "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "expected JSON {\"name\": \"...\"}"})
			return
		}
		writeJSON(w, http.StatusCreated, items.add(in.Name))
	})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		select {
		case <-time.After(time.Duration(min(max(ms, 0), 30000)) * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		writeJSON(w, http.StatusOK, map[string]int{"slept_ms": ms})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	return mux
}

// echo reports what the upstream received. Authorization and Cookie values
// are masked: it is a demo, but demos get screenshotted.
func echo(w http.ResponseWriter, r *http.Request) {
	h := map[string]string{}
	keys := make([]string, 0, len(r.Header))
	for k := range r.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := strings.Join(r.Header.Values(k), ", ")
		if k == "Authorization" || k == "Cookie" {
			v = "(present, masked)"
		}
		h[k] = v
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"method": r.Method, "path": r.URL.Path, "raw_path": r.URL.RawPath, "query": r.URL.RawQuery,
		"host": r.Host, "proto": r.Proto, "headers": h,
	})
}

type item struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
}

type itemStore struct {
	mu    sync.Mutex
	items map[int]item
	next  int
}

func (s *itemStore) list() []item {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]item, 0, len(s.items))
	for _, it := range s.items {
		out = append(out, it)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (s *itemStore) add(name string) item {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.items) >= 1000 {
		delete(s.items, s.next-1000)
	}
	it := item{ID: s.next, Name: name}
	s.items[it.ID] = it
	s.next++
	return it
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
