package manifest

// Capabilities lists every Linux capability a service may name
// (linux/capability.h, up to CAP_CHECKPOINT_RESTORE), each with why it is
// privileged, or "" when it is not. A service may keep a privileged
// capability only when it is declared privileged.
//
// Privileged means root-equivalent, or reaching past the service to the
// node as a whole. The reasons are written for the sandbox byzd runs
// services in (runtime/sandbox): its own mount, PID, IPC and UTS
// namespaces, a chroot into its own root, no_new_privs, but the node's
// user and network namespaces. Some reasons are narrowed by that sandbox
// today (its own PID namespace, a root of read-only modules); they are
// still privileged, because the narrowing is one sandbox change away from
// being root, and a module author should say so out loud.
//
// The unprivileged ones act only inside the service's own namespaces or
// on limits the cgroup already bounds: NET_BIND_SERVICE (a port below
// 1024), NET_BROADCAST, KILL (its own PID namespace), IPC_LOCK (memory
// the cgroup counts), IPC_OWNER (its own IPC namespace), LEASE,
// AUDIT_WRITE, WAKE_ALARM, BLOCK_SUSPEND and SYS_TTY_CONFIG (it has no
// terminal).
var Capabilities = map[string]string{
	"CAP_CHOWN":              "it takes ownership of any file it can reach (chown of /etc/shadow is the classic road to root)",
	"CAP_DAC_OVERRIDE":       "it reads and writes any file it can reach, whatever its permissions",
	"CAP_DAC_READ_SEARCH":    "open_by_handle_at opens any file of a mounted file system by its handle, outside its root and its data folder (the \"shocker\" escape)",
	"CAP_FOWNER":             "it changes the mode of any file it can reach, and so reads or writes it",
	"CAP_FSETID":             "it keeps set-user-ID and set-group-ID bits on the files it changes",
	"CAP_KILL":               "",
	"CAP_SETGID":             "it joins any group, root's included",
	"CAP_SETUID":             "it becomes any user: root, or another service's user",
	"CAP_SETPCAP":            "it changes its securebits and capability sets, the rules every other capability hangs on",
	"CAP_LINUX_IMMUTABLE":    "it marks files immutable or append-only, which byzd can then neither clean up nor save over",
	"CAP_NET_BIND_SERVICE":   "",
	"CAP_NET_BROADCAST":      "",
	"CAP_NET_ADMIN":          "services share the node's network namespace: it rewrites the node's addresses, routes and firewall, and can redirect the panel's port",
	"CAP_NET_RAW":            "services share the node's network namespace: raw sockets read and forge every packet on the node's interfaces, the mesh's and the clients' included",
	"CAP_IPC_LOCK":           "",
	"CAP_IPC_OWNER":          "",
	"CAP_SYS_MODULE":         "it loads kernel modules: its code runs in the kernel",
	"CAP_SYS_RAWIO":          "it reaches I/O ports and raw devices (iopl, ioperm): the hardware under the kernel",
	"CAP_SYS_CHROOT":         "the sandbox's root is a chroot, and a second chroot with a folder outside it still open walks out through .. (the classic chroot escape)",
	"CAP_SYS_PTRACE":         "it traces and rewrites processes it can see (only its own PID namespace today)",
	"CAP_SYS_PACCT":          "it turns the node's process accounting on, into a file of its choosing",
	"CAP_SYS_ADMIN":          "mount, setns, swapon and dozens more: root in all but name",
	"CAP_SYS_BOOT":           "it reboots the node or loads a new kernel (kexec)",
	"CAP_SYS_NICE":           "a real-time priority starves byzd and every other process, whatever the cgroup weights say",
	"CAP_SYS_RESOURCE":       "it overrides resource limits and the file systems' reserved space",
	"CAP_SYS_TIME":           "it sets the node's clock, which certificates, sessions and signed announcements rely on",
	"CAP_SYS_TTY_CONFIG":     "",
	"CAP_MKNOD":              "it creates device nodes, such as one for the node's disk",
	"CAP_LEASE":              "",
	"CAP_AUDIT_WRITE":        "",
	"CAP_AUDIT_CONTROL":      "it configures the kernel's audit rules for the whole node",
	"CAP_SETFCAP":            "it puts file capabilities on programs, which raise whoever runs them outside the sandbox",
	"CAP_MAC_OVERRIDE":       "it overrides the node's mandatory access control",
	"CAP_MAC_ADMIN":          "it configures the node's mandatory access control",
	"CAP_SYSLOG":             "it reads the kernel log with kernel addresses (which defeat KASLR) and clears it",
	"CAP_WAKE_ALARM":         "",
	"CAP_BLOCK_SUSPEND":      "",
	"CAP_AUDIT_READ":         "it reads the node's whole audit stream",
	"CAP_PERFMON":            "perf events watch every process and the kernel",
	"CAP_BPF":                "it loads BPF programs into the kernel and reads kernel memory through them",
	"CAP_CHECKPOINT_RESTORE": "it chooses the process IDs of new processes and opens the files mapped into other processes (map_files)",
}

// Privileged reports whether the capability c (CAP_NAME) is one a service
// may keep only when declared privileged, and why.
func Privileged(c string) (why string, ok bool) {
	why = Capabilities[c]
	return why, why != ""
}
