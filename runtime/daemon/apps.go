package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"byzantium/runtime/nodeapi"
	"byzantium/runtime/service"
	"byzantium/runtime/webfront"
)

// apps is byzd as the front of the node's web apps: a route for every
// service that declares a web app (manifest.Web), each by its own name
// under the node's (nodeapi.AppHost), so each app is its own origin in
// the browser and none shares the panel's; and a health probe per running
// app, so that a request between its start and its first answer gets the
// front's "starting" page rather than "not answering".
type apps struct {
	svc   *service.Manager
	front *webfront.Front
	node  func() string
	log   *slog.Logger

	mu     sync.Mutex
	built  string // the node name the routes were made for
	list   []service.WebApp
	health map[string]*appHealth // by service name
}

// appHealth is what the probes saw of one app since it last started.
type appHealth struct {
	state    string // the service's state at the last probe
	answered bool   // it answered once since it started
	ok       bool   // it answered the last probe
}

// appProbeEvery is how often running apps are asked their health path.
const appProbeEvery = 2 * time.Second

// newApps makes the front with panel as what no app claims: requests
// for an app's host never reach the panel, and the panel's security
// headers (its strict CSP above all) are not forced onto apps.
func newApps(svc *service.Manager, panel http.Handler, node func() string, log *slog.Logger) *apps {
	a := &apps{svc: svc, node: node, log: log, health: map[string]*appHealth{}}
	var limit logLimiter
	a.front = &webfront.Front{
		Fallback:        panel,
		ReservedCookies: []string{sessionCookie, langCookie},
		Logf: func(format string, args ...any) {
			if limit.allow() {
				log.Warn("web app", "msg", strings.TrimSpace(fmt.Sprintf(format, args...)))
			}
		},
	}
	a.update()
	return a
}

// update makes the routes again when the node's name has changed (or at
// first): the apps' host names carry it.
func (a *apps) update() {
	node := strings.ToLower(a.node())
	a.mu.Lock()
	defer a.mu.Unlock()
	if node == a.built && a.list != nil {
		return
	}
	list := a.svc.WebApps()
	routes := make([]webfront.Route, 0, len(list))
	for _, w := range list {
		routes = append(routes, a.route(w, node))
	}
	if err := a.front.Update(routes); err != nil {
		// One bad declaration must not take the others down: keep the
		// apps whose route stands on its own.
		a.log.Error("web apps: a route is refused", "err", err)
		routes, kept := routes[:0], list[:0]
		for i, w := range list {
			r := a.route(w, node)
			if a.front.Update([]webfront.Route{r}) == nil {
				routes, kept = append(routes, r), append(kept, list[i])
			}
		}
		list = kept
		if err := a.front.Update(routes); err != nil {
			a.log.Error("web apps: no route could be made", "err", err)
			a.front.Update(nil)
			list = nil
		}
	}
	a.list, a.built = list, node
	if a.list == nil {
		a.list = []service.WebApp{}
	}
}

// route is one app's route on the front.
func (a *apps) route(w service.WebApp, node string) webfront.Route {
	r := webfront.Route{Name: w.Web.Name, Title: w.Web.Title, Host: nodeapi.AppHost(w.Web.Name, node), Health: w.Web.Health,
		Limits: webfront.Limits{MaxBody: int64(w.Web.MaxBodyMB) << 20, Concurrent: w.Web.Concurrent, PerClient: w.Web.PerClient}}
	service := w.Service
	r.State = func() webfront.State { return a.frontState(service) }
	if f := w.Web.FastCGI; f != nil {
		r.FastCGI = &webfront.FastCGIBackend{Socket: w.Socket, Root: f.Root, Index: f.Index, FSRoot: w.Root, Static: f.Static, Deny: f.Deny}
	} else {
		r.HTTP = &webfront.HTTPBackend{Socket: w.Socket, Addr: w.Web.Addr}
	}
	return r
}

// state is an app's state as the API and the panel say it.
func (a *apps) state(svc string) string {
	st, enabled := a.svc.State(svc)
	a.mu.Lock()
	h := a.health[svc]
	a.mu.Unlock()
	switch st {
	case "starting":
		return "starting"
	case "running":
		switch {
		case h == nil || h.state != "running" || !h.answered:
			return "starting"
		case !h.ok:
			return "not answering"
		}
		return "running"
	case "backoff", "failed":
		return "failed"
	}
	if enabled {
		return "starting"
	}
	return "off"
}

// frontState is the state the front picks its page by.
func (a *apps) frontState(svc string) webfront.State {
	switch a.state(svc) {
	case "starting":
		return webfront.Starting
	case "running", "not answering":
		return webfront.Running
	case "failed":
		return webfront.Failed
	}
	return webfront.Stopped
}

// watch probes the running apps and follows the node's name until ctx
// ends.
func (a *apps) watch(ctx context.Context) {
	t := time.NewTicker(appProbeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.update()
		a.probe(ctx)
	}
}

// probe asks every running app its health path once.
func (a *apps) probe(ctx context.Context) {
	a.mu.Lock()
	list := a.list
	a.mu.Unlock()
	for _, w := range list {
		st, _ := a.svc.State(w.Service)
		ok := false
		if st == "running" {
			pctx, cancel := context.WithTimeout(ctx, appProbeEvery)
			ok = a.front.Probe(pctx, w.Web.Name) == nil
			cancel()
		}
		a.mu.Lock()
		h := a.health[w.Service]
		if h == nil || h.state != st {
			// A new run: it has not answered yet.
			h = &appHealth{state: st}
			a.health[w.Service] = h
		}
		h.ok = ok
		h.answered = h.answered || ok
		a.mu.Unlock()
	}
}

// infos lists the apps for the API and the panel; public leaves out the
// apps that are not published or not on, and the memory figures.
func (a *apps) infos(public bool) []nodeapi.WebApp {
	a.mu.Lock()
	list, node := a.list, a.built
	a.mu.Unlock()
	out := []nodeapi.WebApp{}
	for _, w := range list {
		wa := a.info(w, node)
		if public {
			if !w.Web.Publish || wa.State == "off" {
				continue
			}
			wa.MemoryBytes = 0
		}
		out = append(out, wa)
	}
	return out
}

func (a *apps) info(w service.WebApp, node string) nodeapi.WebApp {
	host := nodeapi.AppHost(w.Web.Name, node)
	wa := nodeapi.WebApp{Service: w.Service, Title: w.Web.Title, Host: host, URL: "https://" + host + "/",
		State: a.state(w.Service), Publish: w.Web.Publish}
	if wa.State != "off" {
		wa.MemoryBytes = max(a.svc.MemoryBytes(w.Service), 0)
	}
	return wa
}

// byService returns the app of a service, if it is one.
func (a *apps) byService(svc string) (nodeapi.WebApp, bool) {
	a.mu.Lock()
	list, node := a.list, a.built
	a.mu.Unlock()
	for _, w := range list {
		if w.Service == svc {
			return a.info(w, node), true
		}
	}
	return nodeapi.WebApp{}, false
}

// logLimiter lets through at most 10 lines a second: a broken or hostile
// app must not flood byzd's log.
type logLimiter struct {
	mu    sync.Mutex
	start time.Time
	n     int
}

func (l *logLimiter) allow() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := time.Now(); now.Sub(l.start) >= time.Second {
		l.start, l.n = now, 0
	}
	l.n++
	return l.n <= 10
}

// apiApps lists the web apps: every app for a login, the published apps
// that are on for anyone (the node's start page says the same).
func (w *Web) apiApps(rw http.ResponseWriter, r *http.Request) {
	if w.apps == nil {
		writeJSON(rw, http.StatusOK, []nodeapi.WebApp{})
		return
	}
	writeJSON(rw, http.StatusOK, w.apps.infos(w.authenticate(r) == nil))
}

// appsPage is the node's start page for the people on the mesh: its web
// apps, each a link to its own name. Without a login it shows the
// published apps that are on; with one, every app with its state and
// memory use.
func (w *Web) appsPage(rw http.ResponseWriter, r *http.Request) {
	p := w.page(r, "apps.title")
	list := []nodeapi.WebApp{}
	if w.apps != nil {
		list = w.apps.infos(!p.LoggedIn)
	}
	p.Data = list
	w.render(rw, http.StatusOK, "apps", p)
}
