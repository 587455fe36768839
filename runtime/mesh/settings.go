// Package mesh is byzd's mesh manager: it picks the mesh interfaces,
// gives the node its addresses (runtime/mesh/addr), runs the routing
// engine (babeld through runtime/mesh/babel; batman-adv when an engine is
// plugged in), watches for address collisions mesh-wide and answers
// "has this node joined a mesh?" (nodeapi.Mesh).
package mesh

import (
	"fmt"

	"byzantium/runtime/mesh/meshcfg"
	"byzantium/runtime/nodeapi"
)

// ValidateSettings checks settings with meshcfg's rules, the ones the
// spec, the API and the panel apply: every error names its field.
func ValidateSettings(s nodeapi.MeshSettings) error {
	if err := meshcfg.ValidateSettings(s); err != nil {
		return fmt.Errorf("mesh: invalid settings: %w", err)
	}
	return nil
}
