package spec

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// What the node's serial console offers (Console.Shell). Whoever reaches
// the first serial port reaches it: someone at the machine, and often
// whoever holds its IPMI or serial-over-LAN access.
const (
	// ShellLogin asks for the node's admin password (the panel's, checked
	// by byzd with the panel's rate limit) before it opens a root shell
	// (`byz console`). The initramfs has no rescue shell and the boot
	// menu cannot be edited (isolinux ALLOWOPTIONS 0 and NOESCAPE 1, GRUB
	// with an empty superusers list), so no kernel parameter typed at the
	// console opens one either. The default.
	ShellLogin = "login"
	// ShellRoot gives a root shell, without a password, to whoever types
	// on the serial port; byz-init offers a rescue shell when the boot
	// fails, and the boot menu can be edited. For test images, labs and
	// development boards.
	ShellRoot = "root"
	// ShellNone gives no shell on the serial port at all (the kernel and
	// byzd still print there); like ShellLogin, no rescue shell and a
	// boot menu that cannot be edited.
	ShellNone = "none"
)

// ConsoleModule is the name of the module the build makes for the console
// setting (NNN-console.xzm, last in base): it holds /etc/inittab, and the
// name is reserved.
const ConsoleModule = "console"

// Console is the console setting:
//
//	console:
//	  shell: login     # login (default), root or none
type Console struct {
	// Shell is ShellLogin, ShellRoot or ShellNone; "" means ShellLogin.
	Shell string
}

// Open reports whether the console gives a root shell without a password,
// a rescue shell and an editable boot menu (ShellRoot).
func (c Console) Open() bool { return c.Shell == ShellRoot }

// ShellOrDefault returns Shell, or ShellLogin when it is unset (a Spec
// made in code rather than parsed).
func (c Console) ShellOrDefault() string {
	if c.Shell == "" {
		return ShellLogin
	}
	return c.Shell
}

// console reads the console mapping; an empty value (every key commented
// out) is the default.
func (d *decoder) console(n *yaml.Node, path string) Console {
	var c Console
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return c
	}
	d.object(n, path, []field{
		{"shell", false, func(v *yaml.Node, p string) { c.Shell, _ = d.nonEmpty(v, p) }},
	})
	return c
}

// console checks the console setting and that no module takes the
// console module's name.
func (v *validator) console() {
	switch v.s.Console.Shell {
	case "", ShellLogin, ShellRoot, ShellNone:
	default:
		v.failf("console.shell", "%q: want %s (ask for the admin password), %s (a root shell without a password: test images) or %s (no shell)",
			v.s.Console.Shell, ShellLogin, ShellRoot, ShellNone)
	}
	for l, list := range [][]Module{v.s.Base, v.s.Modules, v.s.Optional} {
		for i, m := range list {
			if m.Name == ConsoleModule {
				v.failf(fmt.Sprintf("%s[%d].name", layers[l], i), "%q is reserved for the module the build makes for the console setting (/etc/inittab)", m.Name)
			}
		}
	}
}
