package smoke

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/internal/browser"
	"github.com/virtplane/virtplane/internal/testenv"
)

// TestChromiumRunsScripts opens a page on loopback in headless Chromium,
// reads what its script computed and takes a screenshot.
func TestChromiumRunsScripts(t *testing.T) {
	env := testenv.RequireChromium(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(`<!doctype html><body style="background:#fff"><script>window.answer = [6, 7].reduce((a, b) => a * b);</script>`))
	}))
	defer page.Close()
	b, err := browser.Start(ctx, env.Bin, env.Flags, t.TempDir())
	require.NoError(t, err)
	defer b.Close()
	p, err := b.NewPage(ctx)
	require.NoError(t, err)
	require.NoError(t, p.Navigate(ctx, page.URL))
	var answer int
	require.Eventually(t, func() bool { return p.Eval(ctx, "window.answer", &answer) == nil && answer == 42 }, 20*time.Second, 100*time.Millisecond)
	png, err := p.Screenshot(ctx)
	require.NoError(t, err)
	assert.Equal(t, "\x89PNG", string(png[:4]))
	err = p.Eval(ctx, "no.such.thing", nil)
	assert.ErrorContains(t, err, "javascript")
}
