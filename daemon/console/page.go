package console

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed novnc
var novnc embed.FS

// NoVNC serves the vendored noVNC (core/ and vendor/) under the prefix it
// is mounted at: mount it with http.StripPrefix at PagePath + "/novnc/".
func NoVNC() http.Handler {
	sub, _ := fs.Sub(novnc, "novnc") // the directory is embedded: never fails
	return http.FileServer(http.FS(sub))
}

// PagePath is where the daemon serves the console page; the page takes
// the VM and the ticket from its URL's fragment (PagePath#vm=ID&ticket=T),
// which browsers send to no server and keep out of Referer headers.
const PagePath = "/console"

// Page serves the console page: noVNC, full window, connected to the
// daemon's console WebSocket with the ticket. It sets window.vptConsole
// (state: connecting, connected, disconnected) for tools and tests.
func Page(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	// Scripts only from the daemon itself; the socket to the same host.
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; connect-src 'self' ws: wss:; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'")
	_, _ = w.Write([]byte(page))
}

const page = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>console</title>
<style>
html, body { margin: 0; height: 100%; background: #1e1e1e; color: #ddd; font: 13px sans-serif; }
#bar { height: 24px; line-height: 24px; padding: 0 8px; background: #333; }
#screen { position: absolute; top: 24px; bottom: 0; left: 0; right: 0; }
</style>
</head>
<body>
<div id="bar"><span id="status">connecting</span></div>
<div id="screen"></div>
<script type="module">
import RFB from "` + PagePath + `/novnc/core/rfb.js";
const params = new URLSearchParams(location.hash.slice(1));
// The ticket is used once; it leaves the address bar and the history.
history.replaceState(null, "", location.pathname);
const status = document.getElementById("status");
window.vptConsole = { state: "connecting" };
const set = (s, text) => { window.vptConsole.state = s; status.textContent = text; document.title = "console: " + s; };
if (!params.get("vm") || !params.get("ticket")) {
  set("disconnected", "no console ticket: ask for one with POST /v1/vms/{id}/console");
} else {
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host +
    "/v1/vms/" + encodeURIComponent(params.get("vm")) + "/console/ws?ticket=" + encodeURIComponent(params.get("ticket"));
  const rfb = new RFB(document.getElementById("screen"), url);
  rfb.scaleViewport = true;
  rfb.addEventListener("connect", () => set("connected", "connected"));
  rfb.addEventListener("disconnect", (e) => set("disconnected", e.detail.clean ? "disconnected" : "the console closed or the ticket was refused"));
  window.vptConsole.rfb = rfb;
}
</script>
</body>
</html>
`
