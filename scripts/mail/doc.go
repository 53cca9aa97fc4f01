// Package mail delivers script results by email through an SMTP relay
// (github.com/wneessen/go-mail). Sender implements scripts.Deliverer: plug it
// into an Executor and set RunRequest.NotifyEmail.
//
//	s, err := mail.New(mail.Config{Host: "smtp.example.com", From: "panel@example.com",
//		Username: "panel", Password: pw})
//	ex, err := scripts.NewExecutor(scripts.ExecutorConfig{Runner: r}, scripts.WithDeliverer(s))
//
// The mail carries the masked result and, after a successful run, the
// script's notice rendered with the real values (a database password goes
// to the user who asked for the database, nowhere else).
package mail
