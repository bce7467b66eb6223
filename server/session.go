package server

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/policy"
)

// Sessions end on every node at once: a sign-out or an erasure is written
// to the store (Tx.EndSessions), which every node reads on each request
// that carries a session (Store.SessionEnded). The tokens stay stateless
// otherwise; only what ended early is stored, until it would have expired.

// errSessionEnded is a genuine session that was signed out, or whose
// subject was erased.
var errSessionEnded = portrait.Errorf(portrait.EUNAUTHORIZED, "the session has ended (signed out, or the subject was erased); sign in again")

// checkSubjectToken verifies a subject token and that it was not ended
// early, and returns what it says. Every way in with a subject token — the
// API's Bearer header and the privacy centre's cookie — goes through it.
func (s *Server) checkSubjectToken(ctx context.Context, tok string) (keys.Token, error) {
	t, err := s.cfg.Keys.ParseToken(tok, time.Now())
	switch {
	case errors.Is(err, keys.ErrTokenExpired):
		return keys.Token{}, portrait.Errorf(portrait.EUNAUTHORIZED, "the subject token has expired; ask for a new one")
	case err != nil:
		return keys.Token{}, portrait.Errorf(portrait.EUNAUTHORIZED, "the subject token is not valid")
	}
	ended, err := s.cfg.Store.SessionEnded(ctx, t.Issued, t.ID, keys.SubjectSessions(t.Pseudonym))
	if err != nil {
		return keys.Token{}, &portrait.Error{Code: portrait.EUNAVAILABLE, Message: "the store is not reachable to check the session; try again", Err: err}
	}
	if ended {
		return keys.Token{}, errSessionEnded
	}
	noteCaller(ctx, policy.Caller{Role: policy.Subject, Pseudonym: t.Pseudonym})
	return t, nil
}

// endSession ends one session (a subject token or a console cookie) on
// every node, with an audit record of it in the same transaction.
func (s *Server) endSession(ctx context.Context, session string, expires time.Time, rec audit.Record) error {
	err := s.cfg.Store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		if err := tx.EndSessions(ctx, keys.SessionID(session), expires, expires); err != nil {
			return err
		}
		_, err := s.cfg.Log.Append(ctx, tx, rec)
		return err
	})
	if err != nil {
		return &portrait.Error{Code: portrait.EUNAVAILABLE, Message: "the sign-out could not be recorded; the session is still open, try again", Err: err}
	}
	return nil
}

// deleteToken ends the subject token of the request on every node: the
// sign-out of the company's own front end, as the privacy centre's is.
func (s *Server) deleteToken(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	t, err := s.cfg.Keys.ParseToken(tok, time.Now()) // authenticate has checked it
	if err != nil {
		return portrait.Errorf(portrait.EUNAUTHORIZED, "the subject token is not valid")
	}
	if err := s.endSession(r.Context(), tok, t.Expires, audit.Record{Kind: "token", Time: time.Now().UTC(), Actor: "subject", Pseudonym: c.Pseudonym, Action: "signout"}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
