package daemon

import (
	"errors"
	"net/http"
	"strconv"

	"byzantium/runtime/auth"
)

// ConsoleLoginPath checks the admin password for the serial console's
// login (byz console, which the image's inittab runs on ttyS0 when the
// spec's console shell is "login"). It is served on the root-only unix
// socket alone, never over HTTPS: whoever reaches the socket is root
// already, and the route only says yes or no.
const ConsoleLoginPath = "/api/v1/console/login"

// consoleRemote is the limiter key of the serial console: its failures
// count together, as one address's do on the panel, and slow down the
// same way (auth's limiter).
const consoleRemote = "console"

// ConsoleLoginRequest is the body of POST ConsoleLoginPath.
type ConsoleLoginRequest struct {
	Password string `json:"password"`
}

// ConsoleLoginAnswer is its answer. 200: the password is right; 401: it
// is wrong; 409: the node has no admin password yet; 429: too many
// failures, try again in RetryAfterSeconds (also the Retry-After header).
type ConsoleLoginAnswer struct {
	Error             string `json:"error,omitempty"`
	RetryAfterSeconds int    `json:"retry_after_seconds,omitempty"`
}

func (w *Web) consoleLogin(rw http.ResponseWriter, r *http.Request) {
	var req ConsoleLoginRequest
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
		writeJSON(rw, http.StatusOK, ConsoleLoginAnswer{})
	case errors.As(err, &slow):
		secs := seconds(slow.RetryAfter)
		rw.Header().Set("Retry-After", strconv.Itoa(secs))
		writeJSON(rw, http.StatusTooManyRequests, ConsoleLoginAnswer{Error: "too many failed attempts: wait " + strconv.Itoa(secs) + " s", RetryAfterSeconds: secs})
	case errors.Is(err, auth.ErrNotClaimed):
		writeJSON(rw, http.StatusConflict, ConsoleLoginAnswer{Error: "this node has no admin password yet: set it on the panel's setup page, with the setup code byzd printed on this console"})
	case errors.Is(err, auth.ErrWrongPassword):
		// Not logged here: failed logins are the auth store's to count
		// and report, the console's with the panel's.
		writeJSON(rw, http.StatusUnauthorized, ConsoleLoginAnswer{Error: "wrong password"})
	default:
		writeJSON(rw, http.StatusInternalServerError, ConsoleLoginAnswer{Error: err.Error()})
	}
}
