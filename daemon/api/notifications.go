package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/mail"

	"github.com/danielgtaylor/huma/v2"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/notify"
	"github.com/virtplane/virtplane/daemon/store"
)

func (s *Server) notifier() (*notify.Service, error) {
	if s.cfg.Notify == nil {
		return nil, virtplane.Errorf(virtplane.ErrNotImplemented, "notifications are not wired into this daemon")
	}
	return s.cfg.Notify, nil
}

// SubscriptionOutput is a subscription; a new webhook subscription also
// carries its secret, shown this once.
type SubscriptionOutput struct {
	Body struct {
		notify.Subscription
		WebhookSecret string `json:"webhook_secret,omitempty" doc:"the HMAC key of a new webhook subscription; shown only now"`
	}
}

func (s *Server) registerNotifications() {
	tags := []string{"notifications"}
	huma.Register(s.api, huma.Operation{
		OperationID: "getNotificationChannels", Method: http.MethodGet, Path: "/v1/notifications/channels", Tags: tags,
		Summary: "The channels this daemon sends on and the event types subscriptions may ask for",
	}, func(ctx context.Context, _ *struct{}) (*struct {
		Body struct {
			Channels []string `json:"channels"`
			Events   []string `json:"events"`
		}
	}, error) {
		n, err := s.notifier()
		if err != nil {
			return nil, problem(err)
		}
		out := &struct {
			Body struct {
				Channels []string `json:"channels"`
				Events   []string `json:"events"`
			}
		}{}
		out.Body.Channels, out.Body.Events = n.Channels(), notify.EventTypes()
		if out.Body.Channels == nil {
			out.Body.Channels = []string{}
		}
		return out, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "listSubscriptions", Method: http.MethodGet, Path: "/v1/notifications/subscriptions", Tags: tags,
		Summary: "List the caller's subscriptions (admins: all)",
	}, func(ctx context.Context, _ *struct{}) (*struct{ Body Page[notify.Subscription] }, error) {
		n, err := s.notifier()
		if err != nil {
			return nil, problem(err)
		}
		owner := principal(ctx).UserID
		if principal(ctx).Admin() {
			owner = ""
		}
		items, err := n.Subscriptions(ctx, owner)
		return &struct{ Body Page[notify.Subscription] }{Page[notify.Subscription]{Items: items}}, problem(err)
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "createSubscription", Method: http.MethodPost, Path: "/v1/notifications/subscriptions", Tags: tags, DefaultStatus: http.StatusCreated,
		Summary:      "Subscribe the caller to events over email, Telegram or a webhook",
		Description:  "Webhooks are POSTed with X-Virtplane-Delivery (the same on retries: drop repeats), X-Virtplane-Event, X-Virtplane-Timestamp and X-Virtplane-Signature: sha256=HEX(HMAC-SHA256(secret, TIMESTAMP + \".\" + BODY)). Deliveries are retried with backoff until the receiver answers 2xx.",
		MaxBodyBytes: maxScriptRequest,
	}, func(ctx context.Context, in *struct{ Body notify.SubscriptionBody }) (*SubscriptionOutput, error) {
		n, err := s.notifier()
		if err != nil {
			return nil, problem(err)
		}
		p := principal(ctx)
		u, _, err := s.user(ctx, p.UserID)
		if err != nil {
			return nil, problem(err)
		}
		sub, secret, err := n.CreateSubscription(ctx, p.UserID, p.Admin(), u.Email, in.Body)
		if err != nil {
			return nil, problem(bodyField(err))
		}
		out := &SubscriptionOutput{}
		out.Body.Subscription, out.Body.WebhookSecret = sub, secret
		return out, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "getSubscription", Method: http.MethodGet, Path: "/v1/notifications/subscriptions/{id}", Tags: tags, Summary: "Get a subscription (without its secret)",
	}, func(ctx context.Context, in *IDInput) (*struct{ Body notify.Subscription }, error) {
		sub, err := s.subscription(ctx, in.ID)
		return &struct{ Body notify.Subscription }{sub}, problem(err)
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "deleteSubscription", Method: http.MethodDelete, Path: "/v1/notifications/subscriptions/{id}", Tags: tags, DefaultStatus: http.StatusNoContent,
		Summary: "Delete a subscription; its pending deliveries fail",
	}, func(ctx context.Context, in *IDInput) (*struct{}, error) {
		if _, err := s.subscription(ctx, in.ID); err != nil {
			return nil, problem(err)
		}
		return nil, problem(field("path.id", s.cfg.Notify.DeleteSubscription(ctx, in.ID)))
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "testSubscription", Method: http.MethodPost, Path: "/v1/notifications/subscriptions/{id}/test", Tags: tags, DefaultStatus: http.StatusAccepted,
		Summary: "Send a test notification to a subscription; answers its delivery",
	}, func(ctx context.Context, in *IDInput) (*struct{ Body notify.Delivery }, error) {
		if _, err := s.subscription(ctx, in.ID); err != nil {
			return nil, problem(err)
		}
		d, err := s.cfg.Notify.Test(ctx, in.ID)
		return &struct{ Body notify.Delivery }{d}, problem(err)
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "listDeliveries", Method: http.MethodGet, Path: "/v1/notifications/deliveries", Tags: tags,
		Summary: "The delivery log: the caller's notifications and result mails (admins: all), with every attempt",
	}, func(ctx context.Context, in *PageInput) (*struct{ Body Page[notify.Delivery] }, error) {
		n, err := s.notifier()
		if err != nil {
			return nil, problem(err)
		}
		owner := principal(ctx).UserID
		if principal(ctx).Admin() {
			owner = ""
		}
		items, next, err := n.Deliveries(ctx, owner, in.After, in.Limit)
		return &struct{ Body Page[notify.Delivery] }{Page[notify.Delivery]{Items: items, Next: next}}, problem(err)
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "getDelivery", Method: http.MethodGet, Path: "/v1/notifications/deliveries/{id}", Tags: tags, Summary: "One delivery and its attempts",
	}, func(ctx context.Context, in *IDInput) (*struct{ Body notify.Delivery }, error) {
		n, err := s.notifier()
		if err != nil {
			return nil, problem(err)
		}
		d, err := n.Delivery(ctx, in.ID)
		if err == nil && !principal(ctx).CanAccess(d.Owner) {
			err = virtplane.Errorf(virtplane.ErrNotFound, "delivery %q", in.ID)
		}
		return &struct{ Body notify.Delivery }{d}, problem(field("path.id", err))
	})
	type setEmail struct {
		IDInput
		Body struct {
			Email string `json:"email" maxLength:"254" doc:"an address (empty removes it)"`
		}
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "setUserEmail", Method: http.MethodPut, Path: "/v1/users/{id}/email", Tags: []string{"users"},
		Summary: "Set where a user's mails go: script results and email notifications (the user or an admin)",
	}, func(ctx context.Context, in *setEmail) (*UserOutput, error) {
		if !principal(ctx).CanAccess(in.ID) {
			return nil, problem(field("path.id", virtplane.Errorf(virtplane.ErrNotFound, "user %q", in.ID)))
		}
		if e := in.Body.Email; e != "" {
			if a, err := mail.ParseAddress(e); err != nil || a.Address != e {
				return nil, problem(field("body.email", virtplane.Errorf(virtplane.ErrInvalidArgument, "email %q: not an address (name@domain, no display name)", e)))
			}
		}
		var u model.User
		err := s.st.Update(ctx, func(tx store.Tx) error {
			o, err := tx.GetObject(ctx, store.KindUser, in.ID)
			if err != nil {
				return field("path.id", err)
			}
			// The stored user holds more than the API type (its password
			// hash): change the one field and keep the rest as it is.
			var raw map[string]json.RawMessage
			if err := json.Unmarshal(o.Data, &raw); err != nil {
				return err
			}
			if raw["email"], err = json.Marshal(in.Body.Email); err != nil {
				return err
			}
			if in.Body.Email == "" {
				delete(raw, "email")
			}
			if o.Data, err = json.Marshal(raw); err != nil {
				return err
			}
			if err := json.Unmarshal(o.Data, &u); err != nil {
				return err
			}
			return tx.UpdateObject(ctx, &o)
		})
		if err != nil {
			return nil, problem(err)
		}
		return &UserOutput{Body: u}, nil
	})
}

// subscription reads a subscription the caller may see.
func (s *Server) subscription(ctx context.Context, id string) (notify.Subscription, error) {
	n, err := s.notifier()
	if err != nil {
		return notify.Subscription{}, err
	}
	sub, err := n.Subscription(ctx, id)
	if err == nil && !principal(ctx).CanAccess(sub.Owner) {
		err = virtplane.Errorf(virtplane.ErrNotFound, "subscription %q", id)
	}
	return sub, field("path.id", err)
}
