package daemon

import "byzantium/runtime/service"

// The modules and services API's bodies are runtime/service's.
type (
	ModuleInfo     = service.ModuleInfo
	ModuleChange   = service.ModuleChange
	ModuleConflict = service.ModuleConflict
	ServiceInfo    = service.ServiceInfo
)
