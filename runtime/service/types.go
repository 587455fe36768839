package service

// The JSON bodies of the modules and services API (docs/api.md); the
// daemon package re-exports them.

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
}
