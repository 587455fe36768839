package nodeapi

import (
	"time"

	"byzantium/overlays"
)

// ErrorBody is the body of every API error.
type ErrorBody struct {
	Error string `json:"error"`
}

// Health is the body of GET /healthz, which anyone on the mesh may ask:
// it says that byzd answers and whether the node has joined a mesh, and
// nothing that tells one node from another (no name, id, version,
// modules, persistence, addresses or neighbours: those are in the
// authenticated GET /api/v1/status and /api/v1/mesh). A monitoring
// script needs no more than the status, the mesh's one word and the
// answer's arrival.
type Health struct {
	Status string `json:"status"`
	// Mesh is "joined" (Mesh.Joined: a neighbour heard and another node
	// reachable) or "alone" (not, or no mesh manager runs).
	Mesh string `json:"mesh"`
}

// Status is the node at a glance: GET /api/v1/status and the panel's
// first page.
type Status struct {
	Node    string `json:"node"`
	Version string `json:"version"`
	NodeID  string `json:"node_id,omitempty"`
	// TLSFingerprint is the panel certificate's SHA-256, as the console
	// shows it, for byz node --fingerprint.
	TLSFingerprint string        `json:"tls_fingerprint,omitempty"`
	UptimeSeconds  int64         `json:"uptime_seconds"` // of the kernel
	Load           [3]float64    `json:"load"`
	Memory         Memory        `json:"memory"`
	Storage        []Storage     `json:"storage"`
	Persistence    *Persistence  `json:"persistence,omitempty"`
	Interfaces     []Interface   `json:"interfaces"`
	Modules        []string      `json:"modules"`
	Services       []ServiceInfo `json:"services"`
}

// Memory in bytes, from /proc/meminfo.
type Memory struct {
	TotalBytes     uint64 `json:"total_bytes"`
	AvailableBytes uint64 `json:"available_bytes"`
}

// Storage is one mounted file system that matters to the node.
type Storage struct {
	Name      string `json:"name"` // "root", "media"
	Path      string `json:"path"`
	SizeBytes uint64 `json:"size_bytes"`
	FreeBytes uint64 `json:"free_bytes"`
}

// Interface is a network interface and its addresses.
type Interface struct {
	Name      string   `json:"name"`
	Up        bool     `json:"up"`
	MAC       string   `json:"mac,omitempty"`
	Addresses []string `json:"addresses"`
}

// Persistence is byz-init's account of the overlay's upper layer with
// the store's size and free space; on the wire its fields follow the
// report's.
type Persistence struct {
	overlays.Persistence
	SizeBytes uint64 `json:"size_bytes"`
	FreeBytes uint64 `json:"free_bytes"`
	// In mode "exit": the store's own size and free space, and the last
	// save (nil before the first).
	StoreSizeBytes uint64      `json:"store_size_bytes,omitempty"`
	StoreFreeBytes uint64      `json:"store_free_bytes,omitempty"`
	LastSave       *SaveResult `json:"last_save,omitempty"`
}

// SaveResult is the account of one save of changes=EXIT: changes: the
// answer of POST /api/v1/persistence/save, and the status's last save
// (byzd keeps it in overlays.LastSaveJSON).
type SaveResult = overlays.SaveReport

// SaveDatRequest is the body of POST /api/v1/persistence/savedat.
type SaveDatRequest struct {
	SizeBytes int64 `json:"size_bytes"`
	// Passphrase, when set, makes the save.dat LUKS2-encrypted.
	Passphrase string `json:"passphrase,omitempty"`
	// KDFMemoryKiB and KDFTime override the argon2id cost (0: the
	// default, its memory capped at half the node's RAM).
	KDFMemoryKiB int `json:"kdf_memory_kib,omitempty"`
	KDFTime      int `json:"kdf_time,omitempty"`
}

// SaveDatResult answers it.
type SaveDatResult struct {
	Path      string `json:"path"` // on the media
	SizeBytes int64  `json:"size_bytes"`
	Encrypted bool   `json:"encrypted"`
	KDFMemKiB int    `json:"kdf_memory_kib,omitempty"`
	Note      string `json:"note"`
}

// ModuleInfo is one module on the boot media, as GET /api/v1/modules
// lists it.
type ModuleInfo struct {
	Name     string   `json:"name"`
	Version  string   `json:"version,omitempty"`
	Folder   string   `json:"folder"` // "base", "modules" or "optional"
	File     string   `json:"file"`   // "byzantium/optional/050-ngircd.xzm"
	Loaded   bool     `json:"loaded"` // stacked into the root at boot
	Active   bool     `json:"active"` // an optional module activated since
	Depends  []string `json:"depends"`
	Provides []string `json:"provides"`
	Services []string `json:"services"`
	// RequiredBy lists the loaded or active modules that depend on it.
	RequiredBy []string `json:"required_by"`
	// NextBoot says whether the module will be stacked at the next boot
	// (optional modules marked with POST …/next-boot).
	NextBoot bool `json:"next_boot"`
}

// ModuleChange answers activate and deactivate: the modules changed, in
// the order it was done.
type ModuleChange struct {
	Activated   []string `json:"activated,omitempty"`
	Deactivated []string `json:"deactivated,omitempty"`
	// Stopped lists the services stopped on the way.
	Stopped []string `json:"stopped,omitempty"`
}

// ModuleConflict is the 409 body of a deactivation refused because other
// modules need the module; ?cascade=true deactivates them too.
type ModuleConflict struct {
	Error      string   `json:"error"`
	RequiredBy []string `json:"required_by"`
}

// NextBootRequest is the body of POST /api/v1/modules/{name}/next-boot.
type NextBootRequest struct {
	Load bool `json:"load"`
}

// ServiceInfo is one service, as GET /api/v1/services lists it.
type ServiceInfo struct {
	Name        string   `json:"name"`
	Module      string   `json:"module"`
	Description string   `json:"description,omitempty"`
	Available   bool     `json:"available"` // its module is loaded or active
	Enabled     bool     `json:"enabled"`
	State       string   `json:"state"` // "stopped", "starting", "running", "backoff", "failed"
	PID         int      `json:"pid,omitempty"`
	UID         int      `json:"uid,omitempty"`
	Restarts    int      `json:"restarts"`
	Health      string   `json:"health,omitempty"` // "ok", "failing", "" (no check yet)
	Ports       []string `json:"ports"`
	// Privileged: its manifest declares it may keep root-equivalent
	// capabilities (docs/modules.md).
	Privileged   bool     `json:"privileged,omitempty"`
	Capabilities []string `json:"capabilities"`
	LastError    string   `json:"last_error,omitempty"`
	// Since is when it entered its state (RFC 3339).
	Since string `json:"since,omitempty"`
	// MemoryBytes is what its processes use now (0 when it is not
	// running or the node has no cgroup v2).
	MemoryBytes int64 `json:"memory_bytes,omitempty"`
	// Web is set when the service is a web app that byzd fronts.
	Web *WebApp `json:"web,omitempty"`
}

// AppDomain is the domain under which a node serves its web apps, each by
// its own name: https://APP.NODE.byzantium.mesh/ (its own origin in the
// browser, never the panel's).
const AppDomain = "byzantium.mesh"

// AppsPath lists the node's web apps (GET; a login shows every app, no
// login only the published apps that are on).
const AppsPath = "/api/v1/apps"

// AppHost is the host name of the web app labelled app on node.
func AppHost(app, node string) string { return app + "." + node + "." + AppDomain }

// WebApp is a service's web app as people reach it.
type WebApp struct {
	Service string `json:"service"`
	Title   string `json:"title"`
	// Host is its name (AppHost), URL its address over HTTPS.
	Host string `json:"host"`
	URL  string `json:"url"`
	// State is "off" (its module is not active or the service is not
	// enabled), "starting", "running", "not answering" (running, and its
	// last health check failed) or "failed" (it exited and is restarting,
	// or cannot start).
	State   string `json:"state"`
	Publish bool   `json:"publish,omitempty"`
	// MemoryBytes is what its processes use now (0 when off).
	MemoryBytes int64 `json:"memory_bytes,omitempty"`
}

// LogLine is one record of byzd's own log (GET /api/v1/logs): time,
// level, and the message with its attributes as the console shows them;
// or one line of a service's output (GET /api/v1/services/{name}/logs).
type LogLine struct {
	Time    time.Time `json:"time"`
	Level   string    `json:"level"`
	Message string    `json:"message"`
}

// SettingsValues is the body of /api/v1/settings, and byzd's
// settings.json.
type SettingsValues struct {
	NodeName string `json:"node_name"`
	Language string `json:"language"` // the panel's default language
}

// LoginRequest is the body of POST /api/v1/login.
type LoginRequest struct {
	Password string `json:"password"`
}

// LoginResult answers it: the token to send as Authorization: Bearer.
type LoginResult struct {
	Token          string `json:"token"`
	ExpiresIdleSec int    `json:"expires_idle_seconds"`
}

// PasswordRequest is the body of POST /api/v1/settings/password.
type PasswordRequest struct {
	Current string `json:"current"`
	New     string `json:"new"`
}

// TokenInfo is an API token as GET /api/v1/tokens lists it: never its
// secret nor its hash.
type TokenInfo struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
}

// NewTokenRequest is the body of POST /api/v1/tokens. The admin password
// is required (a token outlives any session), except on the root-only
// unix socket.
type NewTokenRequest struct {
	Name     string `json:"name"`
	Password string `json:"password,omitempty"`
}

// NewTokenResult answers it; the secret is never shown again.
type NewTokenResult struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Secret string `json:"secret"`
}

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
