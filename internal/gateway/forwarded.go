package gateway

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// trustedProxies decides which peers' forwarding headers are believed.
type trustedProxies []netip.Prefix

func (t trustedProxies) contains(a netip.Addr) bool {
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peerAddr parses r.RemoteAddr ("ip:port") without allocating.
func peerAddr(remote string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap()
	}
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

// clientIP returns the address of the real client: the TCP peer, unless the
// peer is a trusted proxy, in which case X-Forwarded-For is walked from the
// right and the first address that is not a trusted proxy wins (the
// right-most untrusted hop: everything left of it is client-controlled).
func (t trustedProxies) clientIP(r *http.Request) (client netip.Addr, viaTrusted bool) {
	peer := peerAddr(r.RemoteAddr)
	if len(t) == 0 || !peer.IsValid() || !t.contains(peer) {
		return peer, false
	}
	xff := r.Header.Values("X-Forwarded-For")
	client = peer
	for i := len(xff) - 1; i >= 0; i-- {
		parts := xff[i]
		for parts != "" {
			var hop string
			if j := strings.LastIndexByte(parts, ','); j >= 0 {
				hop, parts = parts[j+1:], parts[:j]
			} else {
				hop, parts = parts, ""
			}
			a, err := netip.ParseAddr(strings.TrimSpace(hop))
			if err != nil {
				// Garbage from an untrusted hop: stop at the last good one.
				return client, true
			}
			client = a.Unmap()
			if !t.contains(client) {
				return client, true
			}
		}
	}
	return client, true
}

// forwardedProto is the scheme the client used: our own TLS state, or a
// trusted proxy's X-Forwarded-Proto when the peer is trusted.
func forwardedProto(r *http.Request, viaTrusted bool) string {
	if viaTrusted {
		switch p := strings.ToLower(strings.TrimSpace(lastValue(r.Header.Get("X-Forwarded-Proto")))); p {
		case "http", "https":
			return p
		}
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// forwardedHost is the host the client asked for: a trusted proxy's
// X-Forwarded-Host, or the request's Host.
func forwardedHost(r *http.Request, viaTrusted bool) string {
	if viaTrusted {
		if h := strings.TrimSpace(lastValue(r.Header.Get("X-Forwarded-Host"))); h != "" && validHost(h) {
			return h
		}
	}
	return r.Host
}

func lastValue(v string) string {
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		return v[i+1:]
	}
	return v
}

// validHost accepts host[:port] made of the characters a DNS name, IPv4 or
// bracketed IPv6 literal may use, so a header value cannot smuggle anything
// into Forwarded or X-Forwarded-Host.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_') {
			return false
		}
	}
	return true
}

// setForwarded writes X-Forwarded-For/-Proto/-Host and RFC 7239 Forwarded on
// the outbound request from what the gateway itself observed (plus, from
// trusted proxies only, what they reported). Client-sent values from
// untrusted peers are discarded, not appended to.
func setForwarded(in, out *http.Request, client netip.Addr, viaTrusted bool, proto, host string) {
	h := out.Header
	ip := client.String()
	if viaTrusted {
		// Keep the trusted chain up to and including the client.
		prior := in.Header.Values("X-Forwarded-For")
		chain := strings.Join(prior, ", ")
		if chain != "" {
			h.Set("X-Forwarded-For", chain+", "+peerAddr(in.RemoteAddr).String())
		} else {
			h.Set("X-Forwarded-For", ip)
		}
	} else {
		h.Set("X-Forwarded-For", ip)
	}
	h.Set("X-Forwarded-Proto", proto)
	h.Set("X-Forwarded-Host", host)
	forIP := ip
	if client.Is6() {
		forIP = `"[` + ip + `]"`
	}
	fwd := "for=" + forIP + ";proto=" + proto
	if validHost(host) {
		fwd += `;host="` + host + `"`
	}
	h.Set("Forwarded", fwd)
	h.Del("X-Real-Ip")
}
