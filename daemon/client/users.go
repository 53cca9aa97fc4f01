package client

import (
	"context"
	"strconv"

	"github.com/virtplane/virtplane/daemon/model"
)

func itoa(i int) string { return strconv.Itoa(i) }

// NewToken is a token just issued: its secret, shown only once, and its record.
type NewToken struct {
	Token  string      `json:"token"`
	Info   model.Token `json:"info"`
	UserID string      `json:"user_id"`
}

// Login signs in and returns a token.
func (c *Client) Login(ctx context.Context, name, password string) (string, error) {
	t, err := c.LoginToken(ctx, LoginRequest{Name: name, Password: password})
	return t.Token, err
}

// LoginRequest signs in: TokenName names the token issued (default
// "login"), TTL is its lifetime as a Go duration ("" never expires).
type LoginRequest struct {
	Name      string `json:"name"`
	Password  string `json:"password"`
	TokenName string `json:"token_name,omitempty"`
	TTL       string `json:"ttl,omitempty"`
}

// LoginToken signs in and returns the token issued with its record.
func (c *Client) LoginToken(ctx context.Context, r LoginRequest) (NewToken, error) {
	var out NewToken
	err := c.call(ctx, "login", nil, nil, r, &out)
	return out, err
}

// Me returns the calling user.
func (c *Client) Me(ctx context.Context) (model.User, error) {
	var u model.User
	err := c.call(ctx, "me", nil, nil, nil, &u)
	return u, err
}

// ListUsers reads one page of users (admin).
func (c *Client) ListUsers(ctx context.Context, o ListOptions) (Page[model.User], error) {
	var p Page[model.User]
	err := c.call(ctx, "listUsers", nil, pageQuery(o), nil, &p)
	return p, err
}

// CreateUser creates a local user (admin).
func (c *Client) CreateUser(ctx context.Context, name, password string, role model.Role) (model.User, error) {
	var u model.User
	err := c.call(ctx, "createUser", nil, nil, map[string]any{"name": name, "password": password, "role": role}, &u)
	return u, err
}

// GetUser reads a user (admin, or the user themselves).
func (c *Client) GetUser(ctx context.Context, id string) (model.User, error) {
	var u model.User
	err := c.call(ctx, "getUser", []string{id}, nil, nil, &u)
	return u, err
}

// DeleteUser deletes a user and their tokens (admin).
func (c *Client) DeleteUser(ctx context.Context, id string) error {
	return c.call(ctx, "deleteUser", []string{id}, nil, nil, nil)
}

// ListTokens lists the caller's tokens.
func (c *Client) ListTokens(ctx context.Context) ([]model.Token, error) {
	var p Page[model.Token]
	err := c.call(ctx, "listTokens", nil, nil, nil, &p)
	return p.Items, err
}

// CreateToken issues a token for the caller; ttl is a Go duration ("" never expires).
func (c *Client) CreateToken(ctx context.Context, name, ttl string) (NewToken, error) {
	var out NewToken
	err := c.call(ctx, "createToken", nil, nil, map[string]string{"name": name, "ttl": ttl}, &out)
	return out, err
}

// DeleteToken revokes one of the caller's tokens.
func (c *Client) DeleteToken(ctx context.Context, id string) error {
	return c.call(ctx, "deleteToken", []string{id}, nil, nil, nil)
}
