package store

// qid names a statement of the shared SQL core. Statements are written once
// with "?" placeholders; the PostgreSQL backend rewrites them to $n. Both
// backends prepare them (SQLite explicitly at open, pgx through its statement
// cache).
type qid int

const (
	qClientInsert qid = iota
	qClientGet
	qClientList
	qClientUpdate
	qClientDelete

	qUserInsert
	qUserGet
	qUserGetByName
	qUserList
	qUserUpdate

	qConsentUpsert
	qConsentGet
	qConsentList
	qConsentDelete

	qLoginInsert
	qLoginGet
	qLoginDelete
	qLoginDeleteUser

	qGrantInsert
	qGrantGet
	qGrantDelete
	qGrantDeactivate
	qGrantDeactivateReq
	qGrantDeleteReq
	qGrantList
	qGrantListClient
	qGrantListSubject
	qGrantListClientSubject

	qKeyInsert
	qKeyList
	qKeyUpdate

	qJTIMark
	qJTIUsed
	qJTIList

	qAPIKeyInsert
	qAPIKeyGet
	qAPIKeyList
	qAPIKeyRevoke

	qGCGrant
	qGCLogin
	qGCConsent
	qGCJTI
	qGCKeys

	numQueries
)

const (
	clientCols = `id, name, secret_hash, public, redirect_uris, post_logout_redirect_uris, grant_types, scopes,
 audiences, token_endpoint_auth_method, jwks, access_token_ttl, refresh_token_ttl, disabled, created_at, updated_at`
	userCols    = `id, username, email, name, locale, password_hash, disabled, created_at, updated_at, password_changed_at`
	consentCols = `user_id, client_id, scopes, created_at, expires_at`
	loginCols   = `id_hash, user_id, auth_time, created_at, expires_at`
	grantCols   = `kind, signature, request_id, client_id, subject, active, data, jti, requested_at, expires_at`
	keyCols     = `id, alg, private_key_enc, public_jwk, created_at, activate_at, retire_at, expire_at`
	apiKeyCols  = `id, consumer, scopes, hash, created_at, expires_at, revoked`
)

var queries = [numQueries]string{
	qClientInsert: `INSERT INTO clients (` + clientCols + `) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING`,
	qClientGet:    `SELECT ` + clientCols + ` FROM clients WHERE id = ?`,
	qClientList:   `SELECT ` + clientCols + ` FROM clients WHERE id > ? ORDER BY id LIMIT ?`,
	qClientUpdate: `UPDATE clients SET name = ?, secret_hash = ?, public = ?, redirect_uris = ?, post_logout_redirect_uris = ?,
 grant_types = ?, scopes = ?, audiences = ?, token_endpoint_auth_method = ?, jwks = ?, access_token_ttl = ?,
 refresh_token_ttl = ?, disabled = ?, updated_at = ? WHERE id = ?`,
	qClientDelete: `DELETE FROM clients WHERE id = ?`,

	qUserInsert:    `INSERT INTO users (username_norm, ` + userCols + `) VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING`,
	qUserGet:       `SELECT ` + userCols + ` FROM users WHERE id = ?`,
	qUserGetByName: `SELECT ` + userCols + ` FROM users WHERE username_norm = ?`,
	qUserList:      `SELECT ` + userCols + ` FROM users WHERE id > ? ORDER BY id LIMIT ?`,
	qUserUpdate: `UPDATE users SET username_norm = ?, username = ?, email = ?, name = ?, locale = ?, password_hash = ?,
 disabled = ?, updated_at = ?, password_changed_at = ? WHERE id = ?`,

	qConsentUpsert: `INSERT INTO consents (` + consentCols + `) VALUES (?,?,?,?,?)
 ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, created_at = excluded.created_at,
 expires_at = excluded.expires_at`,
	qConsentGet:    `SELECT ` + consentCols + ` FROM consents WHERE user_id = ? AND client_id = ?`,
	qConsentList:   `SELECT ` + consentCols + ` FROM consents WHERE user_id = ? ORDER BY client_id LIMIT ?`,
	qConsentDelete: `DELETE FROM consents WHERE user_id = ? AND client_id = ?`,

	qLoginInsert:     `INSERT INTO login_sessions (` + loginCols + `) VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING`,
	qLoginGet:        `SELECT ` + loginCols + ` FROM login_sessions WHERE id_hash = ?`,
	qLoginDelete:     `DELETE FROM login_sessions WHERE id_hash = ?`,
	qLoginDeleteUser: `DELETE FROM login_sessions WHERE user_id = ?`,

	qGrantInsert:     `INSERT INTO grant_sessions (` + grantCols + `) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING`,
	qGrantGet:        `SELECT ` + grantCols + ` FROM grant_sessions WHERE kind = ? AND signature = ?`,
	qGrantDelete:     `DELETE FROM grant_sessions WHERE kind = ? AND signature = ?`,
	qGrantDeactivate: `UPDATE grant_sessions SET active = ? WHERE kind = ? AND signature = ?`,
	qGrantDeactivateReq: `UPDATE grant_sessions SET active = ? WHERE kind = ? AND request_id = ? AND active = ?
 RETURNING ` + grantCols,
	qGrantDeleteReq: `DELETE FROM grant_sessions WHERE kind = ? AND request_id = ?`,
	qGrantList: `SELECT ` + grantCols + ` FROM grant_sessions WHERE kind = ? AND active = ? AND signature > ?
 ORDER BY signature LIMIT ?`,
	qGrantListClient: `SELECT ` + grantCols + ` FROM grant_sessions WHERE kind = ? AND client_id = ? AND active = ?
 AND signature > ? ORDER BY signature LIMIT ?`,
	qGrantListSubject: `SELECT ` + grantCols + ` FROM grant_sessions WHERE kind = ? AND subject = ? AND active = ?
 AND signature > ? ORDER BY signature LIMIT ?`,
	qGrantListClientSubject: `SELECT ` + grantCols + ` FROM grant_sessions WHERE kind = ? AND subject = ? AND client_id = ?
 AND active = ? AND signature > ? ORDER BY signature LIMIT ?`,

	qKeyInsert: `INSERT INTO signing_keys (` + keyCols + `) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING`,
	qKeyList:   `SELECT ` + keyCols + ` FROM signing_keys ORDER BY created_at, id`,
	qKeyUpdate: `UPDATE signing_keys SET activate_at = ?, retire_at = ?, expire_at = ? WHERE id = ?`,

	// Insert-if-absent; an expired marker is replaced. 0 rows affected = live duplicate.
	qJTIMark: `INSERT INTO jtis (scope, jti, expires_at) VALUES (?,?,?)
 ON CONFLICT (scope, jti) DO UPDATE SET expires_at = excluded.expires_at WHERE jtis.expires_at <= ?`,
	qJTIUsed: `SELECT 1 FROM jtis WHERE scope = ? AND jti = ? AND expires_at > ?`,
	qJTIList: `SELECT scope, jti, expires_at FROM jtis WHERE scope = ? AND expires_at > ? AND jti > ? ORDER BY jti LIMIT ?`,

	qAPIKeyInsert: `INSERT INTO api_keys (` + apiKeyCols + `) VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING`,
	qAPIKeyGet:    `SELECT ` + apiKeyCols + ` FROM api_keys WHERE id = ?`,
	qAPIKeyList:   `SELECT ` + apiKeyCols + ` FROM api_keys WHERE id > ? ORDER BY id LIMIT ?`,
	qAPIKeyRevoke: `UPDATE api_keys SET revoked = ? WHERE id = ?`,

	// GC deletes in bounded chunks so one call never holds the (SQLite) write
	// lock for long; row-value IN works on SQLite >= 3.15 and PostgreSQL.
	qGCGrant: `DELETE FROM grant_sessions WHERE (kind, signature) IN
 (SELECT kind, signature FROM grant_sessions WHERE expires_at <= ? LIMIT ?)`,
	qGCLogin: `DELETE FROM login_sessions WHERE id_hash IN (SELECT id_hash FROM login_sessions WHERE expires_at <= ? LIMIT ?)`,
	qGCConsent: `DELETE FROM consents WHERE (user_id, client_id) IN
 (SELECT user_id, client_id FROM consents WHERE expires_at <= ? LIMIT ?)`,
	qGCJTI:  `DELETE FROM jtis WHERE (scope, jti) IN (SELECT scope, jti FROM jtis WHERE expires_at <= ? LIMIT ?)`,
	qGCKeys: `DELETE FROM signing_keys WHERE id IN (SELECT id FROM signing_keys WHERE expire_at <= ? LIMIT ?)`,
}

// maxConsentsPerUser bounds ListConsents (one row per client).
const maxConsentsPerUser = 10000
