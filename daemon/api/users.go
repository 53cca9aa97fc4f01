package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/auth"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
)

// LoginInput signs in with a name and password.
type LoginInput struct {
	Body struct {
		Name      string `json:"name" minLength:"1"`
		Password  string `json:"password" minLength:"1"`
		TokenName string `json:"token_name,omitempty" doc:"name of the token to issue" default:"login"`
		TTL       string `json:"ttl,omitempty" doc:"token lifetime as a Go duration (24h); empty for no expiry"`
	}
}

// TokenOutput shows a new token's secret, once.
type TokenOutput struct {
	Body struct {
		Token  string      `json:"token" doc:"the secret; shown only now"`
		Info   model.Token `json:"info"`
		UserID string      `json:"user_id"`
	}
}

// UserOutput is one user.
type UserOutput struct{ Body model.User }

// IDInput names an object in the path.
type IDInput struct {
	ID string `path:"id" maxLength:"64"`
}

func (s *Server) registerUsers() {
	huma.Register(s.api, huma.Operation{
		OperationID: "login", Method: http.MethodPost, Path: "/v1/login", Tags: []string{"users"},
		Summary: "Sign in and get an API token", Security: []map[string][]string{},
		Metadata: map[string]any{"public": true},
	}, func(ctx context.Context, in *LoginInput) (*TokenOutput, error) {
		u, err := s.cfg.Auth.SignIn(ctx, in.Body.Name, in.Body.Password)
		if err != nil {
			return nil, problem(err)
		}
		return s.issue(ctx, u.ID, in.Body.TokenName, in.Body.TTL)
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "me", Method: http.MethodGet, Path: "/v1/me", Tags: []string{"users"}, Summary: "The calling user",
	}, func(ctx context.Context, _ *struct{}) (*UserOutput, error) {
		u, _, err := s.user(ctx, principal(ctx).UserID)
		return &UserOutput{Body: u}, problem(err)
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "listUsers", Method: http.MethodGet, Path: "/v1/users", Tags: []string{"users"}, Summary: "List users (admin)",
	}, func(ctx context.Context, in *PageInput) (*struct{ Body Page[model.User] }, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		p, err := listObjects[model.User](ctx, s.st, store.KindUser, store.ListOptions{After: in.After, Limit: in.Limit}, nil)
		return &struct{ Body Page[model.User] }{p}, problem(err)
	})

	type createUser struct {
		Body struct {
			Name     string     `json:"name" minLength:"1" maxLength:"63"`
			Password string     `json:"password" minLength:"8"`
			Role     model.Role `json:"role,omitempty" enum:"admin,user" default:"user"`
		}
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "createUser", Method: http.MethodPost, Path: "/v1/users", Tags: []string{"users"},
		Summary: "Create a local user (admin)", DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *createUser) (*UserOutput, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		u, err := s.cfg.Auth.CreateUser(ctx, in.Body.Name, in.Body.Password, in.Body.Role)
		if err != nil {
			return nil, problem(field("body.name", err))
		}
		s.publish("user", "created", u.ID, u.ID, "")
		return &UserOutput{Body: u}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "getUser", Method: http.MethodGet, Path: "/v1/users/{id}", Tags: []string{"users"}, Summary: "Get a user (admin or self)",
	}, func(ctx context.Context, in *IDInput) (*UserOutput, error) {
		if !principal(ctx).CanAccess(in.ID) {
			return nil, problem(field("path.id", virtplane.Errorf(virtplane.ErrNotFound, "user %q", in.ID)))
		}
		u, _, err := s.user(ctx, in.ID)
		return &UserOutput{Body: u}, problem(err)
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "deleteUser", Method: http.MethodDelete, Path: "/v1/users/{id}", Tags: []string{"users"},
		Summary: "Delete a user and their tokens (admin); refused while they own VMs", DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *IDInput) (*struct{}, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		if in.ID == principal(ctx).UserID {
			return nil, problem(field("path.id", virtplane.Errorf(virtplane.ErrConflict, "an admin cannot delete themselves")))
		}
		err := s.st.Update(ctx, func(tx store.Tx) error {
			if _, err := tx.GetObject(ctx, store.KindUser, in.ID); err != nil {
				return field("path.id", err)
			}
			if n, err := tx.CountObjects(ctx, store.KindVM, store.ListOptions{Owner: in.ID}); err != nil || n > 0 {
				if err == nil {
					err = field("path.id", virtplane.Errorf(virtplane.ErrConflict, "user %s owns %d VMs", in.ID, n))
				}
				return err
			}
			toks, err := tx.ListObjects(ctx, store.KindToken, store.ListOptions{Parent: in.ID})
			if err != nil {
				return err
			}
			for _, t := range toks {
				if err := tx.DeleteObject(ctx, store.KindToken, t.ID, 0); err != nil {
					return err
				}
			}
			if err := tx.DeleteObject(ctx, store.KindQuota, in.ID, 0); err != nil && !errors.Is(err, virtplane.ErrNotFound) {
				return err
			}
			return tx.DeleteObject(ctx, store.KindUser, in.ID, 0)
		})
		s.cfg.Auth.Forget(in.ID)
		return nil, problem(err)
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "listTokens", Method: http.MethodGet, Path: "/v1/tokens", Tags: []string{"users"}, Summary: "List the caller's tokens",
	}, func(ctx context.Context, _ *struct{}) (*struct{ Body Page[model.Token] }, error) {
		toks, err := s.cfg.Auth.Tokens(ctx, principal(ctx).UserID)
		return &struct{ Body Page[model.Token] }{Page[model.Token]{Items: toks}}, problem(err)
	})

	type createToken struct {
		Body struct {
			Name string `json:"name" minLength:"1" maxLength:"64"`
			TTL  string `json:"ttl,omitempty" doc:"lifetime as a Go duration (24h); empty for no expiry"`
		}
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "createToken", Method: http.MethodPost, Path: "/v1/tokens", Tags: []string{"users"},
		Summary: "Issue a token for the caller", DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *createToken) (*TokenOutput, error) {
		return s.issue(ctx, principal(ctx).UserID, in.Body.Name, in.Body.TTL)
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "deleteToken", Method: http.MethodDelete, Path: "/v1/tokens/{id}", Tags: []string{"users"},
		Summary: "Revoke one of the caller's tokens", DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *IDInput) (*struct{}, error) {
		return nil, problem(field("path.id", s.cfg.Auth.RevokeToken(ctx, principal(ctx).UserID, in.ID)))
	})
}

func (s *Server) issue(ctx context.Context, userID, name, ttl string) (*TokenOutput, error) {
	var d time.Duration
	if ttl != "" {
		var err error
		if d, err = time.ParseDuration(ttl); err != nil || d < 0 {
			return nil, problem(field("body.ttl", virtplane.Errorf(virtplane.ErrInvalidArgument, "ttl %q is not a positive duration", ttl)))
		}
	}
	if name == "" {
		name = "login"
	}
	secret, tok, err := s.cfg.Auth.IssueToken(ctx, userID, name, d)
	if err != nil {
		return nil, problem(err)
	}
	out := &TokenOutput{}
	out.Body.Token, out.Body.Info, out.Body.UserID = secret, tok, userID
	return out, nil
}

func (s *Server) user(ctx context.Context, id string) (model.User, store.Object, error) {
	o, err := s.st.GetObject(ctx, store.KindUser, id)
	if err != nil {
		return model.User{}, o, field("path.id", err)
	}
	u, err := auth.DecodeUser(o)
	return u, o, err
}
