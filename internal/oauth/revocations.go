package oauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sekisho/sekisho/internal/store"
)

// revocations turns revocation decisions into store state (inactive grant
// rows, so introspection and refresh stop) and deny-list entries (so the
// gateway stops accepting the still-unexpired JWT access tokens).
type revocations struct {
	st      store.Store
	rev     Revoker // nil: store state only (CLI without a running server)
	maxTTL  time.Duration
	now     func() time.Time
	log     *slog.Logger
	metrics *metrics
}

// denyJTIs deny-lists the access tokens of the given rows.
func (r *revocations) denyJTIs(ctx context.Context, rows []store.GrantSession) error {
	if r.rev == nil {
		return nil
	}
	var errs []error
	now := r.now()
	for _, g := range rows {
		if g.JTI == "" || !g.ExpiresAt.After(now) {
			continue
		}
		if err := r.rev.RevokeToken(ctx, g.JTI, g.ExpiresAt); err != nil {
			errs = append(errs, err)
			continue
		}
		r.metrics.revoked.WithLabelValues("token").Inc()
	}
	if err := errors.Join(errs...); err != nil {
		r.log.Error("deny-listing access tokens failed", "count", len(errs), "err", err)
		return fmt.Errorf("deny-list access tokens: %w", err)
	}
	return nil
}

// revokeAccess deactivates and deny-lists every access token of a request.
func (r *revocations) revokeAccess(ctx context.Context, requestID string) error {
	rows, err := r.st.DeactivateGrantSessionsByRequestID(ctx, store.KindAccess, requestID)
	if err != nil {
		return fmt.Errorf("revoke access tokens: %w", err)
	}
	return r.denyJTIs(ctx, rows)
}

// revokeRequest revokes a whole grant family: refresh tokens, access tokens
// and a pending code.
func (r *revocations) revokeRequest(ctx context.Context, requestID string) error {
	var errs []error
	for _, kind := range []string{store.KindCode, store.KindRefresh} {
		if _, err := r.st.DeactivateGrantSessionsByRequestID(ctx, kind, requestID); err != nil {
			errs = append(errs, fmt.Errorf("revoke %s grants: %w", kind, err))
		}
	}
	if err := r.revokeAccess(ctx, requestID); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// revokeMatching revokes the families of every active row matching f
// (paged; the families of refresh and code rows include their access tokens).
func (r *revocations) revokeMatching(ctx context.Context, clientID, subject string) error {
	var errs []error
	seen := map[string]bool{}
	for _, kind := range []string{store.KindRefresh, store.KindCode, store.KindAccess} {
		after := ""
		for {
			rows, err := r.st.ListActiveGrantSessions(ctx, store.GrantFilter{
				Kind: kind, ClientID: clientID, Subject: subject,
				Page: store.Page{After: after, Limit: store.MaxPageLimit},
			})
			if err != nil {
				errs = append(errs, fmt.Errorf("list %s grants: %w", kind, err))
				break
			}
			for _, g := range rows {
				if seen[g.RequestID] {
					continue
				}
				seen[g.RequestID] = true
				if err := r.revokeRequest(ctx, g.RequestID); err != nil {
					errs = append(errs, err)
				}
			}
			if len(rows) < store.MaxPageLimit {
				break
			}
			after = rows[len(rows)-1].Signature
		}
	}
	return errors.Join(errs...)
}

// window returns the deny-list window of a subject/client revocation: every
// token issued up to a little after now, kept until the longest possible
// access token issued before then has expired. The margin covers iat's
// second granularity and the client cache of nodes that learn of the change
// only from the store (they may issue for up to maxClientCacheTTL more).
func (r *revocations) window() (issuedBefore, until time.Time) {
	issuedBefore = r.now().Add(maxClientCacheTTL + time.Second)
	return issuedBefore, issuedBefore.Add(r.maxTTL)
}

// revokeSubject revokes everything a user holds.
func (r *revocations) revokeSubject(ctx context.Context, subject string) error {
	var errs []error
	if r.rev != nil {
		ib, until := r.window()
		if err := r.rev.RevokeSubject(ctx, subject, ib, until); err != nil {
			errs = append(errs, fmt.Errorf("deny-list subject: %w", err))
		} else {
			r.metrics.revoked.WithLabelValues("subject").Inc()
		}
	}
	if err := r.revokeMatching(ctx, "", subject); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// revokeClient revokes everything issued to a client. Access rows of client
// credentials are not walked (there can be millions): the deny-list covers
// the gateway and introspection fails once the client is disabled or gone.
func (r *revocations) revokeClient(ctx context.Context, clientID string) error {
	var errs []error
	if r.rev != nil {
		ib, until := r.window()
		if err := r.rev.RevokeClient(ctx, clientID, ib, until); err != nil {
			errs = append(errs, fmt.Errorf("deny-list client: %w", err))
		} else {
			r.metrics.revoked.WithLabelValues("client").Inc()
		}
	}
	for _, kind := range []string{store.KindRefresh, store.KindCode} {
		after := ""
		for {
			rows, err := r.st.ListActiveGrantSessions(ctx, store.GrantFilter{
				Kind: kind, ClientID: clientID, Page: store.Page{After: after, Limit: store.MaxPageLimit},
			})
			if err != nil {
				errs = append(errs, fmt.Errorf("list %s grants: %w", kind, err))
				break
			}
			for _, g := range rows {
				if _, err := r.st.DeactivateGrantSessionsByRequestID(ctx, kind, g.RequestID); err != nil {
					errs = append(errs, err)
				}
			}
			if len(rows) < store.MaxPageLimit {
				break
			}
			after = rows[len(rows)-1].Signature
		}
	}
	return errors.Join(errs...)
}
