// Package browser drives a headless Chromium over the DevTools protocol for
// tests: it starts the browser with a fresh profile on loopback, opens a
// page, evaluates JavaScript in it and takes screenshots. Only the few
// protocol methods the tests need are spoken.
//
//	b, err := browser.Start(ctx, chromium.Bin, chromium.Flags, dir)
//	defer b.Close()
//	p, err := b.NewPage(ctx)
//	err = p.Navigate(ctx, url)
//	var state string
//	err = p.Eval(ctx, "window.vptConsole.state", &state)
package browser
