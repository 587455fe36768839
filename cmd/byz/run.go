package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"byzantium/ci/qemu"
)

func newRunCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "run",
		Short: "Run built images",
		Example: `  byz run qemu byzantium.iso
  byz run qemu byzantium.img --as usb --uefi --forward 8443:443`,
	}
	c.AddCommand(newRunQemuCmd())
	return c
}

func newRunQemuCmd() *cobra.Command {
	var (
		cfg        qemu.Config
		as, expect string
		creds      []string
		timeout    time.Duration
	)
	c := &cobra.Command{
		Use:   "qemu [IMAGE] [flags]",
		Short: "Boot an ISO, a disk image or a kernel under QEMU (TCG, serial console)",
		Long: `Boot an image the way the end-to-end tests do: QEMU without KVM, no display,
the serial console on standard output. IMAGE is attached as a CD-ROM when it
ends in .iso, else as a virtio disk; --as chooses. --kernel boots a kernel
directly instead.

With --expect, byz exits 0 as soon as a console line contains the text, and
non-zero with the last console lines if QEMU exits or --timeout passes first.
Without it, byz returns when the guest powers off or the timeout passes.

--credential NAME=VALUE hands the guest a credential as an SMBIOS type 11
string, as systemd does; byzd takes byz.admin-password from there, so the
node can be logged into without its setup code.`,
		Example: `  byz run qemu byzantium.iso
  byz run qemu byzantium.img --as usb --uefi --forward 8443:443
  byz run qemu byzantium.iso --secure-boot --expect 'byz-init: ready' --timeout 2m
  byz run qemu byzantium.iso --forward 8443:443 --credential byz.admin-password=let-me-in-please
  byz run qemu --kernel vmlinuz --initrd initrd.zst --append 'console=ttyS0 byz.test=poweroff' \
      --expect 'byz-init: ready' --serial boot.log`,
		Args: argsUsage(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				switch {
				case as == "cdrom" || as == "" && strings.HasSuffix(strings.ToLower(args[0]), ".iso"):
					cfg.ISO = args[0]
				case as == "" || as == "disk":
					cfg.Disk = args[0]
				case as == "ide" || as == "usb":
					cfg.Disk, cfg.DiskAs = args[0], qemu.Media(as)
				default:
					return usageError{fmt.Errorf("run qemu: --as %q: want cdrom, disk, ide or usb", as)}
				}
			}
			for _, c := range creds {
				k, v, ok := strings.Cut(c, "=")
				if !ok {
					return usageError{fmt.Errorf("run qemu: --credential %q: write NAME=VALUE", c)}
				}
				if cfg.Credentials == nil {
					cfg.Credentials = map[string]string{}
				}
				cfg.Credentials[k] = v
			}
			if cfg.Kernel == "" && len(args) == 0 {
				return usageError{fmt.Errorf("run qemu: give an IMAGE or --kernel (see 'byz run qemu --help')")}
			}
			if _, err := cfg.Args(""); errors.Is(err, qemu.ErrBadOptions) {
				return usageError{fmt.Errorf("run qemu: %w", err)}
			}
			return runQemu(cmd.Context(), cfg, expect, timeout)
		},
	}
	f := c.Flags()
	f.StringVar(&cfg.Kernel, "kernel", "", "boot this kernel directly (-kernel)")
	f.StringVar(&cfg.Initrd, "initrd", "", "initramfs for --kernel")
	f.StringVar(&cfg.Append, "append", "", "kernel command line for --kernel (add console=ttyS0 to see it)")
	f.StringVar(&as, "as", "", "attach IMAGE as cdrom, disk (virtio), ide or usb (default: cdrom for .iso, else disk)")
	f.BoolVar(&cfg.UEFI, "uefi", false, "boot with OVMF instead of SeaBIOS")
	f.BoolVar(&cfg.SecureBoot, "secure-boot", false, "boot OVMF with Microsoft keys and Secure Boot on (q35, SMM)")
	f.StringVar(&cfg.Machine, "machine", "pc", "machine type: pc or q35")
	f.StringVar(&cfg.Mem, "mem", "1G", "guest memory")
	f.StringArrayVar(&cfg.Forward, "forward", nil, "forward 127.0.0.1:HOST to guest port GUEST, as HOST:GUEST (repeatable)")
	f.StringArrayVar(&creds, "credential", nil, "hand the guest a credential NAME=VALUE (SMBIOS type 11; repeatable)")
	f.StringVar(&cfg.SerialLog, "serial", "", "also write the console to this file")
	f.StringVar(&expect, "expect", "", "exit 0 once a console line contains this text")
	f.DurationVar(&timeout, "timeout", 10*time.Minute, "give up after this long")
	return c
}

func runQemu(ctx context.Context, cfg qemu.Config, expect string, timeout time.Duration) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cfg.Console = os.Stdout
	vm, err := qemu.Start(cfg)
	if err != nil {
		return err
	}
	defer vm.Kill()
	if expect == "" {
		return vm.Wait(ctx)
	}
	if _, err := vm.Expect(ctx, expect); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "byz: saw %q\n", expect)
	return nil
}
