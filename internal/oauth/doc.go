// Package oauth is the protocol layer of Sekisho's built-in OAuth 2.0 /
// OpenID Connect authorization server, built on github.com/ory/fosite
// (see docs/decisions/0003-oauth-library.md).
//
// What fosite does here: request validation of the authorization and token
// endpoints, PKCE (S256 only, required for every client), single-use codes
// with replay revocation, refresh token rotation with family revocation on
// reuse, client authentication (client_secret_basic/post, private_key_jwt
// with jti replay protection), OIDC ID tokens, introspection and revocation
// state machines. What this package adds:
//
//   - composition with exactly the supported grants (authorization_code,
//     client_credentials, refresh_token; no implicit, hybrid, password or
//     JWT-bearer grant) and a guard answering unsupported_grant_type;
//   - RFC 9068 JWT access tokens (typ at+jwt, iss, sub, aud, client_id,
//     scope, jti, iat, exp, auth_time) signed with internal/keys' current key
//     and verified against every published key (rotation-safe);
//   - opaque HMAC refresh tokens and codes keyed from the master key;
//   - storage adapter onto internal/store with compare-and-set rotation and
//     code invalidation, and a Begin/Commit adapter onto store.InTx;
//   - SHA-256 client secret hashing (server-generated 256-bit secrets);
//   - RFC 8707 resource indicators → audience, exact redirect_uri matching
//     (loopback port variance for public clients only), RFC 9207 iss in every
//     authorization response, RFC 6749 §5.2 JSON errors, no-store headers,
//     bounded and duplicate-free request parameters;
//   - discovery (OIDC and RFC 8414), JWKS, userinfo, RP-initiated logout;
//   - revocation into the gateway deny-list (Revoker) for single tokens,
//     grant families, users and clients;
//   - ClientService and its admin JSON API.
//
// Wiring (cmd/sekisho):
//
//	srv, err := oauth.New(oauth.Options{Issuer, Store, Keys: keyManager,
//	        Identity: identitySvc, Revoker: denyList, MasterKey, ...})
//	srv.Routes(publicMux)                      // /oauth2/*, /.well-known/*
//	adminMux.Handle("/api/v1/oauth/", auth(http.StripPrefix("/api/v1/oauth", srv.Clients().AdminHandler())))
//	identity.Options.OnUserDisabled   = func(id string) { srv.RevokeUser(ctx, id) }
//	identity.Options.OnConsentRevoked = func(u, c string) { srv.RevokeUserClient(ctx, u, c) }
package oauth
