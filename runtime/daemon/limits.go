package daemon

import (
	"byzantium/runtime/nodeapi"
	"errors"
	"mime"
	"net/http"
	"os"
	"strings"
)

// maxBody bounds every request body, the panel's forms and the API's
// JSON alike: the largest the panel sends is a clone request of a few
// hundred bytes. Anyone on the mesh reaches the login and setup forms, so
// a body is refused before it is read into memory or onto the tmpfs.
const maxBody = 64 << 10

// limitBodies refuses bodies over maxBody (413; by their Content-Length
// before reading, or once that many bytes were read) and multipart bodies
// (415: no form of the panel uploads files, and Go's multipart reader
// spills large parts to $TMPDIR, RAM on a live node). Panel routes get
// their form parsed here, so a body cut short is an error and not a form
// with empty fields (which a login would count as a wrong password).
func limitBodies(h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.ContentLength > maxBody {
			refuseBody(rw, r, http.StatusRequestEntityTooLarge, errBodyTooLarge)
			return
		}
		if isMultipart(r.Header.Get("Content-Type")) {
			refuseBody(rw, r, http.StatusUnsupportedMediaType, errMultipart)
			return
		}
		r.Body = http.MaxBytesReader(rw, r.Body, maxBody)
		if !isAPI(r) && r.Method != http.MethodGet && r.Method != http.MethodHead {
			// ParseForm reads only url-encoded bodies; anything else is
			// left for the handler (which reads no other kind).
			if err := r.ParseForm(); err != nil {
				var tooLarge *http.MaxBytesError
				status := http.StatusBadRequest
				if errors.As(err, &tooLarge) {
					status, err = http.StatusRequestEntityTooLarge, errBodyTooLarge
				} else if errors.Is(err, os.ErrDeadlineExceeded) {
					status = http.StatusRequestTimeout
				}
				refuseBody(rw, r, status, err)
				return
			}
		}
		h.ServeHTTP(rw, r)
	})
}

// isMultipart reports a multipart media type, however it is spelled.
func isMultipart(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(ct))
	}
	return strings.HasPrefix(mt, "multipart/")
}

var (
	errBodyTooLarge = errors.New("the request body is too large (at most 64 KiB)")
	errMultipart    = errors.New("multipart bodies are not accepted: send application/x-www-form-urlencoded or JSON")
)

// refuseBody answers a refused body in plain text (the API's clients get
// JSON) and closes the connection: what is left of the body is not read.
func refuseBody(rw http.ResponseWriter, r *http.Request, status int, err error) {
	rw.Header().Set("Connection", "close")
	if isAPI(r) {
		writeJSON(rw, status, nodeapi.ErrorBody{Error: err.Error()})
		return
	}
	rw.Header().Set("Cache-Control", "no-store")
	http.Error(rw, err.Error(), status)
}
