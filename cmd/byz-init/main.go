// Command byz-init is the PID 1 of Byzantium's initramfs. Build it static:
//
//	CGO_ENABLED=0 go build -o init ./cmd/byz-init
//
// All of its logic is in runtime/initsys.
package main

import "byzantium/runtime/initsys"

func main() { initsys.Main() }
