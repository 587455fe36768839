package nlattr

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Request is a generic netlink request to family: the genl header
// (cmd, version 1) and the attributes.
func Request(family uint16, cmd uint8, flags int, attrs []byte) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(int(family), flags)
	req.AddData(&nl.Genlmsg{Command: cmd, Version: 1})
	req.AddRawData(attrs)
	return req
}

// ErrTooMany is wrapped by Dump's error for a dump of more than max
// messages.
var ErrTooMany = errors.New("too many messages")

// dumpTries bounds the retries of a dump the kernel marks interrupted
// (NLM_F_DUMP_INTR: the table changed under it, say a radio plugged in).
const dumpTries = 3

// Dump runs a dump request to family and returns its messages, at most
// max of them (more is an error wrapping ErrTooMany), trying again when
// the kernel says the dump was interrupted. Errors are the kernel's, for
// the caller to name.
func Dump(family uint16, cmd uint8, attrs []byte, max int) ([][]byte, error) {
	for try := 1; ; try++ {
		var msgs [][]byte
		tooMany := false
		err := Request(family, cmd, unix.NLM_F_DUMP, attrs).ExecuteIter(unix.NETLINK_GENERIC, family, func(m []byte) bool {
			if len(msgs) == max {
				tooMany = true
				return false
			}
			msgs = append(msgs, m)
			return true
		})
		switch {
		case errors.Is(err, nl.ErrDumpInterrupted) && try < dumpTries:
			continue
		case err != nil:
			return nil, err
		case tooMany:
			return nil, fmt.Errorf("%w: more than %d", ErrTooMany, max)
		}
		return msgs, nil
	}
}
