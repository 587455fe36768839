package webfront

import (
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"

	"byzantium/runtime/i18n"
)

//go:embed web
var webFS embed.FS

var (
	catalogs = mustCatalogs()
	pageTmpl = template.Must(template.ParseFS(webFS, "web/page.html"))
)

func mustCatalogs() *i18n.Catalogs {
	c, err := i18n.Load(webFS, "web/i18n", "en")
	if err != nil {
		panic(err) // an embedded file is broken: TestCatalogs catches it
	}
	return c
}

// page is one of the answers the front gives in an app's place.
type page struct {
	key        string // the catalog's key prefix: "starting", "toolarge"
	status     int
	retryAfter int // seconds; 0: no Retry-After
	refresh    int // seconds; 0: no automatic reload
}

var (
	pageStarting = page{"starting", http.StatusServiceUnavailable, 5, 5}
	pageStopped  = page{"stopped", http.StatusServiceUnavailable, 0, 0}
	pageFailed   = page{"failed", http.StatusServiceUnavailable, 0, 0}
	pageDown     = page{"down", http.StatusBadGateway, 30, 0}
	pageBroken   = page{"broken", http.StatusBadGateway, 0, 0}
	pageTimeout  = page{"timeout", http.StatusGatewayTimeout, 30, 0}
	pageBusy     = page{"busy", http.StatusServiceUnavailable, 10, 0}
	pageTooMany  = page{"toomany", http.StatusTooManyRequests, 5, 0}
	pageTooLarge = page{"toolarge", http.StatusRequestEntityTooLarge, 0, 0}
	pageSlow     = page{"slow", http.StatusRequestTimeout, 0, 0}
	pageLength   = page{"length", http.StatusLengthRequired, 0, 0}
	pageBadPath  = page{"badpath", http.StatusBadRequest, 0, 0}
	pageNotFound = page{"notfound", http.StatusNotFound, 0, 0}
	pageMethod   = page{"method", http.StatusMethodNotAllowed, 0, 0}
)

// ErrorBody is the JSON the front answers API clients with in an app's
// place.
type ErrorBody struct {
	Error  string `json:"error"`
	App    string `json:"app"`
	State  string `json:"state,omitempty"`
	Status int    `json:"status"`
}

// wantsHTML: browsers navigating ask for text/html; scripts and API
// clients (fetch, curl, the apps' own XHR) get JSON.
func wantsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// writePage answers r with p for app a, in the client's language; the
// connection is closed after it when the request's body was not read.
func (a *app) writePage(w http.ResponseWriter, r *http.Request, p page, args ...any) {
	lang := catalogs.Match(r.Header.Get("Accept-Language"))
	args = append([]any{a.title}, args...)
	title, text := tr(lang, p.key+".title", args), tr(lang, p.key+".text", args)
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if p.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(p.retryAfter))
	}
	if p.status == http.StatusRequestEntityTooLarge || p.status == http.StatusRequestTimeout || p.status == http.StatusLengthRequired {
		h.Set("Connection", "close")
	}
	if !wantsHTML(r) {
		h.Set("Content-Type", "application/json")
		w.WriteHeader(p.status)
		body := ErrorBody{Error: title + ". " + text, App: a.name, Status: p.status}
		if p.key == "starting" || p.key == "stopped" || p.key == "failed" {
			body.State = p.key
		}
		json.NewEncoder(w).Encode(body)
		return
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.WriteHeader(p.status)
	if r.Method == http.MethodHead {
		return
	}
	pageTmpl.Execute(w, struct {
		Lang, Title, Text string
		Refresh           int
	}{lang, title, text, p.refresh})
}

// tr is the message key in lang with as many of args as it has verbs:
// a title that does not name the app takes none.
func tr(lang, key string, args []any) string {
	msg := catalogs.T(lang, key)
	n := strings.Count(msg, "%s")
	if n == 0 {
		return msg
	}
	return fmt.Sprintf(msg, args[:min(n, len(args))]...)
}

// byteSize writes n as people read it: "8 MiB".
func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
