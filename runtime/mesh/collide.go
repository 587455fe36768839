package mesh

import (
	"net/netip"

	"byzantium/runtime/mesh/addr"
	"byzantium/runtime/mesh/babel"
)

// Collision is another router claiming this node's slot.
type Collision struct {
	Prefix netip.Prefix // the route that shows it
	Other  babel.RouterID
	// Yield is true when this node must roll again: its claim is the
	// younger (babel.Younger).
	Yield bool
}

// FindCollisions looks through babeld's routes for another router
// announcing one of this node's prefixes, or a beacon in its slot with
// another secret's bits. Retracted routes (metric infinity) are not
// claims: babeld keeps them a while, under the retracting neighbour's id.
// A route for our own prefix from a router id with our claim time is our
// own previous babeld's (restarted, it had other random bytes), still
// cached by neighbours: the beacon settles those, since only a node with
// our secret announces our beacon.
func FindCollisions(id addr.Identity, me babel.RouterID, routes []babel.Route) []Collision {
	own := id.Addresses().Prefixes()
	beacon := id.Beacon()
	slot := id.Slot()
	var out []Collision
	seen := map[babel.RouterID]bool{}
	for _, r := range routes {
		if !r.Reachable() || r.RouterID == me || seen[r.RouterID] {
			continue
		}
		hit := false
		if contains(own, r.Prefix) && r.RouterID.Claimed() != me.Claimed() {
			hit = true
		}
		if r.Prefix.IsSingleIP() && r.Prefix.Addr() != beacon {
			if s, ok := addr.BeaconSlot(r.Prefix.Addr()); ok && s == slot {
				hit = true
			}
		}
		if hit {
			seen[r.RouterID] = true
			out = append(out, Collision{Prefix: r.Prefix, Other: r.RouterID, Yield: babel.Younger(me, r.RouterID)})
		}
	}
	return out
}
