package daemon

import (
	"errors"
	"net/http"
	"strconv"

	"byzantium/runtime/nodeapi"
	"byzantium/runtime/service"
)

// The modules and services routes, for the API and the panel. They need
// Web.Services; without it (a host, tests) they answer 503.

func (w *Web) serviceRoutes() []route {
	return []route{
		{"GET /api/v1/modules", false, w.apiModules},
		{"POST /api/v1/modules/{name}/activate", false, w.apiActivate},
		{"POST /api/v1/modules/{name}/deactivate", false, w.apiDeactivate},
		{"POST /api/v1/modules/{name}/next-boot", false, w.apiNextBoot},
		{"GET /api/v1/services", false, w.apiServices},
		{"POST /api/v1/services/{name}/{action}", false, w.apiServiceAction},
		{"GET /api/v1/services/{name}/logs", false, w.apiServiceLogs},

		{"GET /modules", false, w.modulesPage},
		{"POST /modules/{name}/{action}", false, w.modulesPost},
		{"GET /services", false, w.servicesPage},
		{"POST /services/{name}/{action}", false, w.servicesPost},
		{"GET /services/{name}/logs", false, w.serviceLogsPage},
	}
}

var errNoManager = &httpError{http.StatusServiceUnavailable, errors.New("this byzd runs without its module and service manager")}

// serviceError maps the manager's errors to statuses.
func serviceError(err error) error {
	var c *service.ConflictError
	switch {
	case errors.As(err, &c):
		return &httpError{http.StatusConflict, err}
	case errors.Is(err, service.ErrUnknown):
		return &httpError{http.StatusNotFound, err}
	case errors.Is(err, service.ErrRefused):
		return &httpError{http.StatusConflict, err}
	}
	return err
}

func (w *Web) apiModules(rw http.ResponseWriter, _ *http.Request) {
	if w.Services == nil {
		writeError(rw, errNoManager)
		return
	}
	writeJSON(rw, http.StatusOK, w.Services.Modules())
}

func (w *Web) apiActivate(rw http.ResponseWriter, r *http.Request) {
	if w.Services == nil {
		writeError(rw, errNoManager)
		return
	}
	ch, err := w.Services.Activate(r.PathValue("name"))
	if err != nil {
		writeError(rw, serviceError(err))
		return
	}
	writeJSON(rw, http.StatusOK, ch)
}

func (w *Web) apiDeactivate(rw http.ResponseWriter, r *http.Request) {
	if w.Services == nil {
		writeError(rw, errNoManager)
		return
	}
	cascade, _ := strconv.ParseBool(r.URL.Query().Get("cascade"))
	ch, err := w.Services.Deactivate(r.PathValue("name"), cascade)
	var c *service.ConflictError
	if errors.As(err, &c) {
		writeJSON(rw, http.StatusConflict, nodeapi.ModuleConflict{Error: err.Error(), RequiredBy: c.RequiredBy})
		return
	}
	if err != nil {
		writeError(rw, serviceError(err))
		return
	}
	writeJSON(rw, http.StatusOK, ch)
}

func (w *Web) apiNextBoot(rw http.ResponseWriter, r *http.Request) {
	if w.Services == nil {
		writeError(rw, errNoManager)
		return
	}
	var req nodeapi.NextBootRequest
	if !decode(rw, r, &req) {
		return
	}
	if err := w.Services.SetNextBoot(r.PathValue("name"), req.Load); err != nil {
		writeError(rw, serviceError(err))
		return
	}
	rw.WriteHeader(http.StatusNoContent)
}

func (w *Web) apiServices(rw http.ResponseWriter, _ *http.Request) {
	if w.Services == nil {
		writeError(rw, errNoManager)
		return
	}
	writeJSON(rw, http.StatusOK, w.services())
}

// services lists the services with what the manager does not know: the
// web app each one is, and its memory use.
func (w *Web) services() []nodeapi.ServiceInfo {
	list := w.Services.Services()
	for i := range list {
		s := &list[i]
		if s.State != "stopped" {
			s.MemoryBytes = max(w.Services.MemoryBytes(s.Name), 0)
		}
		if w.apps != nil {
			if a, ok := w.apps.byService(s.Name); ok {
				s.Web = &a
			}
		}
	}
	return list
}

func (w *Web) serviceAction(name, action string) (nodeapi.ServiceInfo, error) {
	switch action {
	case "enable":
		return w.Services.Enable(name)
	case "disable":
		return w.Services.Disable(name)
	case "restart":
		return w.Services.Restart(name)
	}
	return nodeapi.ServiceInfo{}, &httpError{http.StatusNotFound, errors.New("unknown action " + strconv.Quote(action) + ": enable, disable or restart")}
}

func (w *Web) apiServiceAction(rw http.ResponseWriter, r *http.Request) {
	if w.Services == nil {
		writeError(rw, errNoManager)
		return
	}
	si, err := w.serviceAction(r.PathValue("name"), r.PathValue("action"))
	if err != nil {
		writeError(rw, serviceError(err))
		return
	}
	writeJSON(rw, http.StatusOK, si)
}

func (w *Web) apiServiceLogs(rw http.ResponseWriter, r *http.Request) {
	if w.Services == nil {
		writeError(rw, errNoManager)
		return
	}
	lines, err := w.Services.Logs(r.PathValue("name"))
	if err != nil {
		writeError(rw, serviceError(err))
		return
	}
	if n, err := strconv.Atoi(r.URL.Query().Get("last")); err == nil && n >= 0 && n < len(lines) {
		lines = lines[len(lines)-n:]
	}
	writeJSON(rw, http.StatusOK, lines)
}

func (w *Web) modulesPage(rw http.ResponseWriter, r *http.Request) {
	if w.Services == nil {
		w.fail(rw, r, http.StatusServiceUnavailable, errNoManager)
		return
	}
	p := w.page(r, "modules.title")
	p.Data = modulesData{Modules: w.Services.Modules()}
	w.render(rw, http.StatusOK, "modules", p)
}

type modulesData struct {
	Modules []nodeapi.ModuleInfo
	// Confirm, when set, asks to cascade a deactivation.
	Confirm    string
	RequiredBy []string
}

func (w *Web) modulesPost(rw http.ResponseWriter, r *http.Request) {
	if w.Services == nil {
		w.fail(rw, r, http.StatusServiceUnavailable, errNoManager)
		return
	}
	name := r.PathValue("name")
	var err error
	notice := ""
	switch r.PathValue("action") {
	case "activate":
		_, err = w.Services.Activate(name)
		notice = "modules.activated"
	case "deactivate":
		_, err = w.Services.Deactivate(name, r.PostFormValue("cascade") == "yes")
		var c *service.ConflictError
		if errors.As(err, &c) {
			p := w.page(r, "modules.title")
			p.Data = modulesData{Modules: w.Services.Modules(), Confirm: name, RequiredBy: c.RequiredBy}
			w.render(rw, http.StatusConflict, "modules", p)
			return
		}
		notice = "modules.deactivated"
	case "load", "unload":
		err = w.Services.SetNextBoot(name, r.PathValue("action") == "load")
		notice = "modules.nextboot.done"
	default:
		err = &httpError{http.StatusNotFound, errors.New("unknown action")}
	}
	if err != nil {
		p := w.page(r, "modules.title")
		p.Data = modulesData{Modules: w.Services.Modules()}
		p.Error = err.Error()
		w.render(rw, statusOf(serviceError(err)), "modules", p)
		return
	}
	done(rw, r, "/modules", notice)
}

func statusOf(err error) int {
	var he *httpError
	if errors.As(err, &he) {
		return he.status
	}
	return http.StatusInternalServerError
}

func (w *Web) servicesPage(rw http.ResponseWriter, r *http.Request) {
	if w.Services == nil {
		w.fail(rw, r, http.StatusServiceUnavailable, errNoManager)
		return
	}
	p := w.page(r, "services.title")
	p.Data = w.services()
	w.render(rw, http.StatusOK, "services", p)
}

func (w *Web) servicesPost(rw http.ResponseWriter, r *http.Request) {
	if w.Services == nil {
		w.fail(rw, r, http.StatusServiceUnavailable, errNoManager)
		return
	}
	action := r.PathValue("action")
	if _, err := w.serviceAction(r.PathValue("name"), action); err != nil {
		p := w.page(r, "services.title")
		p.Data = w.services()
		p.Error = err.Error()
		w.render(rw, statusOf(serviceError(err)), "services", p)
		return
	}
	done(rw, r, "/services", "services."+action+".done")
}

func (w *Web) serviceLogsPage(rw http.ResponseWriter, r *http.Request) {
	if w.Services == nil {
		w.fail(rw, r, http.StatusServiceUnavailable, errNoManager)
		return
	}
	lines, err := w.Services.Logs(r.PathValue("name"))
	if err != nil {
		w.fail(rw, r, statusOf(serviceError(err)), err)
		return
	}
	p := w.page(r, "services.logs.title")
	for i, j := 0, len(lines)-1; i < j; i, j = i+1, j-1 {
		lines[i], lines[j] = lines[j], lines[i]
	}
	p.Data = serviceLogs{Name: r.PathValue("name"), Lines: lines}
	w.render(rw, http.StatusOK, "servicelogs", p)
}

type serviceLogs struct {
	Name  string
	Lines []nodeapi.LogLine
}
