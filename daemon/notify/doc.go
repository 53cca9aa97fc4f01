// Package notify delivers the daemon's notifications — task failures, node
// state, HA events, script results, and the mails of script runs — by
// email (SMTP), Telegram (Bot API) and webhooks (HMAC-signed POSTs), to
// whoever subscribed to them.
//
// Deliveries are durable: an event becomes one stored delivery per matching
// subscription (in the caller's transaction when it has one, so the event
// and its deliveries commit together), and a dispatcher sends them,
// retrying with exponential backoff until the receiver takes them or they
// are too old. A delivery is claimed with a lease before it is sent, so a
// daemon that dies while sending leaves it to be sent again: receivers get
// each delivery at least once and tell repeats apart by its ID (the
// X-Virtplane-Delivery header of a webhook). Every attempt is kept in the
// delivery's log.
//
// A Sender sends one Message over one channel (EmailSender, TelegramSender,
// WebhookSender, and fake.Sender for tests); all pass notifytest.Run.
//
//	svc, _ := notify.New(notify.Config{Store: st, Senders: map[string]notify.Sender{
//		notify.ChannelWebhook: notify.NewWebhookSender(nil),
//	}})
//	go svc.Run(ctx)
//	err := st.Update(ctx, func(tx store.Tx) error {
//		return svc.EventTx(ctx, tx, notify.Event{Type: notify.EventScriptResult, Key: "script.result/" + runID, Owner: uid, Subject: "..."})
//	})
package notify
