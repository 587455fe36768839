package daemon

import (
	"errors"
	"net/http"
	"strconv"

	"byzantium/runtime/auth"
	"byzantium/runtime/nodeapi"
)

// consoleRemote is the limiter key of the serial console: its failures
// count together, as one address's do on the panel, and slow down the
// same way (auth's limiter).
const consoleRemote = "console"

func (w *Web) consoleLogin(rw http.ResponseWriter, r *http.Request) {
	var req nodeapi.ConsoleLoginRequest
	if !decode(rw, r, &req) {
		return
	}
	// A login opens a session; the console needs none, so it is closed
	// at once. Going through Login keeps the panel's checks and its rate
	// limit.
	s, err := w.Auth.Login(consoleRemote, req.Password)
	var slow *auth.SlowDown
	switch {
	case err == nil:
		w.Auth.Logout(s.ID)
		w.Log.Info("console login: a root shell on the serial console")
		writeJSON(rw, http.StatusOK, nodeapi.ConsoleLoginAnswer{})
	case errors.As(err, &slow):
		secs := seconds(slow.RetryAfter)
		rw.Header().Set("Retry-After", strconv.Itoa(secs))
		writeJSON(rw, http.StatusTooManyRequests, nodeapi.ConsoleLoginAnswer{Error: "too many failed attempts: wait " + strconv.Itoa(secs) + " s", RetryAfterSeconds: secs})
	case errors.Is(err, auth.ErrNotClaimed):
		writeJSON(rw, http.StatusConflict, nodeapi.ConsoleLoginAnswer{Error: "this node has no admin password yet: set it on the panel's setup page, with the setup code byzd printed on this console"})
	case errors.Is(err, auth.ErrWrongPassword):
		// Not logged here: failed logins are the auth store's to count
		// and report, the console's with the panel's.
		writeJSON(rw, http.StatusUnauthorized, nodeapi.ConsoleLoginAnswer{Error: "wrong password"})
	default:
		writeJSON(rw, http.StatusInternalServerError, nodeapi.ConsoleLoginAnswer{Error: err.Error()})
	}
}
